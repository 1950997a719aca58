package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUnknownCommand: a mistyped command is named as unknown, with the usage, exit status 2 (not "run").
func TestUnknownCommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"ota", "inspecct"}, `unknown command "ota inspecct"`},
		{[]string{"zcl"}, `command "zcl" needs a subcommand`},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := runMain(tt.args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", tt.args, code)
		}
		if !strings.Contains(errb.String(), tt.want) || !strings.Contains(errb.String(), "usage:") {
			t.Errorf("%v: stderr %q lacks %q and the usage", tt.args, errb.String(), tt.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: stdout %q, want nothing", tt.args, out.String())
		}
	}
}
