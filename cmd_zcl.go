package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/otabridge/otabridge/zcl"
)

const zclDecodeUsage = "usage: otabridge zcl decode [--cluster N] HEX\n"

// clusterFlag is a cluster id given in decimal or as 0x hex.
type clusterFlag uint16

func (c *clusterFlag) String() string { return fmt.Sprintf("0x%04x", uint16(*c)) }

func (c *clusterFlag) Set(s string) error {
	base, digits := 10, s
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		base, digits = 16, rest
	}
	v, err := strconv.ParseUint(digits, base, 16)
	if err != nil {
		return fmt.Errorf("cluster %q: want a 16-bit number in decimal or 0x hex", s)
	}
	*c = clusterFlag(v)
	return nil
}

// cmdZCLDecode is `otabridge zcl decode [--cluster N] HEX`: it decodes one ZCL frame given in hex (spaces
// allowed, or spread over several arguments) and prints it as indented JSON.
func cmdZCLDecode(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("zcl decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cluster := clusterFlag(zcl.ClusterOTA)
	fs.Var(&cluster, "cluster", "cluster id `N` the frame belongs to, decimal or 0x hex")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), zclDecodeUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, zclDecodeUsage)
		return errUsage
	}
	frame, err := parseHexFrame(strings.Join(fs.Args(), ""))
	if err != nil {
		return err
	}
	desc, err := zcl.Describe(uint16(cluster), frame)
	if err != nil {
		return fmt.Errorf("decode frame %X: %w", frame, err)
	}
	out, err := json.MarshalIndent(desc, "", "  ")
	if err != nil {
		return fmt.Errorf("zcl decode: encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// parseHexFrame reads hex digits with any white space between them and an optional 0x prefix.
func parseHexFrame(s string) ([]byte, error) {
	digits := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	digits = strings.TrimPrefix(strings.TrimPrefix(digits, "0x"), "0X")
	if digits == "" {
		return nil, errors.New("zcl decode: no hex digits given")
	}
	frame, err := hex.DecodeString(digits)
	if err != nil {
		return nil, fmt.Errorf("zcl decode: bad hex %q: %w", s, err)
	}
	return frame, nil
}
