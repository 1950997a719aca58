package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
)

// fakeRequester records the requests the console passes on and answers {"status":"ok"}.
type fakeRequester struct {
	mu    sync.Mutex
	calls []string // path + " " + payload
	max   int64
}

func (f *fakeRequester) Request(_ context.Context, path string, payload []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, path+" "+string(payload))
	return []byte(`{"status":"ok","data":{"path":"` + path + `"}}`)
}

func (f *fakeRequester) TooLarge(size int64) []byte {
	return []byte(fmt.Sprintf(`{"status":"error","data":{},"error":"payload too large (%d bytes, at most %d)"}`, size, f.max))
}

func (f *fakeRequester) MaxRequestBytes() int64 { return f.max }

func (f *fakeRequester) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type rig struct {
	t   *testing.T
	srv *Server
	req *fakeRequester
	h   http.Handler
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	cfg.Enabled = true
	require.NoError(t, cfg.Validate())
	req := &fakeRequester{max: 1000}
	srv := NewServer(cfg, NewHub(clock.NewVirtual(), time.Second), req, zerolog.Nop())
	return &rig{t: t, srv: srv, req: req, h: srv.Handler()}
}

// do sends a request as a browser on the same origin would (Host 127.0.0.1:8099, Sec-Fetch-Site
// same-origin), with the given extra headers ("Cookie", "X-CSRF-Token", …; an empty value removes one).
func (r *rig) do(method, path, body string, headers map[string]string) *httptest.ResponseRecorder {
	r.t.Helper()
	req := httptest.NewRequest(method, "http://127.0.0.1:8099"+path, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:50000"
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		switch k {
		case "RemoteAddr":
			req.RemoteAddr = v
			continue
		case "Host":
			req.Host = v
			continue
		}
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

// session opens the page's session (signing in with password when given) and returns the cookie header
// and the CSRF token.
func (r *rig) session(password string) (cookie, csrf string) {
	r.t.Helper()
	var w *httptest.ResponseRecorder
	if password != "" {
		w = r.do("POST", "/api/login", `{"password":"`+password+`"}`, nil)
	} else {
		w = r.do("GET", "/api/session", "", nil)
	}
	require.Equal(r.t, http.StatusOK, w.Code, w.Body.String())
	var info sessionInfo
	require.NoError(r.t, json.Unmarshal(w.Body.Bytes(), &info))
	require.NotEmpty(r.t, info.CSRF)
	res := w.Result()
	require.Len(r.t, res.Cookies(), 1)
	c := res.Cookies()[0]
	assert.True(r.t, c.HttpOnly, "the session cookie is HttpOnly")
	assert.Equal(r.t, http.SameSiteStrictMode, c.SameSite)
	return c.Name + "=" + c.Value, info.CSRF
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var resp struct{ Status, Error string }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp), w.Body.String())
	require.Equal(t, "error", resp.Status)
	return resp.Error
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	r := newRig(t, Config{})
	for _, p := range []string{"/", "/app.js", "/app.css", "/icon.svg", "/api/session", "/nope"} {
		w := r.do("GET", p, "", nil)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		assert.Contains(t, csp, "script-src 'self'", p)
		assert.NotContains(t, csp, "unsafe-inline", p)
		assert.NotContains(t, csp, "unsafe-eval", p)
		assert.Contains(t, csp, "frame-ancestors 'self'", p)
		assert.Contains(t, csp, "default-src 'none'", p)
		assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), p)
		assert.Equal(t, "SAMEORIGIN", h.Get("X-Frame-Options"), p)
	}
	w := r.do("GET", "/", "", nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Header().Get("Content-Type"), "text/html")
	assert.Contains(t, r.do("GET", "/app.js", "", nil).Header().Get("Content-Type"), "javascript")
	assert.Equal(t, "no-store", r.do("GET", "/api/session", "", nil).Header().Get("Cache-Control"))
}

