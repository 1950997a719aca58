# syntax=docker/dockerfile:1
# Standalone container image of otabridge (the Home Assistant add-on has its own: addon/Dockerfile).
#
# Build (from the repository root):
#   docker build --build-arg VERSION=0.1.0 -t otabridge .
# Run with a coordinator stick and an external MQTT broker:
#   docker run -d --name otabridge --restart unless-stopped \
#     --device /dev/serial/by-id/usb-ITead_Sonoff_Zigbee_3.0_USB_Dongle_Plus_V2_xxxx-if00:/dev/ttyACM0 \
#     -e OTABRIDGE_RADIO_TYPE=ezsp -e OTABRIDGE_RADIO_PORT=/dev/ttyACM0 \
#     -e OTABRIDGE_MQTT_SERVER=mqtt://192.168.1.10:1883 \
#     -e OTABRIDGE_MQTT_USERNAME=otabridge -e OTABRIDGE_MQTT_PASSWORD=secret \
#     -v otabridge-data:/data \
#     otabridge
# Every configuration key can be set by an OTABRIDGE_<KEY_PATH> variable or in /data/config.yaml (a named
# volume starts with a comment-only one; a bind-mounted folder needs its own, and must be writable by the
# image's user: uid 1000, group dialout (gid 20), e.g. chown -R 1000:20 DIR). If the host's dialout
# group has another gid, add --group-add <gid>. OTA files go in the volume's images/ folder (/data/images).

# Build stage: runs on the build machine's platform and cross-compiles for the target (no emulation).
FROM --platform=$BUILDPLATFORM golang:1.26.6@sha256:640a234f4bea3e399c056b7b8f9c667c4939befae8db2f14e9785e16eccd4205 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} scripts/build.sh /out/otabridge "${VERSION}"

# Runtime: small, non-root, in the dialout group so it may open the serial device.
# Bases pinned by exact tag and digest, as in addon/Dockerfile (update both together).
FROM alpine:3.24.1@sha256:28bd5fe8b56d1bd048e5babf5b10710ebe0bae67db86916198a6eec434943f8b
ARG VERSION=dev
LABEL org.opencontainers.image.title="otabridge" \
      org.opencontainers.image.description="Zigbee OTA upgrade server bridged to MQTT with Home Assistant discovery" \
      org.opencontainers.image.source="https://github.com/otabridge/otabridge" \
      org.opencontainers.image.version="${VERSION}"
# /data/config.yaml starts as comments only (all defaults), so a fresh volume needs only environment
# variables; replace it with a full configuration (see config.yaml in the repository) when you want one.
RUN apk add --no-cache ca-certificates tzdata \
    && adduser -S -D -H -u 1000 -h /data -G dialout otabridge \
    && mkdir -p /data/images \
    && printf '%s\n' '# otabridge configuration: keys as in config.yaml of the repository.' \
        '# OTABRIDGE_<KEY_PATH> environment variables override them (e.g. OTABRIDGE_MQTT_SERVER).' > /data/config.yaml \
    && chown -R otabridge:dialout /data
COPY --from=build /out/otabridge /usr/bin/otabridge
ENV OTABRIDGE_DATA_DIR=/data \
    OTABRIDGE_IMAGES_FOLDER=/data/images
USER otabridge
VOLUME ["/data"]
WORKDIR /data
# The bridge rewrites /data/health every 30 s; the check fails when that heartbeat is older than 90 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/bin/otabridge", "health", "--data-dir", "/data", "--max-age", "90s"]
ENTRYPOINT ["/usr/bin/otabridge"]
CMD ["run", "--config", "/data/config.yaml"]
