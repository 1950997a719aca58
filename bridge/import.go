package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/otabridge/otabridge/importer"
	"github.com/otabridge/otabridge/ncp"
)

// ImportConfig is the `existing.import` section: what another host (Zigbee2MQTT, ZHA) knows about the
// network, imported once at the start after the stick's network was checked against the backup.
type ImportConfig struct {
	// Source is "z2m" or "zha" ("" imports nothing).
	Source string `yaml:"source"`
	// Path is Zigbee2MQTT's data directory, or ZHA's zigbee.db (or the directory holding it).
	Path string `yaml:"path"`
}

// ReadImport reads the files an ImportConfig names; a damaged file is an error and nothing is read.
func ReadImport(c ImportConfig) (importer.Import, error) {
	switch c.Source {
	case "z2m":
		return importer.ReadZ2M(c.Path)
	case "zha":
		return importer.ReadZHA(c.Path)
	}
	return importer.Import{}, fmt.Errorf("existing.import.source %q: want z2m or zha", c.Source)
}

// importKey names an import in the network record, so one from the configuration is applied once.
func importKey(im importer.Import) string { return im.Source + ":" + im.Path }

// applyImport checks the stick's network against the import's backup (refused, nothing changed, when they
// differ) and merges the imported devices into the registry: names, models and the OTA facts the other
// host cached appear at once; a device whose model is known counts as interviewed. It returns how many
// devices it merged.
func (b *Bridge) applyImport(info ncp.NetworkInfo, im importer.Import) (int, error) {
	if err := im.CheckNetwork(info); err != nil {
		return 0, err
	}
	n := 0
	for _, src := range im.Devices {
		if src.IEEE == info.IEEE {
			continue
		}
		d, _ := b.registry.Seen(src.IEEE, src.NWK, 0)
		d, err := b.registry.Update(src.IEEE, func(x *Device) { mergeImported(x, src) })
		if err != nil {
			return n, err
		}
		if src.FriendlyName != "" && d.FriendlyName != src.FriendlyName {
			if _, _, err := b.registry.Rename(d.IEEE.String(), src.FriendlyName); err != nil {
				b.log.Warn().Stringer("ieee", d.IEEE).Str("friendly_name", src.FriendlyName).Err(err).
					Msg("imported friendly name not usable: the device keeps its name")
			}
		}
		d, _ = b.registry.ByIEEE(src.IEEE)
		b.engine.SetDevice(d.EngineInfo())
		if (!d.FileVersionKnown || !d.HasImageID) && !b.opts.ImportOnly {
			b.interviewFound(d.IEEE) // the other host did not cache the OTA facts: read them
		}
		b.mu.Lock()
		b.names[d.IEEE] = d.FriendlyName
		b.mu.Unlock()
		n++
	}
	b.log.Info().Str("source", im.Source).Str("path", im.Path).Int("devices", n).Msg("import applied")
	return n, nil
}

// mergeImported copies what the other host knew into x; what the bridge read itself (an interview that
// succeeded) is kept.
func mergeImported(x *Device, src importer.Device) {
	if x.Interview == InterviewOK {
		return
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&x.Manufacturer, src.Manufacturer)
	set(&x.Model, src.Model)
	set(&x.SWBuildID, src.SWBuildID)
	set(&x.DateCode, src.DateCode)
	switch src.PowerSource {
	case importer.PowerMains:
		x.PowerSource = PowerMains
	case importer.PowerBattery:
		x.PowerSource = PowerBattery
	}
	x.Sleepy = src.Sleepy
	if src.Endpoint != 0 {
		x.Endpoint = src.Endpoint
	}
	if src.HasHardwareVersion {
		x.HardwareVersion, x.HasHardwareVersion = src.HardwareVersion, true
	}
	if src.HasManufacturerCode && src.HasImageType {
		x.ManufacturerCode, x.ImageType, x.HasImageID = src.ManufacturerCode, src.ImageType, true
	}
	if src.HasFileVersion {
		x.FileVersion, x.FileVersionKnown = src.FileVersion, true
	}
	if x.Model != "" {
		x.Interview, x.InterviewReason, x.InterviewedAt = InterviewOK, "", time.Now().UTC()
	}
}

// importAtStart applies the import of the command line (Options.Import) or of the configuration
// (existing.import, once per source and path). A refused import is logged and told on bridge/event; the
// bridge runs on.
func (b *Bridge) importAtStart(info ncp.NetworkInfo) error {
	im := b.opts.Import
	if im == nil && b.cfg.Existing.Import.Source != "" {
		b.existing.mu.Lock()
		done := b.existing.record.Imported[b.cfg.Existing.Import.Source+":"+b.cfg.Existing.Import.Path]
		b.existing.mu.Unlock()
		if !done.IsZero() {
			return nil
		}
		read, err := ReadImport(b.cfg.Existing.Import)
		if err != nil {
			b.importRefused(err)
			return err
		}
		im = &read
	}
	if im == nil {
		return nil
	}
	n, err := b.applyImport(info, *im)
	if err != nil {
		b.importRefused(err)
		return err
	}
	b.existing.mu.Lock()
	if b.existing.record.Imported == nil {
		b.existing.record.Imported = map[string]time.Time{}
	}
	b.existing.record.Imported[importKey(*im)] = time.Now().UTC()
	b.existing.mu.Unlock()
	b.saveNetworkRecord()
	b.addStartEvent(map[string]any{"type": "import_applied",
		"data": map[string]any{"source": im.Source, "path": im.Path, "devices": n}})
	return nil
}

func (b *Bridge) importRefused(err error) {
	b.log.Error().Err(err).Msg("import refused: nothing changed")
	b.addStartEvent(map[string]any{"type": "import_refused", "data": map[string]any{"error": err.Error()}})
}

// runImportOnly is Run for `otabridge import`: it starts the radio (to read the network the stick
// holds), applies the import, saves the state file and stops, without MQTT.
func (b *Bridge) runImportOnly(ctx context.Context) error {
	info, err := b.radio.Start(ctx)
	if err != nil {
		_ = b.radio.Close()
		return fmt.Errorf("start radio (%s): %w", b.cfg.Radio.Type, err)
	}
	b.loadNetworkRecord(info)
	err = b.importAtStart(info)
	_ = b.radio.Close()
	if err != nil {
		return err
	}
	b.devicesPub.close()
	return b.saver.Close()
}
