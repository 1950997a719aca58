package znp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// SkipBootloaderByte makes the serial bootloader of CC2530/CC2531 sticks (and some CC2652 boards built
// the same way) run the Z-Stack image at once instead of waiting for a firmware upload.
const SkipBootloaderByte = 0xEF

// initialize brings a stick up on c: find it, check its firmware, reset it, resume or form the network,
// register endpoint 1, switch the LED off.
func (d *Driver) initialize(ctx context.Context, c *Conn) error {
	d.link.BeginInit()
	defer d.link.EndInit()
	if err := d.findStick(ctx, c); err != nil {
		return err
	}
	b, err := c.Request(ctx, SysVersion, nil, 0)
	if err != nil {
		return fmt.Errorf("znp: read the firmware version: %w", err)
	}
	v, err := DecodeVersion(b)
	if err != nil {
		return fmt.Errorf("znp: read the firmware version: %w", err)
	}
	if v.Product != ProductZStack3x0 && v.Product != ProductZStack30x {
		return fmt.Errorf("%w on %s: the stick runs %s; otabridge drives Z-Stack 3.x.0 (CC2652/CC1352) and Z-Stack 3.0.x firmware only",
			ErrUnsupportedStick, d.cfg.Port, v)
	}
	d.log.Info().Str("firmware", v.String()).Uint32("build", v.Revision).Msg("Z-Stack stick found")
	if err := d.softReset(ctx, c); err != nil {
		return err
	}
	want := d.wantNetwork()
	have, configured, err := d.readNetworkNV(ctx, c)
	if err != nil {
		return err
	}
	if configured && sameNetwork(want, have) {
		d.log.Info().Uint16("pan_id", have.PANID).Stringer("extended_pan_id", have.ExtendedPANID).Msg("resuming the network in the stick's NV")
		if err := d.resume(ctx, c); err != nil {
			return err
		}
	} else {
		if configured {
			d.log.Warn().Uint16("stick_pan_id", have.PANID).Uint16("wanted_pan_id", want.PANID).Msg("the stick holds another network: forming ours")
		}
		want = fillRandom(want)
		if err := d.form(ctx, c, want); err != nil {
			return err
		}
		have = want
	}
	b, err = c.Request(ctx, ZDOExtNwkInfo, nil, 0)
	if err != nil {
		return fmt.Errorf("znp: read the network: %w", err)
	}
	nwk, err := DecodeExtNwkInfo(b)
	if err != nil {
		return fmt.Errorf("znp: read the network: %w", err)
	}
	b, err = c.Request(ctx, SysGetExtAddr, nil, 0)
	if err != nil {
		return fmt.Errorf("znp: read the coordinator's IEEE address: %w", err)
	}
	ieee, err := DecodeIEEE(b, SysGetExtAddr.String())
	if err != nil {
		return fmt.Errorf("znp: read the coordinator's IEEE address: %w", err)
	}
	reg := AFRegisterReq{Endpoint: ncp.CoordinatorEndpoint, ProfileID: zcl.ProfileHomeAutomation, DeviceID: 0x0005, DeviceVersion: 0,
		InClusters: []uint16{zcl.ClusterBasic, zcl.ClusterOTA}}
	if err := c.StatusRequest(ctx, AFRegister, reg.Append(nil)); err != nil {
		var se *StatusError
		if !errors.As(err, &se) || se.Status != StatusAFDuplicateEP {
			return fmt.Errorf("znp: register endpoint 1: %w", err)
		}
	}
	// Trust-center policies: devices may rejoin through the trust center, and devices that do not request a
	// unique trust-center link key after joining (many older ones) are kept. Older firmware lacks the
	// commands; the stack's defaults then apply.
	for _, p := range []struct {
		cmd   Command
		value byte
	}{{AppCnfAllowRejoinTC, 1}, {AppCnfBDBTCKeyExch, 0}} {
		if err := c.StatusRequest(ctx, p.cmd, []byte{p.value}); err != nil {
			d.log.Warn().Err(err).Msg("trust-center policy not set")
		}
	}
	// LED off (firmware without LED support refuses; that is fine).
	if err := c.StatusRequest(ctx, UtilLEDControl, []byte{0xFF, 0}); err != nil {
		d.log.Debug().Err(err).Msg("LED control not supported")
	}
	have.Channel, have.PANID, have.ExtendedPANID = nwk.Channel, nwk.PANID, nwk.ExtendedPANID
	d.mu.Lock()
	d.version = v
	d.network = have
	d.info = ncp.NetworkInfo{Type: "znp", Port: d.cfg.Port, Firmware: v.String(), Channel: nwk.Channel, PANID: nwk.PANID,
		ExtendedPANID: nwk.ExtendedPANID, IEEE: ieee}
	d.mu.Unlock()
	d.link.SetReady()
	d.log.Info().Uint8("channel", nwk.Channel).Str("pan_id", fmt.Sprintf("0x%04X", nwk.PANID)).Stringer("ieee", ieee).Msg("network up")
	return nil
}

