// Package redact owns hiding secrets in text shown to users: the credentials of URLs (user:password@,
// and query parameters such as token= or sig=) in configuration summaries, logs, MQTT payloads and saved
// state. It is the one place that decides what a credential in a URL looks like.
package redact

import "strings"

// Placeholder replaces every hidden value.
const Placeholder = "xxxxx"

// URLs returns s with the credentials of every URL in it hidden: the user information before the host
// ("mqtt://xxxxx@broker:1883") and the values of query parameters that carry secrets
// ("?token=xxxxx"). s may be a URL, a list of them, or a sentence (an error) that contains some; anything
// else is returned unchanged. It runs in time linear in len(s) (payloads of megabytes go through it).
func URLs(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	last := 0 // s[:last] is in b already
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "://"):
			// The authority ends at the path, query, fragment, white space or a quote; its last '@' ends the
			// user information.
			from := i + 3
			end := from + strings.IndexAny(s[from:], "/?#\"' \t\r\n")
			if end < from {
				end = len(s)
			}
			if at := strings.LastIndexByte(s[from:end], '@'); at >= 0 {
				b.WriteString(s[last:from])
				b.WriteString(Placeholder)
				last = from + at
			}
			i = end
		case s[i] == '?' || s[i] == '&' || s[i] == ';':
			name := i + 1
			eq := name
			for eq < len(s) && isNameByte(s[eq]) {
				eq++
			}
			if eq < len(s) && s[eq] == '=' && eq > name && secretName(s[name:eq]) {
				end := eq + 1
				for end < len(s) && !strings.ContainsRune("&#\"' \t\r\n;", rune(s[end])) {
					end++
				}
				b.WriteString(s[last : eq+1])
				b.WriteString(Placeholder)
				last, i = end, end
				continue
			}
			i = eq
		default:
			i++
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// secretName reports whether a query parameter's name says it carries a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "sig", "key", "code":
		return true
	}
	for _, w := range []string{"token", "secret", "passw", "pwd", "apikey", "api_key", "auth", "signature", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Error wraps err so that its text has the credentials of its URLs hidden (see URLs); errors.Is and
// errors.As still see err. nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}

type redactedError struct{ err error }

func (e redactedError) Error() string { return URLs(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }
