package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// The committed artwork is what the generator draws: run `go generate ./addon/gen` after changing it.
func TestCommittedArtworkIsGenerated(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *image.NRGBA
		w, h int
	}{
		{"icon.png", Icon(), 128, 128},
		{"logo.png", Logo(), 250, 100},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("decode %s: %v", tc.file, err)
			}
			if got.Bounds() != image.Rect(0, 0, tc.w, tc.h) {
				t.Fatalf("%s is %v, want %dx%d", tc.file, got.Bounds(), tc.w, tc.h)
			}
			for y := 0; y < tc.h; y++ {
				for x := 0; x < tc.w; x++ {
					gr, gg, gb, ga := got.At(x, y).RGBA()
					wr, wg, wb, wa := tc.want.At(x, y).RGBA()
					if gr != wr || gg != wg || gb != wb || ga != wa {
						t.Fatalf("%s pixel (%d,%d) differs from the generator's: run go generate ./addon/gen", tc.file, x, y)
					}
				}
			}
		})
	}
}
