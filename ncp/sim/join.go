package sim

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// NetworkParams is a Zigbee network: what a device must share with the coordinator to hear it.
type NetworkParams struct {
	Channel       uint8 // 11..26
	PANID         uint16
	ExtendedPANID zcl.IEEE
	NetworkKey    [16]byte
}

// NetworkKey is a 128-bit network key; in YAML it is 32 hex digits ("0x" prefix and ':' separators allowed).
type NetworkKey [16]byte

// MarshalText writes the key as 32 lower-case hex digits.
func (k NetworkKey) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(k[:])), nil }

// UnmarshalText reads 32 hex digits; "" is the zero key (the default).
func (k *NetworkKey) UnmarshalText(b []byte) error {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), "0X")
	t = strings.ReplaceAll(t, ":", "")
	if t == "" {
		*k = NetworkKey{}
		return nil
	}
	if len(t) != 32 {
		return fmt.Errorf("network key %q: want 32 hex digits", string(b))
	}
	if _, err := hex.Decode(k[:], []byte(t)); err != nil {
		return fmt.Errorf("network key %q: %w", string(b), err)
	}
	return nil
}

// EndpointDesc is one endpoint the host registered on the coordinator (EZSP addEndpoint, ZNP AF_REGISTER).
type EndpointDesc struct {
	Endpoint      uint8
	ProfileID     uint16
	DeviceID      uint16
	DeviceVersion uint8
	InClusters    []uint16
	OutClusters   []uint16
}

// defaultCoordinatorEndpoints is the coordinator's endpoint list before the host sets its own: endpoint 1,
// Home Automation, input clusters Basic and OTA Upgrade.
func defaultCoordinatorEndpoints() []EndpointDesc {
	return []EndpointDesc{{
		Endpoint: 1, ProfileID: zcl.ProfileHomeAutomation, DeviceID: 0x0005, DeviceVersion: 1,
		InClusters: []uint16{zcl.ClusterBasic, zcl.ClusterOTA},
	}}
}

// Form moves the coordinator onto the network the host formed or resumed (formNetwork / networkInit on an
// NCP). Devices that are members of another network (other channel, PAN id, ext PAN id or key) no longer hear
// the coordinator nor it them: a unicast to them ends in a delivery failure, their frames never arrive.
// Devices not joined anywhere (config `joined: false`, or after a leave) scan every channel and join this
// network when, and only when, permit join is open on it. Returns an error for a channel outside 11..26.
func (n *Network) Form(p NetworkParams) error {
	if p.Channel < 11 || p.Channel > 26 {
		return fmt.Errorf("sim: form network: channel %d is not a 2.4 GHz channel (want 11..26)", p.Channel)
	}
	n.mu.Lock()
	old := n.params
	n.params = p
	n.mu.Unlock()
	n.log.Info().Uint8("channel", p.Channel).Str("pan_id", fmt.Sprintf("0x%04X", p.PANID)).
		Str("extended_pan_id", p.ExtendedPANID.String()).Bool("changed", old != p).Msg("coordinator on network")
	n.clk.AfterFunc(0, func() {
		if !n.closed.Load() {
			n.permitOpen, n.permitUntil = false, time.Time{} // forming or resuming closes permit join
			for _, d := range n.devices {
				d.publish() // Joined follows the coordinator's network
			}
		}
	})
	return nil
}

// Params is the network the coordinator currently runs (from config until Form is called).
func (n *Network) Params() NetworkParams {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.params
}

// SetCoordinatorEndpoints replaces the coordinator's endpoint list (default: endpoint 1, profile 0x0104,
// in clusters 0x0000 and 0x0019); the coordinator's Active_EP/Simple_Desc/Match_Desc answers use it.
func (n *Network) SetCoordinatorEndpoints(eps []EndpointDesc) {
	cp := make([]EndpointDesc, len(eps))
	for i, e := range eps {
		e.InClusters = append([]uint16(nil), e.InClusters...)
		e.OutClusters = append([]uint16(nil), e.OutClusters...)
		cp[i] = e
	}
	n.mu.Lock()
	n.coordEPs = cp
	n.mu.Unlock()
}

// RemoveDevice makes a device leave the network (as after a ZDO Mgmt_Leave_req with rejoin=false): EventLeft;
// it then stays out until permit join is open again (it rejoins then only if its config says `rejoin: true`).
// A Mgmt_Leave_req (ZDO 0x0034) sent by the host with Send to a device has the same effect (and the device
// answers Mgmt_Leave_rsp 0x8034 first). It returns an error for an unknown IEEE address.
func (n *Network) RemoveDevice(ieee zcl.IEEE) error {
	d := n.byIEEE[ieee]
	if d == nil {
		return fmt.Errorf("sim: remove device: no device %s", ieee)
	}
	n.clk.AfterFunc(0, func() {
		if !n.closed.Load() {
			d.leave("removed", false)
			d.publish()
		}
	})
	return nil
}

