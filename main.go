// Command otabridge is a Zigbee OTA upgrade server that owns a coordinator radio and bridges firmware
// upgrades to MQTT with Home Assistant discovery. main.go holds the command line: subcommands, flags and
// wiring; the logic lives in the packages (README.md, "Development", lists them).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

//go:generate sh scripts/demo-images.sh

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// errUsage marks a command-line mistake; the usage text has been printed already.
var errUsage = errors.New("usage")

func main() {
	setMemoryLimit()
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT sets another: otabridge lives in
// tens of MiB, and without a limit the garbage of a burst of large requests (image uploads, each copied by
// the broker and the MQTT client) would let the heap grow to twice its peak before the collector runs.
const defaultMemoryLimit = 256 << 20

func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// runMain dispatches a command line and returns the process exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "otabridge: %v\n", err)
		return 1
	}
}

const usageText = `usage:
  otabridge [run] [--config FILE]             run the bridge (default config.yaml)
  otabridge ota inspect [--json] FILE...      show the header and sub-elements of OTA files
  otabridge ota create --manufacturer N --image-type N --version N [--hw-min N --hw-max N]
                       [--header-string S] [--stack-version N] FIRMWARE -o OUT
                                              wrap a firmware binary into a Zigbee OTA file
  otabridge zcl decode [--cluster N] HEX      decode one ZCL frame to JSON
  otabridge simstick --protocol ezsp|znp|zboss [--config FILE] [--speed N] [--ezsp-version N]
                     [--baud N] [--link PATH] [--debug]
                                              serve the simulated network as a stick on a pseudo-terminal
  otabridge addon [--options FILE] [--config FILE] [--supervisor URL] [--dry-run]
                                              run as a Home Assistant add-on (options from the Supervisor)
  otabridge import z2m|zha PATH [--config FILE]
                                              import device names and models from Zigbee2MQTT or ZHA
  otabridge health [--data-dir DIR] [--max-age D]
                                              exit 0 when the running bridge's heartbeat is fresh
  otabridge version                           print the version
`

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cmdRun(nil, stdout, stderr)
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "ota":
		if len(args) < 2 {
			break
		}
		switch args[1] {
		case "inspect":
			return cmdOTAInspect(args[2:], stdout, stderr)
		case "create":
			return cmdOTACreate(args[2:], stdout, stderr)
		}
	case "zcl":
		if len(args) >= 2 && args[1] == "decode" {
			return cmdZCLDecode(args[2:], stdout, stderr)
		}
	case "simstick":
		return cmdSimStick(args[1:], stdout, stderr)
	case "addon":
		return cmdAddon(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "import":
		return cmdImport(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "otabridge", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		if len(args[0]) > 0 && args[0][0] == '-' { // flags of the default "run" command
			return cmdRun(args, stdout, stderr)
		}
	}
	// args[0] is not a command, or its subcommand is missing or unknown.
	switch {
	case args[0] != "ota" && args[0] != "zcl":
		fmt.Fprintf(stderr, "otabridge: unknown command %q\n\n", args[0])
	case len(args) < 2:
		fmt.Fprintf(stderr, "otabridge: command %q needs a subcommand\n\n", args[0])
	default:
		fmt.Fprintf(stderr, "otabridge: unknown command %q\n\n", args[0]+" "+args[1])
	}
	fmt.Fprint(stderr, usageText)
	return errUsage
}