// TestPageHasNoInlineScriptAndOnlyRelativeURLs: what the CSP forbids is not in the page, and every URL is
// relative so that the page works under Home Assistant's ingress prefix.
func TestPageHasNoInlineScriptAndOnlyRelativeURLs(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "app.css"} {
		b, err := staticFiles.ReadFile("static/" + name)
		require.NoError(t, err)
		s := string(b)
		switch name {
		case "index.html":
			assert.NotRegexp(t, `<script>|<script [^>]*>[^<]+</script>`, s, "inline script")
			assert.NotRegexp(t, `\son[a-z]+=`, s, "inline event handler")
			assert.NotContains(t, s, "style=", "inline style")
			assert.NotRegexp(t, `(src|href)="/`, s, "absolute path in %s", name)
		case "app.js":
			assert.NotRegexp(t, `fetch\("/|EventSource\("/`, s, "absolute path in app.js")
			assert.NotContains(t, s, "innerHTML", "app.js builds the DOM without innerHTML")
			assert.NotContains(t, s, "eval(", "no eval")
		case "app.css":
			assert.NotRegexp(t, `url\(\s*["']?/`, s, "absolute path in app.css")
		}
	}
}

func TestPasswordSignIn(t *testing.T) {
	r := newRig(t, Config{Listen: "0.0.0.0:8099", Password: "correct horse"})
	lan := map[string]string{"Host": "192.168.1.5:8099"}
	w := r.do("GET", "/", "", lan)
	assert.Equal(t, http.StatusOK, w.Code, "the page itself holds no data: it loads and asks to sign in")
	w = r.do("GET", "/api/session", "", lan)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, http.StatusUnauthorized, r.do("GET", "/api/events", "", lan).Code)
	w = r.do("POST", "/api/request/permit_join", `{"time":10}`, lan)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Empty(t, r.req.Calls(), "nothing ran")

	w = r.do("POST", "/api/login", `{"password":"wrong"}`, lan)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "wrong password", errorOf(t, w))
	assert.Empty(t, w.Result().Cookies())

	cookie, csrf := r.session("correct horse")
	w = r.do("POST", "/api/request/permit_join", `{"time":10}`, map[string]string{"Cookie": cookie, csrfHeader: csrf})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, []string{`permit_join {"time":10}`}, r.req.Calls(), "the same path and JSON as over MQTT")

	w = r.do("POST", "/api/logout", "", map[string]string{"Cookie": cookie, csrfHeader: csrf})
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, http.StatusUnauthorized, r.do("GET", "/api/session", "", map[string]string{"Cookie": cookie}).Code,
		"the session ends with sign-out")
}

func TestSignInThrottled(t *testing.T) {
	r := newRig(t, Config{Listen: "0.0.0.0:8099", Password: "correct horse"})
	for range maxFailures {
		assert.Equal(t, http.StatusUnauthorized, r.do("POST", "/api/login", `{"password":"guess"}`, nil).Code)
	}
	w := r.do("POST", "/api/login", `{"password":"correct horse"}`, nil)
	assert.Equal(t, http.StatusTooManyRequests, w.Code, "after a burst of wrong passwords sign-in pauses")
	assert.Contains(t, errorOf(t, w), "wait a minute")
}

func TestBearerToken(t *testing.T) {
	token := "0123456789abcdef-token"
	r := newRig(t, Config{Listen: "0.0.0.0:8099", Token: token})
	noBrowser := map[string]string{"Sec-Fetch-Site": "", "Authorization": "Bearer " + token}
	w := r.do("POST", "/api/request/ota/check_all", `{}`, noBrowser)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, []string{"ota/check_all {}"}, r.req.Calls(), "a script with the token needs no session or CSRF token")

	w = r.do("POST", "/api/request/ota/check_all", `{}`, map[string]string{"Authorization": "Bearer wrong-token-wrong-token"})
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	w = r.do("POST", "/api/login", `{"password":"`+token+`"}`, nil)
	assert.Equal(t, http.StatusOK, w.Code, "the sign-in form takes the token too")
}

