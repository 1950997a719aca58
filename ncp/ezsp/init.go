package ezsp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/zcl"
)

// startupConfig is set before networkInit (table sizes are fixed once the stack runs). Values from
// reference/ezsp-znp.md §2.4 (bellows' defaults; APPLICATION_ZDO_FLAGS 0x03 passes ZDO such as Device_annce
// up to the host). PACKET_BUFFER_COUNT goes last, as bellows does; newer stacks ignore it.
var startupConfig = []ConfigurationValue{
	{ConfigStackProfile, 2},
	{ConfigSecurityLevel, 5},
	{ConfigMaxHops, 30},
	{ConfigIndirectTransmissionTimeout, 7680},
	{ConfigTrustCenterAddressCacheSize, 2},
	{ConfigSourceRouteTableSize, 200},
	{ConfigKeyTableSize, 4},
	{ConfigApplicationZDOFlags, 0x03},
	{ConfigSupportedNetworks, 1},
	{ConfigMaxEndDeviceChildren, 32},
	{ConfigPacketBufferCount, 255},
}

// startupConfig is startupConfig with the host fragmentation settings inserted before PACKET_BUFFER_COUNT.
func (d *Driver) startupConfig() []ConfigurationValue {
	last := len(startupConfig) - 1
	out := append([]ConfigurationValue(nil), startupConfig[:last]...)
	out = append(out, ConfigurationValue{ConfigFragmentWindowSize, uint16(d.fragmentWindow())},
		ConfigurationValue{ConfigFragmentDelayMS, uint16(d.cfg.FragmentDelayMS)})
	return append(out, startupConfig[last])
}

// startupPolicies: trust center lets devices rejoin (joins only while permit-join is on), answers TC key
// requests with the current key, denies APP key requests, tells messageSentHandler only the tag, and checks
// binding modifications.
var startupPolicies = []Policy{
	{PolicyTrustCenter, DecisionAllowUnsecuredRejoins},
	{PolicyTCKeyRequest, DecisionAllowTCKeyRequestsAndSendCurrentKey},
	{PolicyAppKeyRequest, DecisionDenyAppKeyRequests},
	{PolicyMessageContentsInCallback, DecisionMessageTagOnlyInCallback},
	{PolicyBindingModification, DecisionCheckBindingModifications},
}

// The coordinator's endpoint: Home Automation, device "Configuration Tool" (0x0005), Basic and OTA Upgrade as
// input (server) clusters so the stick answers Match_Descriptor_Req for an OTA server.
var coordinatorEndpoint = AddEndpoint{
	Endpoint:      ncp.CoordinatorEndpoint,
	ProfileID:     zcl.ProfileHomeAutomation,
	DeviceID:      0x0005,
	InputClusters: []uint16{zcl.ClusterBasic, zcl.ClusterOTA},
}