// findStick pings the stick; when it stays silent, it sends the bootloader-skip byte and pings again.
func (d *Driver) findStick(ctx context.Context, c *Conn) error {
	_, err := c.Request(ctx, SysPing, nil, d.to.Ping)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		return nil // an RPC error is a ZNP answer too
	}
	if !errors.Is(err, ErrCommandTimeout) {
		return fmt.Errorf("znp: ping the stick on %s: %w", d.cfg.Port, err)
	}
	d.log.Info().Msg("no answer to SYS_PING: sending the bootloader-skip byte")
	if err := c.WriteRaw([]byte{SkipBootloaderByte}); err != nil {
		return fmt.Errorf("znp: write to %s: %w", d.cfg.Port, err)
	}
	if !d.life.Sleep(d.to.Ping) {
		return ncp.ErrClosed
	}
	if _, err := c.Request(ctx, SysPing, nil, d.to.Ping); err != nil {
		if errors.Is(err, ErrCommandTimeout) {
			return fmt.Errorf("%w: nothing on %s answers Z-Stack's SYS_PING, even after the bootloader skip: is it a TI Z-Stack (ZNP) stick at %d baud? (%v)",
				ErrUnsupportedStick, d.cfg.Port, d.cfg.Baud, err)
		}
		return fmt.Errorf("znp: ping the stick on %s: %w", d.cfg.Port, err)
	}
	return nil
}

// softReset restarts Z-Stack and waits for SYS_RESET_IND.
func (d *Driver) softReset(ctx context.Context, c *Conn) error {
	w := d.expect(c, isCallback(SysResetInd))
	if err := c.Write(SysResetReq.Callback([]byte{1})); err != nil {
		d.cancelWait(w)
		return fmt.Errorf("znp: reset the stick: %w", err)
	}
	if _, err := d.await(ctx, w, d.to.Reset, "znp: reset the stick (SYS_RESET_IND)"); err != nil {
		return err
	}
	return nil
}

func (d *Driver) wantNetwork() ncp.NetworkSettings {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := d.cfg.Network
	// After the first start the network in use is the one to resume (a stick reset keeps it).
	if d.network.PANID != 0 {
		key := want.NetworkKey
		want = d.network
		if want.NetworkKey.IsZero() {
			want.NetworkKey = key
		}
	}
	return want
}

// readNV reads one NV item; an item that does not exist is (nil, nil).
func (d *Driver) readNV(ctx context.Context, c *Conn, id uint16) ([]byte, error) {
	b, err := c.Request(ctx, SysNVRead, NVRead{ID: id}.Append(nil), 0)
	if err != nil {
		return nil, fmt.Errorf("znp: read NV item 0x%04X: %w", id, err)
	}
	v, err := DecodeNVValue(b)
	if err != nil {
		return nil, fmt.Errorf("znp: read NV item 0x%04X: %w", id, err)
	}
	switch v.Status {
	case StatusSuccess:
		return v.Value, nil
	case StatusNVItemUninit, StatusInvalidParam, StatusFailure:
		return nil, nil
	}
	return nil, fmt.Errorf("znp: read NV item 0x%04X: %s", id, StatusName(v.Status))
}

