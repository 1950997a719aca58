package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/otabridge/otabridge/ncp/pty"
)

// README, Troubleshooting: "Colours only on a terminal: a file, a pipe, docker logs and the add-on log get
// plain text."
func TestLogColoursOnlyOnATerminal(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{
		"buffer": &bytes.Buffer{}, "file": file, "pipe": w,
	} {
		if !consoleWriter(out, "").NoColor {
			t.Errorf("%s: coloured log lines, want plain text", name)
		}
	}

	master, slavePath, err := pty.Open()
	if errors.Is(err, pty.ErrUnsupported) {
		t.Skip("no pseudo-terminals on this system: the terminal case is not checked")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	term, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if consoleWriter(term, "").NoColor {
		t.Error("terminal: plain log lines, want colours")
	}
}