func TestCSRF(t *testing.T) {
	r := newRig(t, Config{})
	cookie, csrf := r.session("")
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no token", map[string]string{"Cookie": cookie}, "CSRF token"},
		{"wrong token", map[string]string{"Cookie": cookie, csrfHeader: "x" + csrf}, "CSRF token"},
		{"no session", map[string]string{csrfHeader: csrf}, "CSRF token"},
		{"cross-site fetch", map[string]string{"Cookie": cookie, csrfHeader: csrf, "Sec-Fetch-Site": "cross-site"}, "cross-site request refused"},
		{"same-site but other origin", map[string]string{"Cookie": cookie, csrfHeader: csrf, "Sec-Fetch-Site": "same-site"}, "cross-site request refused"},
		{"other Origin", map[string]string{"Cookie": cookie, csrfHeader: csrf, "Sec-Fetch-Site": "", "Origin": "http://evil.example"}, "cross-site request refused"},
	}
	for _, c := range cases {
		w := r.do("POST", "/api/request/permit_join", `{"time":10}`, c.headers)
		assert.Equal(t, http.StatusForbidden, w.Code, c.name)
		assert.Contains(t, errorOf(t, w), c.want, c.name)
	}
	assert.Empty(t, r.req.Calls(), "no refused request ran")

	assert.Equal(t, http.StatusMethodNotAllowed, r.do("GET", "/api/request/permit_join", "", map[string]string{"Cookie": cookie}).Code,
		"state changes only by POST")

	w := r.do("POST", "/api/request/permit_join", `{"time":10}`, map[string]string{"Cookie": cookie, csrfHeader: csrf,
		"Sec-Fetch-Site": "", "Origin": "http://127.0.0.1:8099"})
	assert.Equal(t, http.StatusOK, w.Code, "a browser without Sec-Fetch-Site, same Origin")
	assert.Len(t, r.req.Calls(), 1)
}

// TestNoPasswordAnswersOnlyLocalhost: without a password the console answers only to a loopback Host, so a
// DNS-rebinding page cannot become "same origin".
func TestNoPasswordAnswersOnlyLocalhost(t *testing.T) {
	r := newRig(t, Config{})
	for _, host := range []string{"127.0.0.1:8099", "localhost:8099", "[::1]:8099"} {
		assert.Equal(t, http.StatusOK, r.do("GET", "/api/session", "", map[string]string{"Host": host}).Code, host)
	}
	w := r.do("GET", "/api/session", "", map[string]string{"Host": "rebind.evil.example:8099"})
	assert.Equal(t, http.StatusMisdirectedRequest, w.Code)
	assert.Contains(t, errorOf(t, w), "only to localhost")
}

func TestIngressOnlyFromSupervisorProxy(t *testing.T) {
	r := newRig(t, Config{Listen: ":8099", Ingress: true})
	proxy := map[string]string{"RemoteAddr": "172.30.32.2:41234", "Host": "a0d7b954-otabridge:8099", "X-Ingress-Path": "/api/hassio_ingress/abc"}
	w := r.do("GET", "/", "", proxy)
	assert.Equal(t, http.StatusOK, w.Code)
	w = r.do("GET", "/api/session", "", proxy)
	require.Equal(t, http.StatusOK, w.Code)
	c := w.Result().Cookies()
	require.Len(t, c, 1)
	assert.Equal(t, "/api/hassio_ingress/abc/", c[0].Path, "the session cookie is scoped to the ingress path")

	for _, remote := range []string{"172.30.32.1:5555", "192.168.1.20:5555", "127.0.0.1:5555"} {
		w = r.do("GET", "/", "", map[string]string{"RemoteAddr": remote})
		assert.Equal(t, http.StatusForbidden, w.Code, remote)
		assert.Contains(t, errorOf(t, w), "ingress proxy", remote)
	}
}

