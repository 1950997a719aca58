package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

//go:embed static
var staticFiles embed.FS

// Requester runs the bridge's requests: the same code, validation and error sentences as
// `<base>/bridge/request/<path>` over MQTT. Request returns the response document
// {"status","data","error"}; TooLarge the response to a payload of size bytes, over MaxRequestBytes.
type Requester interface {
	Request(ctx context.Context, path string, payload []byte) []byte
	TooLarge(size int64) []byte
	MaxRequestBytes() int64
}

// Server serves the console. Create it with NewServer, start it with Start, stop it with Close.
type Server struct {
	cfg  Config
	hub  *Hub
	req  Requester
	log  zerolog.Logger
	http *http.Server
	ln   net.Listener
	done chan struct{} // closed by Close: live feeds end
	wg   sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session
	failures []time.Time // recent failed sign-ins
}

type session struct {
	csrf    string
	expires time.Time
}

const (
	sessionCookie   = "otabridge_session"
	csrfHeader      = "X-CSRF-Token"
	sessionLifetime = 7 * 24 * time.Hour
	maxSessions     = 256
	// A burst of failed sign-ins (any client) pauses sign-in for a minute.
	maxFailures   = 5
	failureWindow = time.Minute
	// keepaliveEvery sends an SSE comment so that proxies keep an idle feed open.
	keepaliveEvery = 25 * time.Second
	// requestTimeout bounds one action (an interview, a download), as over MQTT.
	requestTimeout = 5 * time.Minute
)

// contentSecurityPolicy allows only the console's own files: no inline script or style, no other origin;
// the page may be framed only by its own origin (Home Assistant's ingress panel is served from Home
// Assistant's origin, which is the page's origin too).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"

// NewServer prepares the console; cfg must have passed Validate and Finish.
func NewServer(cfg Config, hub *Hub, req Requester, log zerolog.Logger) *Server {
	s := &Server{cfg: cfg, hub: hub, req: req, log: log, done: make(chan struct{}), sessions: map[string]*session{}}
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Start listens on cfg.Listen and serves until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("web console: %w", err)
	}
	s.ln = ln
	s.log.Info().Str("listen", ln.Addr().String()).Bool("password", s.cfg.authRequired()).
		Bool("ingress", s.cfg.Ingress).Msg("web console listening")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("web console stopped")
		}
	}()
	return nil
}

// Addr is the address the console listens on (after Start).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close ends the live feeds and stops the server, waiting at most a few seconds for running actions.
func (s *Server) Close() error {
	close(s.done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	s.wg.Wait()
	return err
}

// Handler is the console's HTTP handler (Start serves it; tests call it directly).
func (s *Server) Handler() http.Handler {
	static, _ := fs.Sub(staticFiles, "static")
	files := http.FileServerFS(static)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	for _, name := range []string{"app.js", "app.css", "icon.svg"} {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		})
	}
	mux.HandleFunc("GET /api/session", s.handleSession)
	mux.HandleFunc("POST /api/login", s.handleLogin)
	mux.HandleFunc("POST /api/logout", s.handleLogout)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("POST /api/request/{path...}", s.handleRequest)
	return s.guard(mux)
}

