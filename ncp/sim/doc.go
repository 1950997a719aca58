// Package sim owns the simulated Zigbee network, otabridge's default radio: a coordinator and virtual
// devices described in configuration (the `radio.sim` section), each with a Basic cluster and an OTA client
// that follows the ZCL OTA spec and the behaviour of a real client profile (ESP v2, periodic querier, page
// requests, Silicon Labs, restart-on-loss, manual), over a link model with 802.15.4 timing (air time,
// CSMA-CA, MAC and APS acks, fragmentation, one shared channel, hops, sleepy devices that poll) and faults
// (loss, duplicates, reboots, slow devices). Devices start as members of the configured network or join
// over the air while permit join is open (join.go); the coordinator answers the ZDO requests addressed to it,
// and Form moves it to the network a host formed, which only that network's members hear.
//
// Network implements ncp.Radio. The whole simulation runs on a *clock.Virtual: for `go run .` the bridge
// paces it in real time, tests drive it by hand (see the simtest sub-package for a scenario harness).
package sim