// TestUploadSizeLimit: a payload over the MQTT limit is refused with the bridge's own sentence, whether the
// body says its length or not, and never reaches the request code.
func TestUploadSizeLimit(t *testing.T) {
	r := newRig(t, Config{})
	cookie, csrf := r.session("")
	hdr := map[string]string{"Cookie": cookie, csrfHeader: csrf}
	body := `{"data":"` + strings.Repeat("A", 1100) + `","file_name":"x.ota"}`
	w := r.do("POST", "/api/request/image/add", body, hdr)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, fmt.Sprintf("payload too large (%d bytes, at most 1000)", len(body)), errorOf(t, w))

	req := httptest.NewRequest("POST", "http://127.0.0.1:8099/api/request/image/add", io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1 // chunked: the length is found by reading
	req.Header.Set("Cookie", cookie)
	req.Header.Set(csrfHeader, csrf)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	assert.Equal(t, fmt.Sprintf("payload too large (%d bytes, at most 1000)", len(body)), errorOf(t, rec))
	assert.Empty(t, r.req.Calls())

	ok := `{"data":"` + strings.Repeat("A", 100) + `","file_name":"x.ota"}`
	w = r.do("POST", "/api/request/image/add", ok, hdr)
	assert.Equal(t, []string{"image/add " + ok}, r.req.Calls(), "a payload within the limit goes through unchanged")
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Enabled: true, Listen: "127.0.0.1:8099"}, ""},
		{Config{Enabled: true, Listen: "localhost:8099"}, ""},
		{Config{Enabled: true, Listen: "[::1]:8099"}, ""},
		{Config{Enabled: false, Listen: "0.0.0.0:8099"}, ""},
		{Config{Enabled: true, Listen: "0.0.0.0:8099"}, "web.listen: 0.0.0.0:8099 is reachable from other machines"},
		{Config{Enabled: true, Listen: ":8099"}, "reachable from other machines"},
		{Config{Enabled: true, Listen: "192.168.1.2:8099", Password: "long enough"}, ""},
		{Config{Enabled: true, Listen: "192.168.1.2:8099", Token: "0123456789abcdef"}, ""},
		{Config{Enabled: true, Listen: ":8099", Ingress: true}, ""},
		{Config{Enabled: true, Listen: "8099"}, "web.listen: \"8099\" is not allowed"},
		{Config{Enabled: true, Listen: "0.0.0.0:8099", Password: "short"}, "web.password: too short"},
		{Config{Enabled: true, Listen: "0.0.0.0:8099", Token: "short"}, "web.token: too short"},
		{Config{Enabled: true, Listen: "0.0.0.0:8099", Password: "long enough", PasswordFile: "f"}, "not both"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if c.want == "" {
			assert.NoError(t, err, "%+v", c.cfg)
		} else if assert.Error(t, err, "%+v", c.cfg) {
			assert.Contains(t, err.Error(), c.want)
		}
	}

	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(f, []byte("  from a file \n"), 0o600))
	cfg := Config{Enabled: true, Listen: "0.0.0.0:8099", PasswordFile: f}
	require.NoError(t, cfg.Validate())
	require.NoError(t, cfg.Finish())
	assert.Equal(t, "from a file", cfg.Password)
	require.NoError(t, os.WriteFile(f, []byte("short"), 0o600))
	cfg.Password = ""
	assert.ErrorContains(t, cfg.Finish(), "too short")
}

// TestLiveFeedOverHTTP: the page's feed starts with the snapshot and carries later changes; the server ends
// it on Close.
func TestLiveFeedOverHTTP(t *testing.T) {
	req := &fakeRequester{max: 1000}
	hub := NewHub(clock.Real{}, time.Second)
	hub.Set("bridge/info", []byte(`{"version":"t"}`))
	srv := NewServer(Config{Enabled: true, Listen: "127.0.0.1:0"}, hub, req, zerolog.Nop())
	require.NoError(t, srv.Start())
	resp, err := http.Get("http://" + srv.Addr() + "/api/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	rd := bufio.NewReader(resp.Body)
	next := func() (string, string) {
		var ev, data string
		for {
			line, err := rd.ReadString('\n')
			require.NoError(t, err)
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev != "":
				return ev, data
			}
		}
	}
	ev, data := next()
	assert.Equal(t, "snapshot", ev)
	assert.Contains(t, data, `"bridge/info":{"version":"t"}`)
	hub.Set("door/ota", []byte(`{"state":"updating"}`))
	ev, data = next()
	assert.Equal(t, "set", ev)
	assert.JSONEq(t, `{"key":"door/ota","value":{"state":"updating"}}`, data)
	require.NoError(t, srv.Close())
	_, err = io.ReadAll(rd)
	assert.NoError(t, err, "the feed ends cleanly on Close")
}