// guard sets the security headers on every response and refuses clients the mode does not allow: as an
// add-on anyone but the ingress proxy; without a password, a Host that is not this machine (a DNS
// rebinding page would otherwise be "same origin").
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "SAMEORIGIN")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		if s.cfg.Ingress {
			if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || ap.Addr().Unmap() != IngressProxy {
				s.log.Warn().Str("remote", r.RemoteAddr).Msg("web console: connection refused (add-on: only Home Assistant's ingress proxy may connect)")
				writeError(w, http.StatusForbidden, "only Home Assistant's ingress proxy may connect: open otabridge from the Home Assistant sidebar")
				return
			}
		} else if !s.cfg.authRequired() && !isLoopback(hostOnly(r.Host)) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("host %q refused: without a password the console answers only to localhost", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// access is who a request comes from.
type access struct {
	ok      bool     // signed in, or no sign-in needed
	bearer  bool     // the API token in the Authorization header (a script, not a browser session)
	session *session // the browser session, if any
	id      string
}

func (s *Server) access(r *http.Request) access {
	var a access
	if auth := r.Header.Get("Authorization"); s.cfg.Token != "" && strings.HasPrefix(auth, "Bearer ") {
		if secretEqual(strings.TrimPrefix(auth, "Bearer "), s.cfg.Token) {
			return access{ok: true, bearer: true}
		}
		return a
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		if sess := s.sessions[c.Value]; sess != nil && time.Now().Before(sess.expires) {
			a.session, a.id = sess, c.Value
		}
		s.mu.Unlock()
	}
	a.ok = a.session != nil || !s.cfg.authRequired()
	return a
}

// secretEqual compares in constant time (of the hashes, so the length does not show either).
func secretEqual(given, want string) bool {
	g, w := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSession starts a browser session and sets its cookie.
func (s *Server) newSession(w http.ResponseWriter, r *http.Request) *session {
	id := randomToken()
	sess := &session{csrf: randomToken(), expires: time.Now().Add(sessionLifetime)}
	s.mu.Lock()
	now := time.Now()
	for k, v := range s.sessions {
		if now.After(v.expires) {
			delete(s.sessions, k)
		}
	}
	for len(s.sessions) >= maxSessions { // drop the oldest
		var oldest string
		for k, v := range s.sessions {
			if oldest == "" || v.expires.Before(s.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(s.sessions, oldest)
	}
	s.sessions[id] = sess
	s.mu.Unlock()
	path := "/"
	if p := r.Header.Get("X-Ingress-Path"); strings.HasPrefix(p, "/") {
		path = strings.TrimSuffix(p, "/") + "/"
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
		Expires: sess.expires})
	return sess
}

// sameOrigin refuses a browser's cross-site request: by Sec-Fetch-Site when the browser sends it, else by
// Origin against Host (behind the ingress proxy Host is the add-on's, so only Sec-Fetch-Site is used).
func (s *Server) sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site != "same-origin" && site != "none" {
			return fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", site)
		}
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" || s.cfg.Ingress {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host {
		return fmt.Errorf("cross-site request refused (Origin %s is not %s)", origin, r.Host)
	}
	return nil
}

// sessionInfo is the answer of GET api/session and POST api/login.
type sessionInfo struct {
	AuthRequired bool   `json:"auth_required"`
	SignedIn     bool   `json:"signed_in"`
	CSRF         string `json:"csrf,omitempty"`
	Ingress      bool   `json:"ingress"`
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	a := s.access(r)
	info := sessionInfo{AuthRequired: s.cfg.authRequired(), Ingress: s.cfg.Ingress}
	if !a.ok {
		writeJSON(w, http.StatusUnauthorized, info)
		return
	}
	info.SignedIn = true
	if !a.bearer {
		sess := a.session
		if sess == nil {
			sess = s.newSession(w, r)
		}
		info.CSRF = sess.csrf
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := s.sameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if !s.cfg.authRequired() {
		writeError(w, http.StatusBadRequest, "this console has no password")
		return
	}
	var body struct {
		Password string `json:"password"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "sign-in: want {\"password\": \"…\"}")
		return
	}
	now := time.Now()
	s.mu.Lock()
	recent := s.failures[:0]
	for _, t := range s.failures {
		if now.Sub(t) < failureWindow {
			recent = append(recent, t)
		}
	}
	s.failures = recent
	blocked := len(recent) >= maxFailures
	s.mu.Unlock()
	if blocked {
		writeError(w, http.StatusTooManyRequests, "too many wrong passwords: wait a minute and try again")
		return
	}
	good := s.cfg.Password != "" && secretEqual(body.Password, s.cfg.Password) ||
		s.cfg.Token != "" && secretEqual(body.Password, s.cfg.Token)
	if !good {
		s.mu.Lock()
		s.failures = append(s.failures, now)
		s.mu.Unlock()
		s.log.Warn().Str("remote", r.RemoteAddr).Msg("web console: wrong password")
		writeError(w, http.StatusUnauthorized, "wrong password")
		return
	}
	sess := s.newSession(w, r)
	s.log.Info().Str("remote", r.RemoteAddr).Msg("web console: signed in")
	writeJSON(w, http.StatusOK, sessionInfo{AuthRequired: true, SignedIn: true, CSRF: sess.csrf, Ingress: s.cfg.Ingress})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.sameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	a := s.access(r)
	if a.session != nil {
		if r.Header.Get(csrfHeader) != a.session.csrf {
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
			return
		}
		s.mu.Lock()
		delete(s.sessions, a.id)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	writeJSON(w, http.StatusOK, map[string]any{"signed_in": false})
}

// handleRequest runs one bridge request: POST api/request/<path> with the same JSON as over MQTT.
func (s *Server) handleRequest(w http.ResponseWriter, r *http.Request) {
	a := s.access(r)
	if !a.ok {
		writeError(w, http.StatusUnauthorized, "sign in first")
		return
	}
	if !a.bearer {
		if err := s.sameOrigin(r); err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		given := r.Header.Get(csrfHeader)
		if a.session == nil || given == "" || !secretEqual(given, a.session.csrf) {
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
			return
		}
	}
	max := s.req.MaxRequestBytes()
	w.Header().Set("Content-Type", "application/json")
	if r.ContentLength > max {
		_, _ = w.Write(s.req.TooLarge(r.ContentLength))
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
		return
	}
	if int64(len(payload)) > max { // no Content-Length: count the rest without keeping it
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = w.Write(s.req.TooLarge(int64(len(payload)) + n))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	_, _ = w.Write(s.req.Request(ctx, r.PathValue("path"), payload))
}

// handleEvents is the live feed: a "snapshot" message, then "set" (a key's new value) and "event"
// messages as they come.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if a := s.access(r); !a.ok {
		writeError(w, http.StatusUnauthorized, "sign in first")
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	first, c := s.hub.subscribe()
	defer s.hub.unsubscribe(c)
	if err := writeSSE(w, first); err != nil || rc.Flush() != nil {
		return
	}
	keepalive := time.NewTicker(keepaliveEvery)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-c.dropped:
			return
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case m := <-c.ch:
			err := writeSSE(w, m)
			for more := true; more && err == nil; { // send what else is waiting in the same flush
				select {
				case m = <-c.ch:
					err = writeSSE(w, m)
				default:
					more = false
				}
			}
			if err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

func writeSSE(w io.Writer, m message) error {
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.event, m.data)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the shape of a bridge response, so the page shows every refusal the same way.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"status": "error", "data": map[string]any{}, "error": msg})
}