// Joining over the air. A device that is not a member of any network (config `joined: false`, or after a
// leave when its config says `rejoin: true`) joins like a Zigbee PRO device does, and only while permit
// join is open:
//
//	active scan    a beacon request on each channel 11..26, ScanDurationPerChannel on each (scan duration 3:
//	               aBaseSuperframeDuration × (2³ + 1) = 8640 symbols = 138.24 ms); on the coordinator's
//	               channel the coordinator (and the configured parent router, when it is in the network)
//	               answers with a beacon
//	association    association request to the parent (acked), macResponseWaitTime (491.52 ms), a MAC data
//	               request, the association response with the short address (refused when permit join closed
//	               meanwhile or the network changed)
//	trust center   a router parent sends APS Update-Device to the trust center (over the router's hops); the
//	               coordinator reports the trust-center join (EventJoined) and sends APS Transport-Key with the
//	               network key (over the device's hops)
//	life           the device broadcasts its Device_annce (EventAnnounced) and starts its OTA client
//
// A frame lost after all MAC retries ends the attempt; a device retries up to JoinAttempts times while the
// window stays open. A secured rejoin (Mgmt_Leave_req with the rejoin flag) skips the scan, permit join and
// the key transport: rejoin request and response to the coordinator, then the trust-center rejoin. Every
// delay and loss is drawn from the network's seeded generator on the virtual clock, so a seed replays the
// same joins.
const (
	ScanDurationPerChannel  = 138240 * time.Microsecond
	MACResponseWaitTime     = 491520 * time.Microsecond
	JoinAttempts            = 3
	BeaconRequestBytes      = PHYHeaderBytes + 10 // frame control 2, sequence 1, PAN 2, dest 2, command 1, FCS 2
	BeaconBytes             = PHYHeaderBytes + 28 // MAC header 7, superframe 2, GTS 1, pending 1, payload 15, FCS 2
	AssociationRequestBytes = PHYHeaderBytes + 21 // header 17, command 1, capabilities 1, FCS 2
	AssociationRspBytes     = PHYHeaderBytes + 27 // header 21, command 1, short 2, status 1, FCS 2
	// APS commands carry the MAC, NWK and APS command headers; Transport-Key is APS-secured with the trust
	// center link key (auxiliary header 13 + MIC 4) and not NWK-secured.
	TransportKeyBytes   = PHYHeaderBytes + MACOverheadBytes + NWKHeaderBytes + 2 + 13 + 35 + 4
	UpdateDeviceBytes   = PHYHeaderBytes + MACOverheadBytes + NWKHeaderBytes + NWKSecurityBytes + 2 + 12
	NWKLeaveBytes       = PHYHeaderBytes + MACOverheadBytes + NWKHeaderBytes + NWKSecurityBytes + 2
	RejoinRequestBytes  = PHYHeaderBytes + MACOverheadBytes + NWKHeaderBytes + 16 + NWKSecurityBytes + 2
	RejoinResponseBytes = RejoinRequestBytes + 3
)

// initMembership puts a device configured `joined: true` into the configured network (in New).
func (d *Device) initMembership() {
	if !*d.cfg.Joined {
		return
	}
	p := d.n.cfg.networkParams()
	d.network = &p
	d.everMember = true
	if r := d.configuredParent(); r != nil {
		d.parent = r.cfg.NWK
	}
}

// configuredParent is the router of the configuration the device joins through, or nil.
func (d *Device) configuredParent() *Device {
	if d.cfg.Parent == 0 {
		return nil
	}
	return d.n.byIEEE[d.cfg.Parent]
}

// inNetwork reports whether the device is a member of the network the coordinator runs now.
func (d *Device) inNetwork() bool {
	return d.network != nil && *d.network == d.n.Params()
}

// permitted reports whether permit join is open now (clock goroutine).
func (n *Network) permitted() bool {
	return n.permitOpen || n.clk.Now().Before(n.permitUntil)
}

