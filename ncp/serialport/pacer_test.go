package serialport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestPacerHoldsBytesUntilSent: at 9600 baud a 96-byte write takes 100 ms on the line, and the next write
// queues behind it; a closed stop ends the wait.
func TestPacerHoldsBytesUntilSent(t *testing.T) {
	p := &Pacer{Baud: 9600}
	start := time.Now()
	assert.True(t, p.Wait(96, nil))
	first := time.Since(start)
	assert.GreaterOrEqual(t, first, 100*time.Millisecond-pacerSlack, "the write reaches the far end when its last byte has gone out")
	assert.True(t, p.Wait(48, nil))
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond-pacerSlack, "the second write queues behind the first")

	stop := make(chan struct{})
	close(stop)
	assert.False(t, p.Wait(9600, stop), "a closed stop ends the wait")

	var none *Pacer
	assert.True(t, none.Wait(1000, nil), "a nil pacer does not pace")
	assert.True(t, (&Pacer{}).Wait(1000, nil), "baud 0 does not pace")
	assert.Equal(t, 86805*time.Nanosecond, ByteTime(115200))
}

// TestPrecisePacerWaitsOutTheLine: the precise pacer's wait ends no earlier than the line time either.
func TestPrecisePacerWaitsOutTheLine(t *testing.T) {
	p := &Pacer{Baud: 115200, Precise: true}
	start := time.Now()
	for range 10 {
		assert.True(t, p.Wait(12, nil)) // about 1 ms each
	}
	assert.GreaterOrEqual(t, time.Since(start), 120*ByteTime(115200))
}
