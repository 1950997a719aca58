#!/bin/sh
# Builds the otabridge release binary: static (CGO off), reproducible paths (-trimpath), stripped, with the
# version stamped into main.version. This is the one place the release build command lives: the root
# Dockerfile, addon/Dockerfile and CI all call it.
#
# usage: scripts/build.sh OUT [VERSION]
#   OUT      path of the binary to write
#   VERSION  version to stamp (default: "dev")
# GOOS and GOARCH from the environment select the target, as for any go build (Dockerfiles cross-compile
# from the build platform with GOARCH=$TARGETARCH).
set -eu

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ] || [ -z "$1" ]; then
	echo "usage: $0 OUT [VERSION]" >&2
	exit 2
fi
out=$1
version=${2:-dev}

case $version in
*[!A-Za-z0-9._+-]*)
	echo "$0: version $version: only letters, digits and . _ + - are allowed" >&2
	exit 2
	;;
esac

# Build from the module root whatever the caller's working directory; OUT stays relative to the caller's.
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."

CGO_ENABLED=0 exec go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" .
