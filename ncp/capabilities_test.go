package ncp_test

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/zboss"
	"github.com/otabridge/otabridge/ncp/znp"
)

// The optional parts of the radio contract each radio has, as README.md states them: large (APS-fragmented)
// blocks only through the simulated radio and the EZSP driver ("through a ZNP or ZBOSS stick every client
// gets at most 65 bytes"), per-frame statistics for max_concurrent: auto only from the simulated radio, the
// stick's MAC counters only from EZSP ("The ZNP and ZBOSS drivers report neither"). A driver that gains one
// fails this test: update the README's Radios, How updates run and Update campaigns sections and
// addon/DOCS.md with it.
func TestRadioCapabilitiesAsDocumented(t *testing.T) {
	fragmenter := reflect.TypeFor[ncp.Fragmenter]()
	stats := reflect.TypeFor[ncp.StatsSender]()
	counters := reflect.TypeFor[ncp.MACCounter]()
	for _, r := range []struct {
		name                       string
		typ                        reflect.Type
		fragments, stats, counters bool
	}{
		{"sim", reflect.TypeFor[*sim.Network](), true, true, false},
		{"ezsp", reflect.TypeFor[*ezsp.Driver](), true, false, true},
		{"znp", reflect.TypeFor[*znp.Driver](), false, false, false},
		{"zboss", reflect.TypeFor[*zboss.Driver](), false, false, false},
	} {
		assert.Equal(t, r.fragments, r.typ.Implements(fragmenter), "%s: ncp.Fragmenter", r.name)
		assert.Equal(t, r.stats, r.typ.Implements(stats), "%s: ncp.StatsSender", r.name)
		assert.Equal(t, r.counters, r.typ.Implements(counters), "%s: ncp.MACCounter", r.name)
	}
}
