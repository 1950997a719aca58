package ash

import (
	"bytes"
	"testing"
)

// FuzzDecoder feeds arbitrary bytes to the stream decoder, in two chunks split at an arbitrary point. It must
// never panic, and every frame it accepts must encode back to bytes that decode to the same frame.
func FuzzDecoder(f *testing.F) {
	for _, v := range frameVectors {
		f.Add(unhex(f, v.wire), uint8(3))
	}
	f.Add(unhex(f, "1A C1 02 0B 0A 52 7E 81 60 59 7E"), uint8(1))
	f.Add(unhex(f, "25 42 18 21 A8 7E 81 11 60 13 59 7E"), uint8(4))
	f.Add(unhex(f, "0eafb1a96b2a7d334fa674eb04aaa760499d4e27cdd9ce6192f2c46989fcfb817e"), uint8(9))
	f.Add(bytes.Repeat([]byte{0x7D}, 40), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		cut := min(int(split), len(in))
		var d Decoder
		var frames []Frame
		collect := func(fr Frame, err error) {
			if err == nil {
				frames = append(frames, fr)
			}
		}
		d.Feed(in[:cut], collect)
		d.Feed(in[cut:], collect)
		for _, fr := range frames {
			var again []Frame
			var d2 Decoder
			d2.Feed(fr.Append(nil), func(g Frame, err error) {
				if err != nil {
					t.Fatalf("re-encoded %v does not decode: %v", fr, err)
				}
				again = append(again, g)
			})
			if len(again) != 1 || again[0].String() != fr.String() || !bytes.Equal(again[0].Data, fr.Data) {
				t.Fatalf("round trip of %v gave %v", fr, again)
			}
		}
	})
}
