package zboss

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// SupportedStackMajor is the ZBOSS stack generation the driver speaks to: ZBOSS 3.x, the stack of Nordic's
// nRF52840 NCP firmware and of esp-zigbee-lib 1.x that esp-coordinator is built on.
const SupportedStackMajor = 3

// nvNetwork is the network a stick reports from its NVRAM.
type nvNetwork struct {
	joined  bool
	role    uint8
	channel uint8
	panID   uint16
	extPAN  zcl.IEEE
	ieee    zcl.IEEE
}

// initialize resets the stick, checks its versions, resumes or forms the network, sets the trust-center
// policies and registers endpoint 1. Each failure names its step.
func (d *Driver) initialize(ctx context.Context, s *session) error {
	d.link.SetNotReady("initialising")
	d.link.BeginInit()
	defer d.link.EndInit()
	step := func(what string, err error) error {
		return fmt.Errorf("zboss stick on %s: %s: %w", d.cfg.Port, what, err)
	}
	if _, err := s.call(ctx, CallNCPReset, []byte{ResetNoOptions}, d.to.Reset); err != nil {
		return step("reset", err)
	}
	p, err := s.call(ctx, CallGetModuleVersion, nil, d.to.Command)
	if err != nil {
		return step("read versions", err)
	}
	ver, err := DecodeModuleVersion(p.Params)
	if err != nil {
		return step("read versions", err)
	}
	firmware := fmt.Sprintf("ZBOSS %s (firmware %s, NCP protocol %s)", VersionString(ver.Stack), VersionString(ver.Firmware), VersionString(ver.Protocol))
	if ver.Stack>>24 != SupportedStackMajor {
		return fmt.Errorf("zboss stick on %s: %w: it reports %s; otabridge speaks to ZBOSS %d.x NCP firmware (esp-coordinator, nRF52840 ZBOSS NCP)",
			d.cfg.Port, ErrUnsupportedStick, firmware, SupportedStackMajor)
	}
	have, err := d.readNVNetwork(ctx, s)
	if err != nil {
		return step("read the network in NVRAM", err)
	}
	want := d.wantedNetwork()
	if have.joined && have.role == RoleCoordinator && matches(have, want) {
		if _, err := s.call(ctx, CallNWKStartWithoutForm, nil, d.to.Formation); err != nil {
			return step("resume the network", err)
		}
		d.log.Info().Uint8("channel", have.channel).Str("pan_id", fmt.Sprintf("0x%04X", have.panID)).Msg("resumed the network in NVRAM")
	} else {
		if have.joined {
			d.log.Warn().Uint8("channel", have.channel).Str("pan_id", fmt.Sprintf("0x%04X", have.panID)).Stringer("extended_pan_id", have.extPAN).
				Uint8("want_channel", want.Channel).Str("want_pan_id", fmt.Sprintf("0x%04X", want.PANID)).
				Msg("the stick holds another network: erasing it and forming the configured one")
			if _, err := s.call(ctx, CallNCPReset, []byte{ResetFactory}, d.to.Reset); err != nil {
				return step("factory reset", err)
			}
		}
		want = d.chooseNetwork(want, have.ieee)
		if err := d.form(ctx, s, want); err != nil {
			return err
		}
		d.log.Info().Uint8("channel", want.Channel).Str("pan_id", fmt.Sprintf("0x%04X", want.PANID)).Stringer("extended_pan_id", want.ExtendedPANID).
			Msg("formed a network")
	}
	for _, pol := range []struct {
		typ uint16
		val uint8
	}{{PolicyLinkKeyRequired, 0}, {PolicyICRequired, 0}, {PolicyTCRejoinEnabled, 1}, {PolicyIgnoreTCRejoin, 0}, {PolicyAPSInsecureJoin, 0},
		{PolicyDisableNWKMgmtChanUpd, 0}} {
		if _, err := s.call(ctx, CallSetTCPolicy, append(AppendU16(nil, pol.typ), pol.val), d.to.Command); err != nil {
			return step(fmt.Sprintf("set trust-center policy %d", pol.typ), err)
		}
	}
	ep := SimpleDesc{Endpoint: ncp.CoordinatorEndpoint, ProfileID: zcl.ProfileHomeAutomation, DeviceID: 0x0005,
		InClusters: []uint16{zcl.ClusterBasic, zcl.ClusterOTA}}
	if _, err := s.call(ctx, CallAFSetSimpleDesc, ep.Append(nil), d.to.Command); err != nil {
		return step("register endpoint 1", err)
	}
	if _, err := s.call(ctx, CallSetRxOnWhenIdle, []byte{1}, d.to.Command); err != nil {
		return step("set rx on when idle", err)
	}
	now, err := d.readNVNetwork(ctx, s)
	if err != nil {
		return step("read the network back", err)
	}
	net := ncp.NetworkSettings{Channel: now.channel, PANID: now.panID, ExtendedPANID: now.extPAN, NetworkKey: want.NetworkKey}
	if p, err := s.call(ctx, CallGetNWKKeys, nil, d.to.Command); err == nil && len(p.Params) >= 16 {
		var k ncp.NetworkKey
		copy(k[:], p.Params[:16])
		if !k.IsZero() {
			net.NetworkKey = k
		}
	}
	d.mu.Lock()
	d.network = net
	d.info = ncp.NetworkInfo{Type: "zboss", Port: d.cfg.Port, Firmware: firmware, Channel: now.channel, PANID: now.panID,
		ExtendedPANID: now.extPAN, IEEE: now.ieee}
	d.mu.Unlock()
	d.link.SetReady()
	d.log.Info().Str("firmware", firmware).Uint8("channel", now.channel).Str("pan_id", fmt.Sprintf("0x%04X", now.panID)).
		Stringer("ieee", now.ieee).Msg("stick ready")
	return nil
}

