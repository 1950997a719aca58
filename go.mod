module github.com/otabridge/otabridge

go 1.26
