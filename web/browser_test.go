package web_test

// End-to-end tests of the console in a real browser: Debian's chromium, driven by chromedp, against the
// bridge on the simulated network of the repository's config.yaml (the four demo devices).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/ota"
)

// chromiumPath finds Debian's chromium. Without it the test is skipped, except under CI=true, where a
// missing browser is a failure (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true requires the browser tests (.ci/run installs Debian's chromium)")
	}
	t.Skip("chromium is not installed (Debian: apt-get install chromium): browser tests skipped")
	return ""
}

// browser starts a headless chromium for the test, with a fresh profile and no background traffic.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// step runs browser actions with a failure guard.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bridgetest.DefaultTimeout)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, actions...), what)
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// waitJS waits until the expression is truthy (DefaultTimeout is a failure guard only).
func waitJS(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bridgetest.DefaultTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(bridgetest.DefaultTimeout)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func row(ieee string) string { return `tr[data-ieee="` + ieee + `"]` }

// text is the trimmed text of the first element matching the CSS selector ("" when none).
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").trim()`, sel))
}

// artifactDir is where screenshots go: $TEST_ARTIFACTS_DIR when set (CI keeps them), else the test's
// temporary folder.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("TEST_ARTIFACTS_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, width int64, name string) {
	t.Helper()
	step(t, ctx, "viewport", chromedp.EmulateViewport(width, 900), chromedp.Sleep(300*time.Millisecond))
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx2, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(artifactDir(t), name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

// TestBrowserConsole drives the console as a user would: the devices listed, an update started from the
// page running to the end with the progress bar moving, the door sensor approved from the page, a refused
// action's error next to its control, an upload through the file input, the permit-join countdown.
func TestBrowserConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	ctx := browser(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.SimDevice(t, &cfg, bridgetest.DoorIEEE).QueryInterval = 20 * time.Second // asks for approval sooner
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{Speed: 4})                    // slow enough to watch a transfer
	addr := h.Bridge.WebAddr()
	require.NotEmpty(t, addr, "the web console listens")
	base := "http://" + addr + "/"

	step(t, ctx, "open the console", chromedp.Navigate(base))
	waitJS(t, ctx, "the four demo devices", `document.querySelectorAll("#device-rows tr").length === 4`)
	for _, ieee := range []string{bridgetest.LightIEEE, bridgetest.BulbIEEE, bridgetest.DoorIEEE, bridgetest.HueIEEE} {
		assert.Contains(t, text(t, ctx, row(ieee)+" .fname"), ieee, "row of %s", ieee)
	}
	// bridge/devices lists a device when it announces and again once its interview has learnt the model.
	waitJS(t, ctx, "the light's model from its interview", fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? "").trim() === "ESP32C6.Light"`, row(bridgetest.LightIEEE)+" .model"))
	assert.Equal(t, "ESP32C6.Light", text(t, ctx, row(bridgetest.LightIEEE)+" .model"))
	assert.Equal(t, "Espressif", text(t, ctx, row(bridgetest.LightIEEE)+" .vendor"))
	assert.Equal(t, "battery", text(t, ctx, row(bridgetest.DoorIEEE)+" .power"))
	waitJS(t, ctx, "the radio and MQTT status", `document.querySelector("#radio").textContent.includes("online") &&
		document.querySelector("#mqtt").textContent.includes("connected")`)

	t.Run("update from the page", func(t *testing.T) {
		light := row(bridgetest.LightIEEE)
		waitJS(t, ctx, "an update available for the light", `!document.querySelector('`+light+` [data-act=update]').hidden`)
		step(t, ctx, "click Update", chromedp.Click(chromedp.CSS(light+" [data-act=update]")))
		var seen []float64
		deadline := time.Now().Add(bridgetest.DefaultTimeout)
		for text(t, ctx, light+" .installed") != "0x01010000" {
			require.True(t, time.Now().Before(deadline), "the light never showed its new version; progress seen %v", seen)
			p := eval[float64](t, ctx, `(() => { const p = document.querySelector('`+light+` progress'); return p.hidden ? -1 : p.value })()`)
			if p >= 0 && (len(seen) == 0 || p != seen[len(seen)-1]) {
				seen = append(seen, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("progress values shown: %v", seen)
		require.GreaterOrEqual(t, len(seen), 2, "the progress bar moved while the update ran")
		for i := 1; i < len(seen); i++ {
			assert.Greater(t, seen[i], seen[i-1], "progress climbs")
		}
		assert.Greater(t, seen[len(seen)-1], seen[0])
		waitJS(t, ctx, "the light idle", `document.querySelector('`+light+` .badge').textContent === "idle"`)
		assert.Empty(t, text(t, ctx, light+" .err"))
	})

	t.Run("approve the door sensor", func(t *testing.T) {
		door := row(bridgetest.DoorIEEE)
		waitJS(t, ctx, "the door sensor asking for approval", `!document.querySelector('`+door+` [data-act=approve]').hidden`)
		assert.Contains(t, text(t, ctx, "#approvals"), bridgetest.DoorIEEE, "listed among the approvals waiting")
		step(t, ctx, "click Approve", chromedp.Click(chromedp.CSS(door+" [data-act=approve]")))
		waitJS(t, ctx, "the approval's answer", `document.querySelector('`+door+` .actions .note').textContent.startsWith("approved")`)
		waitJS(t, ctx, "the door sensor scheduled (or already past it)",
			`["scheduled","queued","updating","waiting_reboot","verifying"].some(s => document.querySelector('`+door+` .badge').className.includes("s-"+s)) || document.querySelector('`+door+` .installed').textContent === "0x0000001b"`)
	})

	t.Run("refused action shows its error", func(t *testing.T) {
		hue := row(bridgetest.HueIEEE)
		step(t, ctx, "open More, empty the name, click Rename",
			chromedp.Click(chromedp.CSS(hue+" details.more summary")),
			chromedp.SetValue(chromedp.CSS(hue+" [data-field=name]"), " "),
			chromedp.Click(chromedp.CSS(hue+" [data-act=rename]")))
		waitJS(t, ctx, "the error next to the row's controls", `document.querySelector('`+hue+` .actions .err').textContent !== ""`)
		shown := text(t, ctx, hue+" .actions .err")
		mqtt := h.Request("device/rename", map[string]any{"id": bridgetest.HueIEEE, "name": " "})
		assert.Equal(t, "error", mqtt.Status)
		assert.Equal(t, mqtt.Error, shown, "the page shows the MQTT API's own sentence")

		step(t, ctx, "update all when the hue has nothing", chromedp.Click(chromedp.CSS(hue+" [data-act=check]")))
		waitJS(t, ctx, "check answer", `document.querySelector('`+hue+` .actions .note').textContent === "up to date"`)
		assert.Empty(t, text(t, ctx, hue+" .actions .err"), "a successful action clears the error")
		step(t, ctx, "close More", chromedp.Click(chromedp.CSS(hue+" details.more summary")))
	})

	t.Run("upload through the file input", func(t *testing.T) {
		hdr := ota.Header{ManufacturerCode: 0x100b, ImageType: 0x0117, FileVersion: 0x01002000, StackVersion: 2}
		copy(hdr.HeaderString[:], "LCA001 browser upload")
		file, err := ota.Build(hdr, []ota.BuildElement{{Tag: 0, Data: []byte(strings.Repeat("hue firmware ", 300))}})
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "lca001-upload.ota")
		require.NoError(t, os.WriteFile(path, file, 0o644))
		step(t, ctx, "choose the file", chromedp.SetUploadFiles(chromedp.CSS("#upload"), []string{path}))
		waitJS(t, ctx, "the upload's answer", `document.querySelector("#upload-result").textContent.startsWith("Added")`)
		waitJS(t, ctx, "the image listed, matching the hue",
			`[...document.querySelectorAll("#image-rows tr")].some(r => r.textContent.includes("LCA001 browser upload") && r.querySelector(".matches").textContent.includes("`+bridgetest.HueIEEE+`"))`)

		bad := filepath.Join(t.TempDir(), "notes.ota")
		require.NoError(t, os.WriteFile(bad, []byte("these are release notes, not firmware"), 0o644))
		step(t, ctx, "upload a file that is not an OTA file", chromedp.SetUploadFiles(chromedp.CSS("#upload"), []string{bad}))
		waitJS(t, ctx, "a refused upload's error", `document.querySelector("#upload-error").textContent !== ""`)
		t.Logf("refused upload: %s", text(t, ctx, "#upload-error"))
		assert.Empty(t, text(t, ctx, "#upload-result"), "no success shown for a refused upload")
	})

	t.Run("permit join countdown", func(t *testing.T) {
		step(t, ctx, "click Permit join", chromedp.Click(chromedp.CSS("#permit-join")))
		waitJS(t, ctx, "the countdown", `!document.querySelector("#permit-countdown").hidden`)
		first := text(t, ctx, "#permit-countdown")
		assert.Regexp(t, `joining open · 4m 1[0-4]s left`, first)
		waitJS(t, ctx, "the countdown ticking", `document.querySelector("#permit-countdown").textContent !== `+jsString(first))
		step(t, ctx, "click Stop joining", chromedp.Click(chromedp.CSS("#permit-join")))
		waitJS(t, ctx, "the countdown gone", `document.querySelector("#permit-countdown").hidden`)
	})

	screenshot(t, ctx, 1280, "web-console-desktop.png")
	screenshot(t, ctx, 390, "web-console-phone.png")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserUnderIngressPrefix opens the console through a proxy that serves it under a path prefix, as
// Home Assistant's ingress does (/api/hassio_ingress/<token>/), and runs an action through it.
func TestBrowserUnderIngressPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.HueIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	target, err := url.Parse("http://" + h.Bridge.WebAddr())
	require.NoError(t, err)
	const prefix = "/api/hassio_ingress/Xy12-token"
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // stream the live feed
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r) // anything the page asks outside the prefix fails
			return
		}
		if rest == "" {
			http.Redirect(w, r, prefix+"/", http.StatusFound)
			return
		}
		r.URL.Path = rest
		r.Header.Set("X-Ingress-Path", prefix)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close) // after the browser has gone (cleanups run last first): no feed holds it open
	ctx := browser(t)

	step(t, ctx, "open the console under the prefix", chromedp.Navigate(front.URL+prefix+"/"))
	hue := row(bridgetest.HueIEEE)
	waitJS(t, ctx, "the device listed", `document.querySelectorAll("#device-rows tr").length === 1`)
	waitJS(t, ctx, "live", `document.querySelector("#live").textContent === "live"`)
	step(t, ctx, "click Check", chromedp.Click(chromedp.CSS(hue+" [data-act=check]")))
	waitJS(t, ctx, "the check's answer through the prefix", `document.querySelector('`+hue+` .actions .note').textContent === "up to date"`)
	assert.Equal(t, "", text(t, ctx, hue+" .actions .err"))
}

// TestBrowserSignIn: with a password the page asks for it, refuses a wrong one with its sentence, and shows
// the devices after the right one.
func TestBrowserSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	ctx := browser(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.HueIEEE)
	cfg.Web.Password = "correct horse battery"
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})

	step(t, ctx, "open the console", chromedp.Navigate("http://"+h.Bridge.WebAddr()+"/"))
	waitJS(t, ctx, "the sign-in dialog", `document.querySelector("#signin").open`)
	assert.Equal(t, 0, eval[int](t, ctx, `document.querySelectorAll("#device-rows tr").length`), "nothing shown before signing in")
	step(t, ctx, "a wrong password", chromedp.SendKeys(chromedp.CSS("#signin-password"), "wrong password"),
		chromedp.Click(chromedp.CSS("#signin-form button")))
	waitJS(t, ctx, "the refusal", `document.querySelector("#signin-error").textContent === "wrong password"`)
	step(t, ctx, "the right password", chromedp.SetValue(chromedp.CSS("#signin-password"), cfg.Web.Password),
		chromedp.Click(chromedp.CSS("#signin-form button")))
	waitJS(t, ctx, "the device after signing in", `document.querySelectorAll("#device-rows tr").length === 1 && !document.querySelector("#signin").open`)
	waitJS(t, ctx, "the sign-out button", `!document.querySelector("#signout").hidden`)
}