// setPermit opens (seconds > 0; 255 until closed) or closes (0) joining on the coordinator and its routers
// and starts the joins of the devices waiting for it (clock goroutine).
func (n *Network) setPermit(seconds uint8, by string) {
	n.permitOpen = seconds == 255
	n.permitUntil = time.Time{}
	if seconds != 0 && seconds != 255 {
		n.permitUntil = n.clk.Now().Add(time.Duration(seconds) * time.Second)
	}
	n.log.Info().Uint8("seconds", seconds).Str("by", by).Msg("permit join")
	if seconds == 0 {
		return
	}
	if by == "host" {
		// the stack tells the routers: Mgmt_Permit_Joining_req broadcast to 0xFFFC
		n.countMessage("zdo.mgmt_permit_joining_req")
		n.occupy("zdo.mgmt_permit_joining_req", 3, false, 0, true)
	}
	for _, d := range n.devices {
		d.maybeJoin()
	}
}

// maybeJoin starts a join after a small random delay when the device may join now.
func (d *Device) maybeJoin() {
	n := d.n
	if !d.booted || !d.online || d.network != nil || d.joining || (d.left && !d.cfg.Rejoin) || !n.permitted() {
		return
	}
	d.joining = true
	delay := 20*time.Millisecond + time.Duration(n.rng.Int64N(int64(980*time.Millisecond)))
	d.after(delay, func() { d.scan(1) })
}

// joinStep is one exchange of a join: after wait, book the channel with air; a false result ends the join.
type joinStep struct {
	wait time.Duration
	air  func() bool
}

// runSteps runs the steps one after the other, each when the previous one's reservation is over.
func (d *Device) runSteps(steps []joinStep, fail func(step int), done func()) {
	var next func(i int)
	next = func(i int) {
		if i == len(steps) {
			done()
			return
		}
		d.after(steps[i].wait, func() {
			if !steps[i].air() {
				fail(i)
				return
			}
			d.after(d.n.freeAt.Sub(d.n.clk.Now()), func() { next(i + 1) })
		})
	}
	next(0)
}

// scan is the active scan over the 16 channels; on the coordinator's channel the device hears the beacons.
func (d *Device) scan(attempt int) {
	n := d.n
	per := ifReal(n.link, ScanDurationPerChannel)
	p := n.Params()
	before := time.Duration(p.Channel-11) * per
	d.after(before, func() {
		loss := n.lossRate(d)
		_, heard := n.occupyRaw("mac.beacon_request", BeaconRequestBytes, false, loss, true)
		router := d.joinableParent()
		if heard {
			_, coordBeacon := n.occupyRaw("mac.beacon", BeaconBytes, false, loss, true)
			routerBeacon := false
			if router != nil {
				_, routerBeacon = n.occupyRaw("mac.beacon", BeaconBytes, false, loss, true)
			}
			if !routerBeacon {
				router = nil
			}
			heard = (coordBeacon || routerBeacon) && n.permitted() && n.Params() == p
		}
		d.after(16*per-before, func() {
			if !heard {
				d.joinFailed("no network with permit join open found", attempt)
				return
			}
			d.associate(p, router, attempt, false)
		})
	})
}

// joinableParent is the configured parent router when it is in the network and on the air, else nil (the
// coordinator is the parent).
func (d *Device) joinableParent() *Device {
	r := d.configuredParent()
	if r == nil || !r.online || !r.inNetwork() || r.sleepy() {
		return nil
	}
	return r
}

// associate runs the association (or the secured rejoin) with router (nil: the coordinator) and the trust
// center's part of the join.
func (d *Device) associate(p NetworkParams, router *Device, attempt int, secured bool) {
	n := d.n
	loss := n.lossRate(d)
	raw := func(kind string, size int) func() bool {
		return func() bool { _, ok := n.occupyRaw(kind, size, true, loss, true); return ok }
	}
	still := func() bool {
		return n.Params() == p && (secured || n.permitted()) && (router == nil || (router.online && router.inNetwork()))
	}
	var steps []joinStep
	if secured {
		steps = append(steps,
			joinStep{air: raw("nwk.rejoin_request", RejoinRequestBytes)},
			joinStep{wait: ifReal(n.link, MACResponseWaitTime), air: raw("mac_data_request", DataRequestBytes)},
			joinStep{air: func() bool { return still() && raw("nwk.rejoin_response", RejoinResponseBytes)() }})
	} else {
		steps = append(steps,
			joinStep{air: raw("mac.association_request", AssociationRequestBytes)},
			joinStep{wait: ifReal(n.link, MACResponseWaitTime), air: raw("mac_data_request", DataRequestBytes)},
			joinStep{air: func() bool { return still() && raw("mac.association_response", AssociationRspBytes)() }})
	}
	if router != nil {
		for range router.cfg.Hops {
			steps = append(steps, joinStep{air: func() bool {
				_, ok := n.occupyRaw("aps.update_device", UpdateDeviceBytes, true, n.lossRate(router), true)
				return ok
			}})
		}
	}
	parent := uint16(0x0000)
	if router != nil {
		parent = router.cfg.NWK
	}
	// the trust center decides: the join is reported, then the key goes out
	steps = append(steps, joinStep{air: func() bool {
		n.log.Info().Str("ieee", d.cfg.IEEE.String()).Str("nwk", fmt.Sprintf("0x%04X", d.cfg.NWK)).
			Str("parent", fmt.Sprintf("0x%04X", parent)).Bool("rejoin", d.everMember).Int("attempt", attempt).
			Msg("trust center join")
		n.learnAddress(d.cfg.NWK)
		n.emit(ncp.Event{Kind: ncp.EventJoined, Short: d.cfg.NWK, IEEE: d.cfg.IEEE, Parent: parent,
			Capabilities: d.capabilities(), Rejoin: d.everMember})
		return true
	}})
	if !secured {
		for range d.cfg.Hops {
			steps = append(steps, joinStep{air: raw("aps.transport_key", TransportKeyBytes)})
		}
	}
	d.runSteps(steps, func(step int) {
		d.joinFailed(fmt.Sprintf("join exchange %d of %d failed", step+1, len(steps)), attempt)
	}, func() {
		d.network = &p
		d.everMember = true
		d.left = false
		d.joining = false
		d.parent = parent
		d.startLife(true)
	})
}

