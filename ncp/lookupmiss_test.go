package ncp

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestLookupMisses: a miss is remembered, names the address, and is forgotten when the address is learnt.
func TestLookupMisses(t *testing.T) {
	var m LookupMisses
	assert.NoError(t, m.Recent(0x1234), "nothing missed yet")
	m.Missed(0x1234)
	err := m.Recent(0x1234)
	if assert.Error(t, err) {
		assert.Contains(t, err.Error(), "0x1234")
	}
	assert.NoError(t, m.Recent(0x4321), "another address may be asked")
	m.Forget(0x1234)
	assert.NoError(t, m.Recent(0x1234))
}
