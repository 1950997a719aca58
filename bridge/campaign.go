package bridge

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/otabridge/otabridge/discovery"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// Campaigns over MQTT: update_all makes a campaign (ota.Engine owns it); its progress is retained on
// `<base>/bridge/campaign/<id>` and shown in HA as a sensor while it runs; campaign/pause, resume, cancel
// and remove act on it. Battery readings (Power Configuration cluster) for ota.min_battery are read here.

// CampaignChanged publishes a campaign's progress (retained) and adds or removes its HA sensor. The engine
// calls it under its lock: it only queues messages.
func (o *engineOutput) CampaignChanged(st ota.CampaignStatus) {
	b := o.b
	running := st.State != ota.CampaignFinished
	b.mu.Lock()
	if b.campaignLatest == nil {
		b.campaignLatest = map[string]ota.CampaignStatus{}
	}
	b.campaignLatest[st.ID] = st
	b.mu.Unlock()
	b.campaignsPub.trigger()
	if !b.cfg.MQTT.Discovery {
		return
	}
	b.mu.Lock()
	if b.campaignSensors == nil {
		b.campaignSensors = map[string]bool{}
	}
	announced := b.campaignSensors[st.ID]
	b.campaignSensors[st.ID] = running
	b.mu.Unlock()
	switch {
	case running && !announced:
		b.publishCampaignSensor(st.ID, st.Name)
	case !running && announced:
		b.pub.retained(b.disc.RemoveCampaign(st.ID).Topic, nil)
	}
}

// flushCampaigns publishes the campaign states that changed since the last run.
func (b *Bridge) flushCampaigns() {
	b.mu.Lock()
	latest := b.campaignLatest
	b.campaignLatest = nil
	b.mu.Unlock()
	for id, st := range latest {
		b.pub.retained(b.disc.CampaignTopic(id), mustJSON(st))
	}
}

func (b *Bridge) publishCampaignSensor(id, name string) {
	m, err := b.disc.CampaignConfig(id, name)
	if err != nil {
		b.log.Warn().Err(err).Str("campaign", id).Msg("campaign discovery config")
		return
	}
	b.pub.retained(m.Topic, m.Payload)
}

// publishCampaigns publishes every campaign's progress and the sensors of the running ones (on start and
// after HA's birth message).
func (b *Bridge) publishCampaigns() {
	for _, st := range b.engine.Campaigns() {
		b.pub.retained(b.disc.CampaignTopic(st.ID), mustJSON(st))
		if b.cfg.MQTT.Discovery && st.State != ota.CampaignFinished {
			b.publishCampaignSensor(st.ID, st.Name)
		}
	}
}

// ReadBattery reads the device's battery in the background (the engine asks before serving a held battery
// device); the reading goes to the engine.
func (o *engineOutput) ReadBattery(dst zcl.IEEE) {
	b := o.b
	b.mu.Lock()
	if b.batteryReads == nil {
		b.batteryReads = map[zcl.IEEE]bool{}
	}
	busy := b.batteryReads[dst]
	b.batteryReads[dst] = true
	b.mu.Unlock()
	if busy {
		return
	}
	b.goRun(func() {
		defer func() {
			b.mu.Lock()
			delete(b.batteryReads, dst)
			b.mu.Unlock()
		}()
		b.readBattery(b.ctx, dst)
	})
}

// readBattery reads Power Configuration BatteryPercentageRemaining (half percent), or BatteryVoltage
// (100 mV) where that is all the device has, and tells the engine. Devices without the cluster are left
// alone (no hold for them).
func (b *Bridge) readBattery(ctx context.Context, ieee zcl.IEEE) {
	d, ok := b.registry.ByIEEE(ieee)
	if !ok {
		return
	}
	recs, err := b.iv.ReadAttributes(ctx, TargetOf(d), zcl.ClusterPowerConfig, zcl.ClientToServer,
		[]uint16{zcl.AttrPowerBatteryPercentageRemaining, zcl.AttrPowerBatteryVoltage})
	if err != nil {
		b.log.Info().Stringer("ieee", ieee).Err(err).Msg("battery not read")
		return
	}
	percent, ok := batteryPercent(recs)
	if !ok {
		b.log.Info().Stringer("ieee", ieee).Msg("device reports no usable battery level")
		return
	}
	b.engine.SetBattery(ieee, percent)
}

// batteryPercent turns Power Configuration records into percent: BatteryPercentageRemaining/2 when valid
// (0..200), else BatteryVoltage mapped linearly from 2.0 V (empty) to 3.0 V (full) — a 3 V lithium cell or
// two 1.5 V cells, the packs of nearly every Zigbee battery device.
func batteryPercent(recs []zcl.ReadAttributeRecord) (float64, bool) {
	voltage, hasVoltage := 0.0, false
	for _, r := range recs {
		if r.Status != zcl.StatusSuccess {
			continue
		}
		switch r.AttributeID {
		case zcl.AttrPowerBatteryPercentageRemaining:
			if r.Value.Uint <= 200 {
				return float64(r.Value.Uint) / 2, true
			}
		case zcl.AttrPowerBatteryVoltage:
			if r.Value.Uint > 0 && r.Value.Uint < 0xFF {
				voltage, hasVoltage = float64(r.Value.Uint)/10, true
			}
		}
	}
	if !hasVoltage {
		return 0, false
	}
	return math.Round(min(max((voltage-2.0)*100, 0), 100)), true
}

// campaignArg reads the required campaign "id".
func (b *Bridge) campaignArg(req *request) (string, error) {
	id, err := req.str("id", true)
	if err != nil {
		return "", err
	}
	if err := req.unknown(); err != nil {
		return "", err
	}
	if _, ok := b.engine.CampaignStatus(id); !ok {
		return "", badRequest("unknown campaign %q", id)
	}
	return id, nil
}

func (b *Bridge) campaignOp(op func(id string) (ota.CampaignStatus, error)) requestHandler {
	return func(_ context.Context, req *request) (any, error) {
		id, err := b.campaignArg(req)
		if err != nil {
			return nil, err
		}
		return op(id)
	}
}

// apiCampaignRemove forgets a finished campaign and clears its retained topic.
func (b *Bridge) apiCampaignRemove(_ context.Context, req *request) (any, error) {
	id, err := b.campaignArg(req)
	if err != nil {
		return nil, err
	}
	if err := b.engine.ForgetCampaign(id); err != nil {
		return nil, err
	}
	b.mu.Lock()
	delete(b.campaignSensors, id)
	delete(b.campaignLatest, id)
	b.mu.Unlock()
	b.pub.retained(b.disc.CampaignTopic(id), nil)
	return map[string]any{"id": id}, nil
}

// campaignID picks the id of a new campaign: the slug of its name, or "campaign-<UTC time>".
func (b *Bridge) campaignID(name string) string {
	id := ""
	if name != "" {
		id = discovery.Slug(name)
	}
	if id == "" || id == "unnamed" {
		id = "campaign-" + time.Now().UTC().Format("20060102-150405")
	}
	base := id
	for i := 2; ; i++ {
		st, ok := b.engine.CampaignStatus(id)
		if !ok || st.State == ota.CampaignFinished {
			return id
		}
		id = fmt.Sprintf("%s-%d", base, i)
	}
}

// campaignEvent publishes an engine event that belongs to no device (campaign_finished) as it is.
func (b *Bridge) campaignEvent(ev ota.Event) {
	b.pub.event(b.topic("bridge/event"), mustJSON(map[string]any{"type": ev.Type, "data": ev.Data}))
}
