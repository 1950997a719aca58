package bridge

// The web console's side in the bridge: what the bridge publishes on MQTT also feeds the console's hub
// (retained state by key, events), plus two keys only the console has — the images with the devices they
// match, and the MQTT connection status — and the console's actions run through runRequest, the MQTT
// request code.

import (
	"context"
	"net/url"
	"strings"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/web"
)

// Keys of the console's hub that MQTT has no topic for.
const (
	webKeyImages = "web/images"
	webKeyStatus = "web/status"
)

// webRequester runs the console's actions as requests (web.Requester).
type webRequester struct{ b *Bridge }

func (r webRequester) Request(ctx context.Context, path string, payload []byte) []byte {
	release, ok := r.b.takeLargeSlot(len(payload)) // uploads share the MQTT API's bound
	if !ok {
		r.b.logResponse(path, "web", errBusyUploads)
		return responseJSON(peekTransaction(payload), nil, errBusyUploads)
	}
	defer release()
	return r.b.runRequest(ctx, "web", path, payload)
}

func (r webRequester) TooLarge(size int64) []byte {
	return responseJSON(nil, nil, payloadTooLarge(size))
}

func (r webRequester) MaxRequestBytes() int64 { return maxRequestPayload }

// startWeb starts the console when web.enabled. A console that cannot listen (the port is taken) is logged
// and left off: firmware updates over MQTT go on without it.
func (b *Bridge) startWeb() {
	if !b.cfg.Web.Enabled {
		return
	}
	hub := web.NewHub(clock.Real{}, 0)
	srv := web.NewServer(b.cfg.Web, hub, webRequester{b}, b.log.With().Str("component", "web").Logger())
	b.hub = hub // before any goroutine that publishes starts
	b.pub.setTap(b.webTap)
	if err := srv.Start(); err != nil {
		b.log.Error().Err(err).Str("listen", b.cfg.Web.Listen).Msg("web console off: cannot listen (set web.listen to a free address)")
		return
	}
	b.mu.Lock()
	b.webSrv = srv
	b.mu.Unlock()
}

// stopWeb stops the console (its live feeds first) and the hub.
func (b *Bridge) stopWeb() {
	b.mu.Lock()
	srv, hub := b.webSrv, b.hub
	b.webSrv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	if hub != nil {
		hub.Close()
	}
}

// WebAddr is the address the web console listens on ("" when it is off or not started yet).
func (b *Bridge) WebAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.webSrv == nil {
		return ""
	}
	return b.webSrv.Addr()
}

// webTap passes what is published to the console's hub: `<base>/bridge/info`, `bridge/devices` and every
// `<name>/ota` by their topic under the base, and `bridge/event` as events. It only stores and signals, so
// it may run under the engine's lock.
func (b *Bridge) webTap(topic string, payload []byte, retained bool) {
	key, ok := strings.CutPrefix(topic, b.cfg.MQTT.BaseTopic+"/")
	if !ok {
		return
	}
	if !retained {
		if key == "bridge/event" {
			b.hub.Event(payload)
		}
		return
	}
	switch {
	case key == "bridge/info", key == "bridge/devices", strings.HasSuffix(key, "/ota"): // no bridge/… topic ends in /ota
		if len(payload) == 0 {
			b.hub.Delete(key)
		} else {
			b.hub.Set(key, payload)
		}
	}
}

// webImage is one entry of the console's image list: the image and the devices it may be installed on.
type webImage struct {
	ota.ImageInfo
	Matches []webMatch `json:"matches"`
}

type webMatch struct {
	IEEE         string `json:"ieee"`
	FriendlyName string `json:"friendly_name"`
	// Upgrade: the image is newer than the installed version (what a check would offer).
	Upgrade bool `json:"upgrade"`
}

// publishWebImages gives the console the images with the devices each matches (after the images or the
// devices changed).
func (b *Bridge) publishWebImages() {
	if b.hub == nil || b.store == nil {
		return
	}
	devices := b.registry.All()
	imgs := b.store.Images()
	list := make([]webImage, 0, len(imgs))
	for _, img := range imgs {
		wi := webImage{ImageInfo: img.Info(), Matches: []webMatch{}}
		for _, d := range devices {
			info := d.EngineInfo()
			if ok, _ := ota.Compatible(img, info); !ok {
				continue
			}
			up, _ := ota.Matches(img, info)
			wi.Matches = append(wi.Matches, webMatch{IEEE: d.IEEE.String(), FriendlyName: d.FriendlyName, Upgrade: up})
		}
		list = append(list, wi)
	}
	b.hub.Set(webKeyImages, mustJSON(list))
}

// publishWebStatus gives the console the MQTT connection state (the hub sends it only when it changed).
func (b *Bridge) publishWebStatus() {
	if b.hub == nil {
		return
	}
	server := b.cfg.MQTT.Server
	if u, err := url.Parse(server); err == nil && u.User != nil {
		u.User = nil
		server = u.String()
	}
	b.hub.Set(webKeyStatus, mustJSON(map[string]any{"mqtt_connected": b.mqtt.Connected(), "mqtt_server": server}))
}