// initialize runs the whole bring-up on a session: ASH reset, version, configuration, policies, endpoint,
// resume or form, and the read-back of the coordinator's identity. On success the driver is ready.
func (d *Driver) initialize(ctx context.Context, s *session) error {
	d.link.BeginInit()
	defer d.link.EndInit()
	d.mu.Lock()
	d.netUp = false
	d.mu.Unlock()
	start := time.Now()

	if err := d.resetLink(ctx, s); err != nil {
		return err
	}
	vr, err := d.handshake(ctx, s)
	if err != nil {
		return err
	}
	v := s.ver()
	for _, c := range d.startupConfig() {
		f, err := s.command(ctx, IDSetConfigurationValue, c.Append(nil))
		if err != nil {
			return fmt.Errorf("configure the stack: %w", err)
		}
		if st, err := DecodeStatus(f.Params, v, "setConfigurationValue"); err != nil || !st.OK() {
			st = StatusOfFrame(IDSetConfigurationValue, st)
			d.log.Warn().Uint8("config_id", c.ID).Uint16("value", c.Value).Str("status", st.String()).Msg("stick refused a configuration value")
		}
	}
	for _, p := range startupPolicies {
		if _, err := s.statusCommand(ctx, IDSetPolicy, p.Append(nil)); err != nil {
			if isLinkError(err) {
				return fmt.Errorf("set policies: %w", err)
			}
			d.log.Warn().Err(err).Uint8("policy", p.ID).Msg("stick refused a policy")
		}
	}
	if _, err := s.statusCommand(ctx, IDAddEndpoint, coordinatorEndpoint.Append(nil)); err != nil {
		return fmt.Errorf("register endpoint 1: %w", err)
	}
	formed, err := d.startNetwork(ctx, s)
	if err != nil {
		return err
	}

	// Who are we, and where?
	f, err := s.command(ctx, IDGetEUI64, nil)
	if err != nil {
		return fmt.Errorf("read the coordinator's IEEE address: %w", err)
	}
	eui, err := DecodeEUI64(f.Params, "getEui64")
	if err != nil {
		return err
	}
	f, err = s.command(ctx, IDGetNetworkParameters, nil)
	if err != nil {
		return fmt.Errorf("read the network parameters: %w", err)
	}
	np, err := DecodeGetNetworkParametersResponse(f.Params, v)
	if err != nil {
		return err
	}
	if !np.Status.OK() {
		return fmt.Errorf("read the network parameters: %s", np.Status)
	}
	maxPayload := MaxAPSPayloadCap
	if f, err = s.command(ctx, IDMaximumPayloadLength, nil); err == nil {
		if n, err := DecodeU8(f.Params, "maximumPayloadLength", "apsLength"); err == nil && n > 0 {
			maxPayload = min(int(n), MaxAPSPayloadCap)
		}
	} else if isLinkError(err) {
		return err
	}
	conc := SetConcentrator{On: true, Type: ConcentratorHighRAM, MinTime: 10, MaxTime: 90, RouteErrorThreshold: 4, DeliveryFailureThreshold: 3}
	if _, err := s.statusCommand(ctx, IDSetConcentrator, conc.Append(nil)); err != nil {
		if isLinkError(err) {
			return fmt.Errorf("set concentrator: %w", err)
		}
		d.log.Warn().Err(err).Msg("setConcentrator failed: many-to-one routing off")
	}

	info := ncp.NetworkInfo{
		Type:          "ezsp",
		Port:          d.cfg.Port,
		Firmware:      fmt.Sprintf("EmberZNet %s (EZSP v%d)", vr.EmberZNet(), vr.ProtocolVersion),
		Channel:       np.Parameters.RadioChannel,
		PANID:         np.Parameters.PANID,
		ExtendedPANID: np.Parameters.ExtendedPANID,
		IEEE:          eui,
		Formed:        formed != nil,
	}
	if want := d.cfg.Network; formed == nil && ((want.Channel != 0 && want.Channel != info.Channel) ||
		(want.PANID != 0 && want.PANID != info.PANID) || (want.ExtendedPANID != 0 && want.ExtendedPANID != info.ExtendedPANID)) {
		// Never destroy a stored network: a user who wants the configured one must reset the stick.
		d.log.Warn().Uint8("channel", info.Channel).Uint16("pan_id", info.PANID).Stringer("extended_pan_id", info.ExtendedPANID).
			Uint8("configured_channel", want.Channel).Uint16("configured_pan_id", want.PANID).Stringer("configured_extended_pan_id", want.ExtendedPANID).
			Msg("the stick's stored network differs from the configured one; resuming the stored network")
	}
	d.mu.Lock()
	d.info = info
	if formed == nil {
		key := d.network.NetworkKey
		if key.IsZero() {
			key = d.cfg.Network.NetworkKey
		}
		d.network = NetworkSettings{Channel: info.Channel, PANID: info.PANID, ExtendedPANID: info.ExtendedPANID, NetworkKey: key}
	} else {
		d.network = *formed
	}
	d.maxPayload = maxPayload
	d.mu.Unlock()
	d.link.SetReady()
	action := "resumed"
	if formed != nil {
		action = "formed"
	}
	d.log.Info().Str("network", action).Str("firmware", info.Firmware).Stringer("ieee", info.IEEE).
		Uint8("channel", info.Channel).Uint16("pan_id", info.PANID).Stringer("extended_pan_id", info.ExtendedPANID).
		Int("max_aps_payload", maxPayload).Dur("took_ms", time.Since(start)).Msg("EZSP coordinator up")
	return nil
}