// joinFailed ends a join attempt; the device tries again while permit join stays open.
func (d *Device) joinFailed(reason string, attempt int) {
	d.joining = false
	d.log.Debug().Str("reason", reason).Int("attempt", attempt).Msg("join failed")
	if attempt >= JoinAttempts || !d.n.permitted() {
		return
	}
	d.joining = true
	delay := 500*time.Millisecond + time.Duration(d.n.rng.Int64N(int64(time.Second)))
	d.after(delay, func() { d.scan(attempt + 1) })
}

// leave takes the device out of the network: its NWK Leave goes out, the coordinator reports EventLeft,
// frames held for it fail. With rejoinNow it comes back at once by a secured rejoin.
func (d *Device) leave(reason string, rejoinNow bool) {
	if d.network == nil {
		return
	}
	n := d.n
	was := d.inNetwork()
	if was && d.online {
		n.countMessage("nwk.leave")
		n.occupyRaw("nwk.leave", NWKLeaveBytes, false, 0, true)
	}
	d.stopLife("left the network")
	p := *d.network
	d.network = nil
	d.left = true
	d.joining = false
	d.log.Info().Str("reason", reason).Bool("rejoin", rejoinNow).Str("nwk", fmt.Sprintf("0x%04X", d.cfg.NWK)).Msg("device left")
	if was {
		n.emit(ncp.Event{Kind: ncp.EventLeft, Short: d.cfg.NWK, IEEE: d.cfg.IEEE})
	}
	if rejoinNow && d.online {
		d.joining = true
		d.after(ifReal(n.link, ScanDurationPerChannel), func() { d.associate(p, d.joinableParent(), 1, true) })
	}
}

// RouteDiscoveryTime is how long the coordinator looks for a route to a short address that is not in its
// network before it reports the delivery failure (nwkcRouteDiscoveryTime, 10 s; zero in fast mode).
const RouteDiscoveryTime = 10 * time.Second

// RouteRequestBytes is a NWK route request broadcast: MAC, NWK header and security, command 8 bytes.
const RouteRequestBytes = PHYHeaderBytes + MACOverheadBytes + NWKHeaderBytes + NWKSecurityBytes + 8

// routeDiscoveryFails sends a unicast to a device that is not in the coordinator's network (it left, or it is
// a member of another one): the coordinator broadcasts a route request nobody answers and, after the route
// discovery time, confirms the send with a delivery failure (clock goroutine).
func (n *Network) routeDiscoveryFails(f ncp.Frame, d *Device, done func(error)) {
	n.countMessage("nwk.route_request")
	n.occupyRaw("nwk.route_request", RouteRequestBytes, false, 0, true)
	n.log.Debug().Str("ieee", d.cfg.IEEE.String()).Str("dst", fmt.Sprintf("0x%04X", f.DstShort)).Msg("no route: device not in the network")
	n.clk.AfterFunc(ifReal(n.link, RouteDiscoveryTime), func() {
		if n.closed.Load() {
			done(ncp.ErrClosed)
			return
		}
		done(&ncp.SendError{DstShort: f.DstShort, Status: "EMBER_DELIVERY_FAILED: no route to destination"})
	})
}
