// Command gen draws the add-on store artwork, addon/icon.png (128×128) and addon/logo.png (250×100), with
// the standard library only, so the committed PNGs can be made again from source:
//
//	go generate ./addon/gen
//
// The picture: a Zigbee-style "Z" over a download arrow on a rounded tile; the logo adds the name in a small
// built-in bitmap font.
package main

//go:generate go run . -out ..

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

var (
	tileColor   = color.NRGBA{0x03, 0xA9, 0xF4, 0xFF} // Home Assistant blue
	markColor   = color.NRGBA{0xFF, 0xFF, 0xFF, 0xFF}
	accentColor = color.NRGBA{0xFF, 0xC1, 0x07, 0xFF}
	textColor   = color.NRGBA{0x21, 0x21, 0x21, 0xFF}
)

func main() {
	out := flag.String("out", ".", "folder to write icon.png and logo.png to")
	flag.Parse()
	for name, img := range map[string]image.Image{"icon.png": Icon(), "logo.png": Logo()} {
		if err := writePNG(filepath.Join(*out, name), img); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return f.Close()
}

// Icon is the 128×128 store icon.
func Icon() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 128, 128))
	drawMark(img, 0, 0, 128)
	return img
}

// Logo is the 250×100 store logo: the mark and the name.
func Logo() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 250, 100))
	drawMark(img, 4, 12, 76)
	drawText(img, 86, 40, 3, "otabridge", textColor)
	return img
}

// drawMark draws the rounded tile with the "Z" and the arrow in the size×size square at (x0, y0).
func drawMark(img *image.NRGBA, x0, y0, size int) {
	s := float64(size)
	r := s * 0.18 // corner radius
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			if a := roundedRectCoverage(float64(x)+0.5, float64(y)+0.5, s, r); a > 0 {
				blend(img, x0+x, y0+y, tileColor, a)
			}
		}
	}
	// The "Z": top bar, diagonal, bottom bar.
	th := s * 0.09
	fillRect(img, x0, y0, s*0.22, s*0.20, s*0.78, s*0.20+th, markColor)
	fillLine(img, x0, y0, s*0.74, s*0.20+th, s*0.26, s*0.62, th*1.1, markColor)
	fillRect(img, x0, y0, s*0.22, s*0.62, s*0.78, s*0.62+th, markColor)
	// The download arrow under it: shaft and head.
	fillRect(img, x0, y0, s*0.46, s*0.70, s*0.54, s*0.80, accentColor)
	fillTriangle(img, x0, y0, s*0.36, s*0.80, s*0.64, s*0.80, s*0.50, s*0.92, accentColor)
}

// roundedRectCoverage is 1 inside a w×w square with corner radius r, 0 outside, anti-aliased at the corners.
func roundedRectCoverage(x, y, w, r float64) float64 {
	cx := math.Max(r, math.Min(w-r, x))
	cy := math.Max(r, math.Min(w-r, y))
	d := math.Hypot(x-cx, y-cy)
	return clamp01(r - d + 0.5)
}

func fillRect(img *image.NRGBA, x0, y0 int, ax, ay, bx, by float64, c color.NRGBA) {
	for y := int(ay); y < int(math.Ceil(by)); y++ {
		for x := int(ax); x < int(math.Ceil(bx)); x++ {
			cov := overlap(float64(x), ax, bx) * overlap(float64(y), ay, by)
			blend(img, x0+x, y0+y, c, cov)
		}
	}
}

// overlap is how much of the pixel [p, p+1) lies in [a, b).
func overlap(p, a, b float64) float64 {
	return clamp01(math.Min(p+1, b) - math.Max(p, a))
}

