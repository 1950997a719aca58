package ncp

import (
	"fmt"
	"sync"
	"time"
)

// LookupMissTTL is how long a serial driver does not ask its stick again for the IEEE address of a short
// address the stick could not name (a device of an existing network with no entry in the stick's address
// table). Drivers resolve the sender of every incoming frame they cannot name; without this, each frame of
// such a device would cost a command round trip on the serial link before it is handed on: during an OTA
// transfer, one per block.
const LookupMissTTL = time.Minute

// LookupMisses remembers the short addresses a stick could not name, for LookupMissTTL. The zero value is
// ready to use; it is safe for concurrent use.
type LookupMisses struct {
	mu   sync.Mutex
	when map[uint16]time.Time
}

// Recent returns an error naming how long ago the stick could not name short, or nil when it may be asked.
func (m *LookupMisses) Recent(short uint16) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.when[short]
	if !ok {
		return nil
	}
	if ago := time.Since(t); ago < LookupMissTTL {
		return fmt.Errorf("lookup IEEE of 0x%04x: the stick did not know the device %s ago", short, ago.Round(time.Second))
	}
	delete(m.when, short)
	return nil
}

// Missed records that the stick could not name short just now.
func (m *LookupMisses) Missed(short uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.when == nil {
		m.when = make(map[uint16]time.Time)
	}
	m.when[short] = time.Now()
}

// Forget drops short (its IEEE address became known: a join or an announcement).
func (m *LookupMisses) Forget(short uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.when, short)
}
