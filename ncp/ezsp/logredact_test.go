package ezsp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNetworkKeyNotLogged: forming a network with a configured key logs every EZSP command at debug level,
// setInitialSecurityState included, without the key.
func TestNetworkKeyNotLogged(t *testing.T) {
	key := ezsp.NetworkKey{0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90}
	r := newRig(t, fakestick.Config{ProtocolVersion: 13}, ezsp.Config{})
	var logs lockedBuffer
	r.drv = ezsp.New(ezsp.Config{Port: "/dev/ttyFAKE", Network: ezsp.NetworkSettings{Channel: 15, PANID: 0x1234, NetworkKey: key}},
		zerolog.New(&logs).Level(zerolog.DebugLevel), ezsp.WithOpener(r.open), ezsp.WithTimeouts(fastTimeouts))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.drv.Start(ctx)
	require.NoError(t, err)
	require.Equal(t, key, r.drv.Network().NetworkKey)

	text := logs.String()
	require.Contains(t, text, `"frame":"setInitialSecurityState"`, "the command is logged")
	require.Contains(t, text, strings.Repeat("xx", 32), "with its keys hidden")
	for _, form := range []string{hex.EncodeToString(key[:]), strings.ToUpper(hex.EncodeToString(key[:])), hex.EncodeToString(key[:6])} {
		require.NotContains(t, text, form, "the network key reaches the debug log")
	}
}
