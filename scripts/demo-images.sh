#!/bin/sh
# Rebuilds the demo OTA images in images/ that upgrade the simulated devices of config.yaml, with
# `otabridge ota create`. The firmware payloads are deterministic filler, so the files (and their sha512 in
# images/index.json) only change when this script does. Run from the repository root:
#   sh scripts/demo-images.sh        (or: go generate .)
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/otabridge" .

# firmware NAME SIZE: deterministic filler bytes for a demo firmware image.
firmware() {
	yes "otabridge demo firmware $1 - not a real image" | head -c "$2" >"$tmp/$1.bin"
}

firmware esp32c6-light-1.1.0 40960
"$tmp/otabridge" ota create --manufacturer 0x131B --image-type 0x0001 --version 0x01010000 \
	--hw-min 1 --hw-max 1 --header-string "ESP32-C6 Light 1.1.0" \
	"$tmp/esp32c6-light-1.1.0.bin" -o images/esp32c6-light-1.1.0.ota

firmware tradfri-bulb-2.4.5 36864
"$tmp/otabridge" ota create --manufacturer 0x117C --image-type 0x2801 --version 0x24054631 \
	--header-string "TRADFRI bulb E27 WW 2.4.5" \
	"$tmp/tradfri-bulb-2.4.5.bin" -o images/tradfri-bulb-e27-2.4.5.ota

firmware door-sensor-0.0.0_0027 24576
"$tmp/otabridge" ota create --manufacturer 0x115F --image-type 0x0011 --version 0x0000001B \
	--header-string "lumi.sensor_magnet.aq2 27" \
	"$tmp/door-sensor-0.0.0_0027.bin" -o images/door-sensor-27.ota

# The index gives the demo images human-readable versions and release notes (zigbee-OTA index format,
# plus otabridge's "version" key).
sha() { sha512sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }
cat >images/index.json <<JSON
[
  {
    "fileName": "esp32c6-light-1.1.0.ota",
    "url": "esp32c6-light-1.1.0.ota",
    "sha512": "$(sha images/esp32c6-light-1.1.0.ota)",
    "version": "1.1.0",
    "releaseNotes": "Demo: smoother dimming curve and faster reconnect after power loss."
  },
  {
    "fileName": "tradfri-bulb-e27-2.4.5.ota",
    "url": "tradfri-bulb-e27-2.4.5.ota",
    "sha512": "$(sha images/tradfri-bulb-e27-2.4.5.ota)",
    "version": "2.4.5",
    "releaseNotes": "https://github.com/otabridge/otabridge/blob/main/images/README.md"
  },
  {
    "fileName": "door-sensor-27.ota",
    "url": "door-sensor-27.ota",
    "sha512": "$(sha images/door-sensor-27.ota)",
    "version": "0.0.0_0027",
    "releaseNotes": "Demo: lower battery drain while idle."
  }
]
JSON
echo "demo images rebuilt in images/"
