// Package jsonlog checks JSON log output strictly for tests: one JSON object per line, no key twice in any
// object (encoding/json silently keeps the last of duplicate keys), and the fields every line has. It imports
// nothing of otabridge, so the bridge package's own tests can use it.
package jsonlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// CheckLine checks one line of a JSON log strictly: exactly one JSON object, no key twice in any
// object (encoding/json silently keeps the last of duplicate keys; log shippers reject them or collapse them),
// and the fields every line has: level, time and message as strings.
func CheckLine(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("not a JSON object: starts with %v", tok)
	}
	fields, err := walkObject(dec, "")
	if err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value on the line")
	}
	for _, k := range []string{"level", "time", "message"} {
		if _, ok := fields[k].(string); !ok {
			return fmt.Errorf("no string %q field", k)
		}
	}
	return nil
}

// walkObject reads the rest of an object whose '{' was read, failing on a repeated key; it returns the
// top-level scalar values (strings, json.Number, bool, nil) by key.
func walkObject(dec *json.Decoder, path string) (map[string]any, error) {
	fields := map[string]any{}
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", path, err)
		}
		if tok == json.Delim('}') {
			return fields, nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object %s: key %v is not a string", path, tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q in object %s", path+"."+key, path)
		}
		seen[key] = true
		v, err := walkValue(dec, path+"."+key)
		if err != nil {
			return nil, err
		}
		fields[key] = v
	}
}

// walkValue reads one value; objects and arrays are walked (and checked) and returned as nil.
func walkValue(dec *json.Decoder, path string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("value %s: %w", path, err)
	}
	switch tok {
	case json.Delim('{'):
		_, err := walkObject(dec, path)
		return nil, err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if _, err := walkValue(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil { // the ']'
			return nil, fmt.Errorf("array %s: %w", path, err)
		}
		return nil, nil
	}
	return tok, nil
}

// Check checks every non-empty line of a JSON log with CheckLine and returns one error per
// bad line (with its number and text), nil when all are good.
func Check(log []byte) error {
	var errs []error
	for i, line := range bytes.Split(log, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := CheckLine(line); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w: %s", i+1, err, line))
		}
	}
	return errors.Join(errs...)
}