// writeNV writes one NV item, creating it when it does not exist yet.
func (d *Driver) writeNV(ctx context.Context, c *Conn, id uint16, value []byte) error {
	err := c.StatusRequest(ctx, SysNVWrite, NVWrite{ID: id, Value: value}.Append(nil))
	var se *StatusError
	if errors.As(err, &se) && (se.Status == StatusNVItemUninit || se.Status == StatusNVOperFailed || se.Status == StatusNVBadItemLen) {
		b, ierr := c.Request(ctx, SysNVItemInit, NVItemInit{ID: id, Length: uint16(len(value)), Init: value}.Append(nil), 0)
		if ierr != nil {
			return fmt.Errorf("znp: create NV item 0x%04X: %w", id, ierr)
		}
		if st, _ := DecodeStatus(b, "SYS_OSAL_NV_ITEM_INIT"); st != StatusSuccess && st != StatusNVItemUninit {
			return fmt.Errorf("znp: create NV item 0x%04X: %s", id, StatusName(st))
		}
		err = c.StatusRequest(ctx, SysNVWrite, NVWrite{ID: id, Value: value}.Append(nil))
	}
	if err != nil {
		return fmt.Errorf("znp: write NV item 0x%04X: %w", id, err)
	}
	return nil
}

// readNetworkNV reads the network the stick's NV holds and whether a host formed it (the 0x55 marker).
func (d *Driver) readNetworkNV(ctx context.Context, c *Conn) (ncp.NetworkSettings, bool, error) {
	var s ncp.NetworkSettings
	marker, err := d.readNV(ctx, c, NVHasConfigured)
	if err != nil {
		return s, false, err
	}
	items := map[uint16][]byte{}
	for _, id := range []uint16{NVPANID, NVExtendedPANID, NVChanList, NVPreCfgKey} {
		v, err := d.readNV(ctx, c, id)
		if err != nil {
			return s, false, err
		}
		items[id] = v
	}
	if v := items[NVPANID]; len(v) >= 2 {
		s.PANID = binary.LittleEndian.Uint16(v)
	}
	if v := items[NVExtendedPANID]; len(v) >= 8 {
		s.ExtendedPANID = zcl.IEEE(binary.LittleEndian.Uint64(v))
	}
	if v := items[NVChanList]; len(v) >= 4 {
		s.Channel = channelOfMask(binary.LittleEndian.Uint32(v))
	}
	if v := items[NVPreCfgKey]; len(v) >= 16 {
		copy(s.NetworkKey[:], v)
	}
	configured := len(marker) > 0 && marker[0] == HasConfiguredMarker && s.PANID != 0 && s.PANID != 0xFFFF
	return s, configured, nil
}

// sameNetwork: the stick's network is the wanted one where the wanted one is set.
func sameNetwork(want, have ncp.NetworkSettings) bool {
	return (want.Channel == 0 || want.Channel == have.Channel) &&
		(want.PANID == 0 || want.PANID == have.PANID) &&
		(want.ExtendedPANID == 0 || want.ExtendedPANID == have.ExtendedPANID) &&
		(want.NetworkKey.IsZero() || want.NetworkKey == have.NetworkKey)
}

// channelOfMask returns the lowest channel of a channel mask (0 if none).
func channelOfMask(mask uint32) uint8 {
	for ch := uint8(11); ch <= 26; ch++ {
		if mask&(1<<ch) != 0 {
			return ch
		}
	}
	return 0
}

// fillRandom chooses what the configuration leaves open: a channel among 11, 15, 20 and 25 (clear of the
// usual Wi-Fi channels), a PAN id, an extended PAN id and a network key.
func fillRandom(s ncp.NetworkSettings) ncp.NetworkSettings {
	r := make([]byte, 2+8+16+1)
	_, _ = rand.Read(r)
	if s.Channel == 0 {
		s.Channel = []uint8{11, 15, 20, 25}[r[26]%4]
	}
	if s.PANID == 0 {
		s.PANID = 1 + binary.LittleEndian.Uint16(r)%0xFFF6
	}
	if s.ExtendedPANID == 0 {
		s.ExtendedPANID = zcl.IEEE(binary.LittleEndian.Uint64(r[2:]) | 1)
	}
	if s.NetworkKey.IsZero() {
		copy(s.NetworkKey[:], r[10:26])
	}
	return s
}