// fillLine draws a thick segment from (ax, ay) to (bx, by).
func fillLine(img *image.NRGBA, x0, y0 int, ax, ay, bx, by, width float64, c color.NRGBA) {
	minX, maxX := int(math.Min(ax, bx)-width), int(math.Max(ax, bx)+width)
	minY, maxY := int(math.Min(ay, by)-width), int(math.Max(ay, by)+width)
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	for y := minY; y <= maxY; y++ {
		for x := minX; x <= maxX; x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := clamp01(((px-ax)*dx + (py-ay)*dy) / l2)
			d := math.Hypot(px-(ax+t*dx), py-(ay+t*dy))
			blend(img, x0+x, y0+y, c, clamp01(width/2-d+0.5))
		}
	}
}

// fillTriangle fills the triangle a, b, c (4×4 supersampled).
func fillTriangle(img *image.NRGBA, x0, y0 int, ax, ay, bx, by, cx, cy float64, c color.NRGBA) {
	minX, maxX := int(math.Min(ax, math.Min(bx, cx))), int(math.Ceil(math.Max(ax, math.Max(bx, cx))))
	minY, maxY := int(math.Min(ay, math.Min(by, cy))), int(math.Ceil(math.Max(ay, math.Max(by, cy))))
	edge := func(x1, y1, x2, y2, px, py float64) float64 { return (x2-x1)*(py-y1) - (y2-y1)*(px-x1) }
	for y := minY; y <= maxY; y++ {
		for x := minX; x <= maxX; x++ {
			in := 0
			for sy := 0; sy < 4; sy++ {
				for sx := 0; sx < 4; sx++ {
					px, py := float64(x)+(float64(sx)+0.5)/4, float64(y)+(float64(sy)+0.5)/4
					e1, e2, e3 := edge(ax, ay, bx, by, px, py), edge(bx, by, cx, cy, px, py), edge(cx, cy, ax, ay, px, py)
					if (e1 >= 0 && e2 >= 0 && e3 >= 0) || (e1 <= 0 && e2 <= 0 && e3 <= 0) {
						in++
					}
				}
			}
			blend(img, x0+x, y0+y, c, float64(in)/16)
		}
	}
}

// blend paints c over the pixel at (x, y) with coverage a (0..1).
func blend(img *image.NRGBA, x, y int, c color.NRGBA, a float64) {
	if a <= 0 || !(image.Point{x, y}.In(img.Rect)) {
		return
	}
	dst := img.NRGBAAt(x, y)
	sa := a * float64(c.A) / 255
	da := float64(dst.A) / 255
	oa := sa + da*(1-sa)
	if oa == 0 {
		return
	}
	mix := func(s, d uint8) uint8 {
		return uint8(math.Round((float64(s)*sa + float64(d)*da*(1-sa)) / oa))
	}
	img.SetNRGBA(x, y, color.NRGBA{mix(c.R, dst.R), mix(c.G, dst.G), mix(c.B, dst.B), uint8(math.Round(oa * 255))})
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// glyphs is a 5×7 bitmap font for the letters of the name ('#' = ink).
var glyphs = map[rune][7]string{
	'o': {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."},
	't': {".#...", ".#...", "####.", ".#...", ".#...", ".#..#", "..##."},
	'a': {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"},
	'b': {"#....", "#....", "####.", "#...#", "#...#", "#...#", "####."},
	'r': {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."},
	'i': {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."},
	'd': {"....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"},
	'g': {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."},
	'e': {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."},
}

// drawText writes s with its top-left corner at (x, y), each font pixel scale×scale.
func drawText(img *image.NRGBA, x, y, scale int, s string, c color.NRGBA) {
	for _, r := range s {
		g, ok := glyphs[r]
		if !ok {
			x += 6 * scale
			continue
		}
		for gy, row := range g {
			for gx, px := range row {
				if px != '#' {
					continue
				}
				for dy := 0; dy < scale; dy++ {
					for dx := 0; dx < scale; dx++ {
						blend(img, x+gx*scale+dx, y+gy*scale+dy, c, 1)
					}
				}
			}
		}
		x += 6 * scale
	}
}
