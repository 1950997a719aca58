package bridge

import (
	"encoding/json"
	"testing"
)

// FuzzStateFile: decoding a state file never panics, and what it accepts saves and loads again. The seeds
// (testdata/fuzz/FuzzStateFile) are a good state file and the shapes that must be refused.
func FuzzStateFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var st persistedState
		if err := decodeStrict(data, &st, st.check); err != nil {
			return
		}
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		var again persistedState
		if err := decodeStrict(out, &again, again.check); err != nil {
			t.Fatalf("saved state refused on load: %v\n%s", err, out)
		}
	})
}