// resume starts the network the stick's NV holds (ZDO_STARTUP_FROM_APP) unless it already runs it.
func (d *Driver) resume(ctx context.Context, c *Conn) error {
	b, err := c.Request(ctx, UtilGetDeviceInfo, nil, 0)
	if err != nil {
		return fmt.Errorf("znp: read the device state: %w", err)
	}
	info, err := DecodeDeviceInfo(b)
	if err != nil {
		return fmt.Errorf("znp: read the device state: %w", err)
	}
	if info.State == StateCoordinator {
		return nil
	}
	return d.startAndWait(ctx, c, ZDOStartupFromApp, le16(nil, 100), "resume the network")
}

// startAndWait sends a start command and waits for ZDO_STATE_CHANGE_IND "started as coordinator".
func (d *Driver) startAndWait(ctx context.Context, c *Conn, cmd Command, data []byte, what string) error {
	w := d.expect(c, func(f Frame) bool {
		return f.Type == TypeAREQ && f.Command() == ZDOStateChangeInd && len(f.Data) > 0 && f.Data[0] == StateCoordinator
	})
	if _, err := c.Request(ctx, cmd, data, 0); err != nil {
		d.cancelWait(w)
		return fmt.Errorf("znp: %s: %w", what, err)
	}
	if _, err := d.await(ctx, w, d.to.NetworkUp, "znp: "+what+" (ZDO_STATE_CHANGE_IND coordinator)"); err != nil {
		return err
	}
	return nil
}

// form clears the stick's network state, writes the network's NV items as Z-Stack 3 hosts do, and forms it
// with BDB commissioning.
func (d *Driver) form(ctx context.Context, c *Conn, s ncp.NetworkSettings) error {
	d.log.Info().Uint8("channel", s.Channel).Str("pan_id", fmt.Sprintf("0x%04X", s.PANID)).Stringer("extended_pan_id", s.ExtendedPANID).Msg("forming a network")
	if err := d.writeNV(ctx, c, NVStartupOption, []byte{StartupClearConfig | StartupClearState}); err != nil {
		return err
	}
	if err := d.softReset(ctx, c); err != nil {
		return err
	}
	mask := uint32(1) << s.Channel
	ext := le64(nil, uint64(s.ExtendedPANID))
	items := []struct {
		id    uint16
		value []byte
	}{
		{NVStartupOption, []byte{0}},
		{NVLogicalType, []byte{0}}, // coordinator
		{NVZDODirectCB, []byte{1}},
		{NVChanList, le32(nil, mask)},
		{NVPANID, le16(nil, s.PANID)},
		{NVExtendedPANID, ext},
		{NVAPSUseExtPANID, ext},
		{NVPreCfgKeysEnable, []byte{0}},
		{NVPreCfgKey, s.NetworkKey[:]},
	}
	for _, it := range items {
		if err := d.writeNV(ctx, c, it.id, it.value); err != nil {
			return err
		}
	}
	if err := c.StatusRequest(ctx, AppCnfBDBSetChan, le32([]byte{1}, mask)); err != nil {
		return fmt.Errorf("znp: form: %w", err)
	}
	if err := c.StatusRequest(ctx, AppCnfBDBSetChan, le32([]byte{0}, 0)); err != nil {
		return fmt.Errorf("znp: form: %w", err)
	}
	if err := d.startAndWait(ctx, c, AppCnfBDBStartComm, []byte{0x04}, "form the network"); err != nil {
		return err
	}
	b, err := c.Request(ctx, ZDOExtNwkInfo, nil, 0)
	if err != nil {
		return fmt.Errorf("znp: form: read the network: %w", err)
	}
	nwk, err := DecodeExtNwkInfo(b)
	if err != nil {
		return fmt.Errorf("znp: form: read the network: %w", err)
	}
	if nwk.PANID != s.PANID {
		return fmt.Errorf("znp: form: the stick formed PAN 0x%04X instead of 0x%04X: another network nearby uses that PAN id; configure another one", nwk.PANID, s.PANID)
	}
	key, err := d.readNV(ctx, c, NVPreCfgKey)
	if err != nil {
		return err
	}
	if !bytes.Equal(key, s.NetworkKey[:]) {
		return errors.New("znp: form: the stick did not keep the network key written to NV")
	}
	return d.writeNV(ctx, c, NVHasConfigured, []byte{HasConfiguredMarker})
}
