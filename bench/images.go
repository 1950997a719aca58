package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ota"
)

// Every bench image is for manufacturer benchManufacturer, image type firstImageType+i, file version
// newVersion; every simulated device runs oldVersion.
const (
	benchManufacturer uint16 = 0x1234
	firstImageType    uint16 = 0x0100
	oldVersion        uint32 = 1
	newVersion        uint32 = 2
)

// writeImages writes n OTA files of about size bytes each (random payload, distinct image types) into dir.
func writeImages(dir string, n, size int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("image folder %s: %w", dir, err)
	}
	for i := 0; i < n; i++ {
		b, err := buildImage(firstImageType+uint16(i), size, uint64(i))
		if err != nil {
			return err
		}
		path := filepath.Join(dir, fmt.Sprintf("bench-%04x.ota", firstImageType+uint16(i)))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write image %s: %w", path, err)
		}
	}
	return nil
}

// buildImage builds one OTA file with a payload of size random bytes.
func buildImage(imageType uint16, size int, seed uint64) ([]byte, error) {
	payload := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, uint64(size)))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	h := ota.Header{ManufacturerCode: benchManufacturer, ImageType: imageType, FileVersion: newVersion, StackVersion: 2}
	copy(h.HeaderString[:], fmt.Sprintf("otabridge bench %04x", imageType))
	b, err := ota.Build(h, []ota.BuildElement{{Tag: ota.TagUpgradeImage, Data: payload}})
	if err != nil {
		return nil, fmt.Errorf("build bench image: %w", err)
	}
	return b, nil
}

// imageStore writes n images of size bytes into a fresh folder under dir and loads a store from it.
func imageStore(dir string, n, size int) (*ota.Store, error) {
	folder := filepath.Join(dir, "images")
	if err := writeImages(folder, n, size); err != nil {
		return nil, err
	}
	store, err := ota.NewStore(ota.StoreConfig{Folder: folder, CacheDir: filepath.Join(dir, "cache")}, zerolog.Nop())
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := store.Load(context.Background()); err != nil {
		store.Close()
		return nil, fmt.Errorf("load images: %w", err)
	}
	if got := len(store.Images()); got != n {
		store.Close()
		return nil, fmt.Errorf("image store: %d images loaded, want %d (problems: %v)", got, n, store.Problems())
	}
	return store, nil
}