// isLinkError reports whether err means the stick is unreachable (as opposed to a refused command).
func isLinkError(err error) bool {
	return errors.Is(err, ErrCommandTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errorsIsAny(err)
}

func errorsIsAny(err error) bool {
	var re *ash.ResetError
	if errors.As(err, &re) {
		return true
	}
	for _, e := range linkErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resetLink sends RST until the stick answers RSTACK, for at most d.to.Reset.
func (d *Driver) resetLink(ctx context.Context, s *session) error {
	deadline := time.Now().Add(d.to.Reset)
	for {
		actx, cancel := context.WithTimeout(ctx, min(d.to.Reset/3+time.Millisecond, time.Until(deadline)))
		code, err := s.conn.Reset(actx)
		cancel()
		if err == nil {
			d.log.Debug().Uint8("reset_code", code).Msg("ASH RSTACK")
			s.mu.Lock()
			s.version = 0
			s.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("reset the stick: %w", ctx.Err())
		}
		if perr := s.conn.Err(); perr != nil {
			return fmt.Errorf("reset the stick on %s: %w", d.cfg.Port, perr)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("no ASH RSTACK from %s within %v: is this a Silicon Labs EZSP stick (not Z-Stack/ZBOSS)?", d.portName(), d.to.Reset)
		}
	}
}

func (d *Driver) portName() string {
	if d.cfg.Port == "" {
		return "the stick"
	}
	return d.cfg.Port
}

// handshake: version(4) in the legacy header, read the stick's version, refuse < 13, then version(stick's)
// in the extended header.
func (d *Driver) handshake(ctx context.Context, s *session) (VersionResponse, error) {
	s.mu.Lock()
	s.legacy = true
	s.mu.Unlock()
	f, err := s.command(ctx, IDVersion, VersionCommand{Desired: uint8(LegacyProbe)}.Append(nil))
	s.mu.Lock()
	s.legacy = false
	s.mu.Unlock()
	if err != nil {
		return VersionResponse{}, fmt.Errorf("EZSP version handshake: %w", err)
	}
	vr, err := DecodeVersionResponse(f.Params)
	if err != nil {
		return VersionResponse{}, fmt.Errorf("EZSP version handshake: %w", err)
	}
	if Version(vr.ProtocolVersion) < MinVersion {
		return vr, fmt.Errorf("%w: stick speaks EZSP v%d (EmberZNet %d.%d); otabridge needs EZSP v%d+ (EmberZNet 7.4 or later): update the stick firmware",
			ErrUnsupportedStick, vr.ProtocolVersion, vr.StackVersion>>12, vr.StackVersion>>8&0xF, MinVersion)
	}
	if vr.StackType != 2 {
		d.log.Warn().Uint8("stack_type", vr.StackType).Msg("stick reports a stack type other than mesh (2)")
	}
	s.mu.Lock()
	s.version = Version(vr.ProtocolVersion)
	s.mu.Unlock()
	f, err = s.command(ctx, IDVersion, VersionCommand{Desired: vr.ProtocolVersion}.Append(nil))
	if err != nil {
		return vr, fmt.Errorf("EZSP version handshake (extended header, v%d): %w", vr.ProtocolVersion, err)
	}
	vr2, err := DecodeVersionResponse(f.Params)
	if err != nil {
		return vr, fmt.Errorf("EZSP version handshake: %w", err)
	}
	if vr2.ProtocolVersion != vr.ProtocolVersion {
		return vr, fmt.Errorf("%w: asked for EZSP v%d, the stick answered v%d", ErrUnsupportedStick, vr.ProtocolVersion, vr2.ProtocolVersion)
	}
	if Version(vr.ProtocolVersion) > MaxKnownVersion {
		d.log.Warn().Uint8("ezsp", vr.ProtocolVersion).Msg("stick speaks a newer EZSP version than otabridge was tested with")
	}
	d.log.Info().Uint8("ezsp", vr.ProtocolVersion).Str("emberznet", vr.EmberZNet()).Msg("EZSP version")
	return vr2, nil
}

// startNetwork resumes the stored network (networkInit) or forms a new one. It returns the formed settings,
// or nil when it resumed.
func (d *Driver) startNetwork(ctx context.Context, s *session) (*NetworkSettings, error) {
	v := s.ver()
	f, err := s.command(ctx, IDNetworkInit, le16(nil, 0x0000))
	if err != nil {
		return nil, fmt.Errorf("resume the network: %w", err)
	}
	st, err := DecodeStatus(f.Params, v, "networkInit")
	if err != nil {
		return nil, err
	}
	switch {
	case st.OK():
		if err := d.waitNetworkUp(ctx); err != nil {
			return nil, fmt.Errorf("resume the network: %w", err)
		}
		return nil, nil
	case !st.Is(StatusNotJoined):
		return nil, fmt.Errorf("resume the network: networkInit: %s", st)
	}

	// No network stored: form one.
	ns := d.chooseNetwork()
	d.log.Info().Uint8("channel", ns.Channel).Uint16("pan_id", ns.PANID).Stringer("extended_pan_id", ns.ExtendedPANID).Msg("no network on the stick: forming one")
	sec := InitialSecurityState{
		Bitmask:          SecurityTrustCenterGlobalLinkKey | SecurityHavePreconfiguredKey | SecurityHaveNetworkKey | SecurityRequireEncryptedKey,
		PreconfiguredKey: WellKnownLinkKey,
		NetworkKey:       ns.NetworkKey,
	}
	if _, err := s.statusCommand(ctx, IDSetInitialSecurityState, sec.Append(nil)); err != nil {
		return nil, fmt.Errorf("form the network: set security: %w", err)
	}
	ext := ValueSetting{ID: ValueExtendedSecurityBitmask, Value: le16(nil, ExtSecurityJoinerGlobalLinkKey|ExtSecurityNwkLeaveRequestNotAllowed)}
	if _, err := s.statusCommand(ctx, IDSetValue, ext.Append(nil)); err != nil {
		if isLinkError(err) {
			return nil, fmt.Errorf("form the network: %w", err)
		}
		d.log.Warn().Err(err).Msg("stick refused the extended security bitmask")
	}
	np := NetworkParameters{ExtendedPANID: ns.ExtendedPANID, PANID: ns.PANID, RadioTxPower: 5, RadioChannel: ns.Channel, Channels: 1 << ns.Channel}
	if _, err := s.statusCommand(ctx, IDFormNetwork, np.Append(nil)); err != nil {
		return nil, fmt.Errorf("form the network: %w", err)
	}
	if err := d.waitNetworkUp(ctx); err != nil {
		return nil, fmt.Errorf("form the network: %w", err)
	}
	return &ns, nil
}

// chooseNetwork fills the zero fields of the configured network at random.
func (d *Driver) chooseNetwork() NetworkSettings {
	ns := d.cfg.Network
	if ns.Channel == 0 {
		ns.Channel = []uint8{11, 15, 20, 25}[randomBytes(1)[0]%4]
	}
	for ns.PANID == 0 || ns.PANID >= 0xFFF7 {
		ns.PANID = binary.LittleEndian.Uint16(randomBytes(2))
	}
	for ns.ExtendedPANID == 0 || ns.ExtendedPANID == zcl.IEEE(^uint64(0)) {
		ns.ExtendedPANID = zcl.IEEE(binary.LittleEndian.Uint64(randomBytes(8)))
	}
	for ns.NetworkKey.IsZero() {
		copy(ns.NetworkKey[:], randomBytes(16))
	}
	return ns
}

// waitNetworkUp waits for stackStatusHandler(NETWORK_UP).
func (d *Driver) waitNetworkUp(ctx context.Context) error {
	t := time.NewTimer(d.to.NetworkUp)
	defer t.Stop()
	for {
		d.mu.Lock()
		up, ch := d.netUp, d.netChanged
		d.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return fmt.Errorf("no NETWORK_UP stack status within %v", d.to.NetworkUp)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
