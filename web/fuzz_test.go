package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
)

// FuzzHandler sends the console arbitrary requests (method, path, body, cookie, CSRF token, Origin,
// Authorization, Sec-Fetch-Site): it never panics, answers with a status it documents, and passes a request
// to the bridge only with a valid session and CSRF token or the API token.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "/api/request/permit_join", `{"time":10}`, "", "", "", "", "same-origin")
	f.Add("POST", "/api/login", `{"password":"correct horse"}`, "", "", "", "", "same-origin")
	f.Add("POST", "/api/login", `{"password":`, "", "", "", "", "")
	f.Add("GET", "/api/session", "", "otabridge_session=x", "", "", "", "")
	f.Add("POST", "/api/request/../../etc/passwd", `{}`, "", "", "http://evil", "", "cross-site")
	f.Add("POST", "/api/request/image/add", `{"data":"AAAA"}`, "", "", "", "Bearer 0123456789abcdef-token", "")
	f.Add("GET", "/app.js", "", "", "", "", "Bearer ", "none")
	f.Add("DELETE", "/", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, method, path, body, cookie, csrf, origin, auth, site string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?%") {
			return // not a request line an HTTP server would hand on
		}
		req := &fakeRequester{max: 1 << 10}
		cfg := Config{Enabled: true, Listen: "0.0.0.0:8099", Password: "correct horse", Token: "0123456789abcdef-token"}
		s := NewServer(cfg, NewHub(clock.NewVirtual(), time.Second), req, zerolog.Nop())
		// A page that has gone: the live feed (which otherwise streams until the page leaves) sends its
		// snapshot and ends.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, err := http.NewRequestWithContext(ctx, method, "http://192.168.1.5:8099"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		r.RemoteAddr = "192.168.1.20:40000"
		for k, v := range map[string]string{"Cookie": cookie, csrfHeader: csrf, "Origin": origin, "Authorization": auth, "Sec-Fetch-Site": site} {
			if v != "" && !strings.ContainsAny(v, "\r\n") {
				r.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusNotModified, http.StatusBadRequest, http.StatusUnauthorized,
			http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusTooManyRequests,
			http.StatusRequestedRangeNotSatisfiable, http.StatusPreconditionFailed:
		default:
			t.Fatalf("%s %s: status %d", method, path, w.Code)
		}
		if w.Header().Get("Content-Security-Policy") != contentSecurityPolicy {
			t.Fatalf("%s %s: no CSP", method, path)
		}
		if calls := req.Calls(); len(calls) > 0 && auth != "Bearer "+cfg.Token {
			t.Fatalf("%s %s reached the bridge without the token (no session can exist here): %v", method, path, calls)
		}
	})
}