// readNVNetwork asks the stick for the network it holds.
func (d *Driver) readNVNetwork(ctx context.Context, s *session) (nvNetwork, error) {
	var n nvNetwork
	get := func(c CallID, params []byte, min int) ([]byte, error) {
		p, err := s.call(ctx, c, params, d.to.Command)
		if err != nil {
			return nil, err
		}
		if len(p.Params) < min {
			return nil, fmt.Errorf("%s: %w", c, ErrShortParams)
		}
		return p.Params, nil
	}
	b, err := get(CallGetJoined, nil, 1)
	if err != nil {
		return n, err
	}
	n.joined = b[0] == 1
	if b, err = get(CallGetZigbeeRole, nil, 1); err != nil {
		return n, err
	}
	n.role = b[0]
	if b, err = get(CallGetLocalIEEE, []byte{0}, 9); err != nil {
		return n, err
	}
	n.ieee = zcl.IEEE(binary.LittleEndian.Uint64(b[1:9]))
	if b, err = get(CallGetExtendedPANID, nil, 8); err != nil {
		return n, err
	}
	// Most significant byte first, as ZBOSS NCPs answer (herdsman 10.9.5 reverses these bytes likewise).
	n.extPAN = zcl.IEEE(binary.BigEndian.Uint64(b[:8]))
	if b, err = get(CallGetPANID, nil, 2); err != nil {
		return n, err
	}
	n.panID = binary.LittleEndian.Uint16(b)
	if b, err = get(CallGetChannel, nil, 2); err != nil {
		return n, err
	}
	n.channel = b[1]
	return n, nil
}

// wantedNetwork is the configured (or saved) network.
func (d *Driver) wantedNetwork() ncp.NetworkSettings { return d.cfg.Network }

// matches reports whether the stick's network is the wanted one; fields left to chance match anything.
func matches(have nvNetwork, want ncp.NetworkSettings) bool {
	return (want.Channel == 0 || want.Channel == have.channel) && (want.PANID == 0 || want.PANID == have.panID) &&
		(want.ExtendedPANID == 0 || want.ExtendedPANID == have.extPAN)
}

// chooseNetwork fills what the configuration leaves to chance.
func (d *Driver) chooseNetwork(n ncp.NetworkSettings, ieee zcl.IEEE) ncp.NetworkSettings {
	if n.Channel == 0 {
		n.Channel = []uint8{11, 15, 20, 25}[randomBytes(1)[0]%4]
	}
	for n.PANID == 0 || n.PANID >= 0xFFF7 {
		n.PANID = binary.LittleEndian.Uint16(randomBytes(2))
	}
	if n.ExtendedPANID == 0 {
		n.ExtendedPANID = zcl.IEEE(binary.LittleEndian.Uint64(randomBytes(8)))
		if n.ExtendedPANID == 0 {
			n.ExtendedPANID = ieee
		}
	}
	if n.NetworkKey.IsZero() {
		copy(n.NetworkKey[:], randomBytes(16))
	}
	return n
}

// form makes the stick a coordinator and forms n.
func (d *Driver) form(ctx context.Context, s *session, n ncp.NetworkSettings) error {
	step := func(what string, err error) error {
		return fmt.Errorf("zboss stick on %s: form: %s: %w", d.cfg.Port, what, err)
	}
	mask := uint32(1) << n.Channel
	if _, err := s.call(ctx, CallSetZigbeeRole, []byte{RoleCoordinator}, d.to.Command); err != nil {
		return step("set role coordinator", err)
	}
	if _, err := s.call(ctx, CallSetChannelMask, binary.LittleEndian.AppendUint32([]byte{0}, mask), d.to.Command); err != nil {
		return step(fmt.Sprintf("set channel mask (channel %d)", n.Channel), err)
	}
	if _, err := s.call(ctx, CallSetPANID, AppendU16(nil, n.PANID), d.to.Command); err != nil {
		return step("set PAN id", err)
	}
	if _, err := s.call(ctx, CallSetNWKKey, append(append([]byte(nil), n.NetworkKey[:]...), 0), d.to.Command); err != nil {
		return step("set network key", err)
	}
	f := Formation{ChannelMask: mask, ScanDuration: 5, ExtendedPANID: n.ExtendedPANID}
	if _, err := s.call(ctx, CallNWKFormation, f.Append(nil), d.to.Formation); err != nil {
		return step(fmt.Sprintf("formation on channel %d (mask 0x%08x)", n.Channel, mask), err)
	}
	return nil
}
