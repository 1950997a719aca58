package ezsp

import (
	"encoding/hex"
	"strings"
)

// logParams is the hex of a command's parameters for the debug log, with the keys of
// setInitialSecurityState (preconfigured link key and network key, bytes 2..33 of the 43-byte
// EmberInitialSecurityState) shown as "xx" so that the network key never reaches a log.
func logParams(id uint16, params []byte) string {
	const keysFrom, keysTo = 2, 2 + 16 + 16
	if id != IDSetInitialSecurityState || len(params) < keysFrom {
		return hex.EncodeToString(params)
	}
	end := min(len(params), keysTo)
	return hex.EncodeToString(params[:keysFrom]) + strings.Repeat("xx", end-keysFrom) + hex.EncodeToString(params[end:])
}
