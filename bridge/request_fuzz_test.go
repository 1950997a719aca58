package bridge

import (
	"testing"
)

// FuzzRequestPayload: any request payload (update_all with its filter, name and now; campaign/pause with its
// id …) is parsed without a panic, and every field accessor either reads a value or names the problem.
// The seeds (testdata/fuzz/FuzzRequestPayload) are the documented payloads and broken ones.
func FuzzRequestPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, _, err := parseRequest("ota/update_all", payload)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("parse error %v is not a request error", err)
			}
			return
		}
		_, _ = req.str("name", false)
		_, _ = req.str("id", true)
		_, _ = req.boolean("now")
		_, _, _ = req.uint("version", 0xFFFFFFFF)
		if fl, err := req.object("filter"); err == nil && fl != nil {
			_, _ = fl.strList("id")
			_, _ = fl.str("model", false)
			_, _ = fl.str("image", false)
			_, _, _ = fl.uint("manufacturer_code", 0xFFFF)
			_ = fl.unknown()
		}
		_ = req.unknown()
	})
}
