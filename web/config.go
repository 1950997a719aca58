// Package web owns the web console: the one page (HTML, CSS and JavaScript embedded from web/static) that
// shows the devices, the queue, the transfers, the images, the approvals waiting and the last events, the
// HTTP server that serves it with its security (password or token, sessions, CSRF checks, content security
// policy, the Home Assistant ingress rules), the live feed to the page over Server-Sent Events (Hub), and
// the passing of the page's actions to the bridge's request code — the same code MQTT requests run.
package web

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Config is the `web` section of the configuration.
type Config struct {
	// Enabled serves the console.
	Enabled bool `yaml:"enabled"`
	// Listen is host:port. Anything but a loopback address needs Password or Token (or Ingress).
	Listen string `yaml:"listen"`
	// Password is asked by the page's sign-in form.
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is read (and trimmed) at start instead of giving Password in the file.
	PasswordFile string `yaml:"password_file"`
	// Token is accepted as "Authorization: Bearer <token>" (scripts) and in the sign-in form.
	Token string `yaml:"token" secret:"true"`
	// Ingress is set by the Home Assistant add-on: the console is the add-on's ingress panel, only the
	// Supervisor's ingress proxy may connect, and Home Assistant has signed the user in.
	Ingress bool `yaml:"ingress"`
}

// DefaultListen is where the console listens unless web.listen says otherwise.
const DefaultListen = "127.0.0.1:8099"

// IngressPort is the port the add-on's console listens on for Home Assistant's ingress proxy.
const IngressPort = 8099

// IngressProxy is the address of the Supervisor's ingress proxy: with Ingress set, the only client allowed.
var IngressProxy = netip.MustParseAddr("172.30.32.2")

// Shortest accepted password and token.
const (
	minPasswordLength = 8
	minTokenLength    = 16
)

// DefaultConfig is the console's default: on, on 127.0.0.1:8099, no password.
func DefaultConfig() Config { return Config{Enabled: true, Listen: DefaultListen} }

// Validate checks the section; the error names the key.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" {
		return fmt.Errorf("web.listen: %q is not allowed (want host:port, e.g. %s)", c.Listen, DefaultListen)
	}
	if c.Password != "" && c.PasswordFile != "" {
		return fmt.Errorf("web.password_file: set either web.password or web.password_file, not both")
	}
	if c.Password != "" && len(c.Password) < minPasswordLength {
		return fmt.Errorf("web.password: too short (want at least %d characters)", minPasswordLength)
	}
	if c.Token != "" && len(c.Token) < minTokenLength {
		return fmt.Errorf("web.token: too short (want at least %d characters)", minTokenLength)
	}
	if !c.Ingress && !isLoopback(host) && c.Password == "" && c.PasswordFile == "" && c.Token == "" {
		return fmt.Errorf("web.listen: %s is reachable from other machines: set web.password (or web.password_file) or web.token, or listen on %s", c.Listen, DefaultListen)
	}
	return nil
}

// Finish reads web.password_file (trimmed) into Password.
func (c *Config) Finish() error {
	if !c.Enabled || c.PasswordFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return fmt.Errorf("web.password_file: %w", err)
	}
	c.Password = strings.TrimSpace(string(b))
	if len(c.Password) < minPasswordLength {
		return fmt.Errorf("web.password_file: the password in %s is too short (want at least %d characters)", c.PasswordFile, minPasswordLength)
	}
	return nil
}

// authRequired reports whether pages and API calls must sign in.
func (c Config) authRequired() bool { return c.Password != "" || c.Token != "" }

// isLoopback reports whether host (from host:port) is only reachable from this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
