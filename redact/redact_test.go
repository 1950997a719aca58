package redact

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mqtt://u:pw@broker:1883", "mqtt://xxxxx@broker:1883"},
		{"mqtts://user@broker", "mqtts://xxxxx@broker"},
		{"https://u:p@ss@example.com/index.json", "https://xxxxx@example.com/index.json"},
		{"https://example.com/i.json?token=abc&x=1", "https://example.com/i.json?token=xxxxx&x=1"},
		{"https://example.com/a.ota?X-Amz-Signature=abc&X-Amz-Credential=k%2F1&v=2",
			"https://example.com/a.ota?X-Amz-Signature=xxxxx&X-Amz-Credential=xxxxx&v=2"},
		{"https://example.com/a.ota?access_token=1#frag", "https://example.com/a.ota?access_token=xxxxx#frag"},
		{`fetch https://u:pw@h/x.ota: HTTP 404`, `fetch https://xxxxx@h/x.ota: HTTP 404`},
		{`["https://a:b@h1/i.json","https://h2/i.json"]`, `["https://xxxxx@h1/i.json","https://h2/i.json"]`},
		// Nothing to hide.
		{"embedded", "embedded"},
		{"mqtt://broker:1883", "mqtt://broker:1883"},
		{"https://example.com/a@b.ota", "https://example.com/a@b.ota"},
		{"images/foo.ota", "images/foo.ota"},
		{"user@example.com wrote", "user@example.com wrote"},
		{"https://example.com/x?page=2&keyboard=1", "https://example.com/x?page=2&keyboard=1"},
		{"a=b c://d", "a=b c://d"},
		{"x://@", "x://xxxxx@"},
	}
	for _, tt := range tests {
		if got := URLs(tt.in); got != tt.want {
			t.Errorf("URLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzURLs(f *testing.F) {
	for _, s := range []string{"mqtt://u:pw@h:1", "https://h/p?token=t", "x", "a://@@@", "://@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := URLs(s)
		if URLs(out) != out {
			t.Errorf("not idempotent: %q → %q → %q", s, out, URLs(out))
		}
	})
}

func TestError(t *testing.T) {
	base := errors.New(`Get "https://user:***@h/x.ota": dial tcp: refused`)
	err := Error(fmt.Errorf("fetch: %w", base))
	if got, want := err.Error(), `fetch: Get "https://xxxxx@h/x.ota": dial tcp: refused`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, base) {
		t.Error("the wrapped error is lost")
	}
	if Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
}

// BenchmarkURLsLarge: a request payload of a few megabytes goes through URLs when it is logged.
func BenchmarkURLsLarge(b *testing.B) {
	s := "http://" + strings.Repeat("x", 1<<20) + "?a=b&token=c"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		URLs(s)
	}
}
