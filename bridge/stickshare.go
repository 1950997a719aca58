package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Sharing the stick with the Zigbee2MQTT add-on (existing.stop_addon): before it opens the stick otabridge
// stops that add-on through the Supervisor API (when it runs), and starts it again when the OTA queue has
// run empty after work (otabridge then closes the radio) or when otabridge stops. `<base>/bridge/stick`
// (retained) tells whether otabridge holds the stick, since when and for how long, for automations and the
// bridge's "Holds the Zigbee stick" entity in Home Assistant.

// DefaultSupervisorURL is the Supervisor API as an add-on reaches it.
const DefaultSupervisorURL = "http://supervisor"

// stickShare is the state of the handover.
type stickShare struct {
	slug     string // the add-on to stop ("" when sharing is off)
	stopped  bool   // otabridge stopped it, so it starts it again
	held     bool   // otabridge holds the stick (radio open)
	since    time.Time
	released time.Time
	hadWork  atomic.Bool // a transfer started since otabridge took the stick
}

// supervisorRequest calls the Supervisor API: method on path, the JSON answer's data into out (may be nil).
func (b *Bridge) supervisorRequest(ctx context.Context, method, path string, out any) error {
	base := strings.TrimRight(b.cfg.Existing.SupervisorURL, "/")
	if base == "" {
		base = DefaultSupervisorURL
	}
	token := b.opts.SupervisorToken
	if token == "" {
		token = os.Getenv("SUPERVISOR_TOKEN")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("Supervisor %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Result  string          `json:"result"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != http.StatusOK || env.Result != "ok" {
		msg := env.Message
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("Supervisor %s %s: HTTP %d: %s", method, path, resp.StatusCode, msg)
	}
	if out != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("Supervisor %s %s: %w", method, path, err)
		}
	}
	return nil
}

// takeStick stops the other add-on before the radio opens the stick (when it runs). An error stops the
// start: otabridge never opens a stick another host still holds.
func (b *Bridge) takeStick(ctx context.Context) error {
	slug := b.cfg.Existing.StopAddon
	if slug == "" {
		return nil
	}
	b.share.slug = slug
	var info struct {
		State string `json:"state"`
	}
	if err := b.supervisorRequest(ctx, http.MethodGet, "/addons/"+slug+"/info", &info); err != nil {
		return fmt.Errorf("existing.stop_addon %s: %w", slug, err)
	}
	if info.State != "started" {
		b.log.Info().Str("addon", slug).Str("state", info.State).Msg("the other add-on does not run: nothing to stop")
		return nil
	}
	b.log.Info().Str("addon", slug).Msg("stopping the other add-on to take the Zigbee stick")
	if err := b.supervisorRequest(ctx, http.MethodPost, "/addons/"+slug+"/stop", nil); err != nil {
		return fmt.Errorf("existing.stop_addon %s: %w", slug, err)
	}
	b.mu.Lock()
	b.share.stopped = true
	b.mu.Unlock()
	return nil
}

// stickHeld records that the radio holds the stick and publishes it.
func (b *Bridge) stickHeld() {
	b.mu.Lock()
	b.share.held, b.share.since = true, time.Now().UTC()
	b.mu.Unlock()
	b.publishStick()
}

// publishStick publishes `<base>/bridge/stick`.
func (b *Bridge) publishStick() {
	b.mu.Lock()
	held, since, released, slug := b.share.held, b.share.since, b.share.released, b.share.slug
	b.mu.Unlock()
	p := map[string]any{"held": held, "since": since.Format(time.RFC3339), "other_host": slug}
	if !held && !released.IsZero() {
		p["held_seconds"] = int64(released.Sub(since).Seconds())
		p["released"] = released.Format(time.RFC3339)
	}
	b.pub.retained(b.topic("bridge/stick"), mustJSON(p))
}

// releaseStick closes the radio and starts the other add-on again (when otabridge stopped it). It is
// idempotent; why goes to the log.
func (b *Bridge) releaseStick(why string) {
	b.mu.Lock()
	if !b.share.held {
		b.mu.Unlock()
		return
	}
	b.share.held, b.share.released = false, time.Now().UTC()
	restart := b.share.stopped
	b.share.stopped = false
	b.radioState = "released"
	b.mu.Unlock()
	_ = b.radio.Close()
	b.log.Info().Str("why", why).Str("addon", b.share.slug).Bool("restart", restart).Msg("Zigbee stick released")
	defer b.publishStick() // after the other add-on was started: an automation may act on it
	b.markInfoDirty()
	if restart {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.supervisorRequest(ctx, http.MethodPost, "/addons/"+b.share.slug+"/start", nil); err != nil {
			b.log.Error().Err(err).Str("addon", b.share.slug).Msg("could not start the other add-on again: start it by hand")
			return
		}
		b.log.Info().Str("addon", b.share.slug).Msg("the other add-on started again")
	}
}

// watchQueue releases the stick once the OTA queue, after a transfer started, is empty again (checked
// every interval, twice in a row). Only with existing.stop_addon set.
func (b *Bridge) watchQueue(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		active, queued := b.engine.Counts()
		switch {
		case active+queued > 0:
			idle = 0
		case b.share.hadWork.Load():
			idle++
			if idle >= 2 {
				b.releaseStick("the OTA queue is done")
				return
			}
		}
	}
}
