package jsonlog

import (
	"strings"
	"testing"
)

func TestCheckLine(t *testing.T) {
	good := []string{
		`{"level":"info","component":"broker","time":"2026-01-01T00:00:00Z","message":"started"}`,
		`{"level":"info","a":{"b":1,"c":[{"d":1},{"d":2}]},"time":"t","message":"nested keys repeat across objects"}`,
	}
	for _, l := range good {
		if err := CheckLine([]byte(l)); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
	bad := map[string]string{
		`{"level":"info","component":"mqtt","component":"broker","time":"t","message":"m"}`: `duplicate key ".component"`,
		`{"level":"info","a":{"b":1,"b":2},"time":"t","message":"m"}`:                       `duplicate key ".a.b"`,
		`{"level":"info","a":[{"x":1,"x":1}],"time":"t","message":"m"}`:                     `duplicate key ".a[0].x"`,
		`{"level":"info","time":"t"}`:                                                       `no string "message"`,
		`{"level":"info","time":"t","message":"m"} {"level":"info"}`:                        "more than one",
		`["level"]`: "not a JSON object",
		`{"level":"info","time":"t","message":"m"`: "EOF",
		`level=info message=m`:                     "not JSON",
	}
	for l, want := range bad {
		err := CheckLine([]byte(l))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", l, err, want)
		}
	}
}
