//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath is Debian's Chromium, which test/e2e/chromium.sh installs
// (make e2e runs it).
const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium tab, kept open across subtests so that
// a later subtest sees the page update without a reload.
type browser struct {
	ctx context.Context
}

// startBrowser starts Chromium with a fresh profile; root owns it.
func startBrowser(t *testing.T, root *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run test/e2e/chromium.sh (make e2e does)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(root.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	root.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return &browser{ctx: ctx}
}

// do runs steps with a deadline.
func (b *browser) do(t *testing.T, within time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// waitFor polls a JavaScript expression until it is true.
func (b *browser) waitFor(t *testing.T, within time.Duration, what, expr string) {
	t.Helper()
	require.Eventually(t, func() bool { return eval[bool](t, b, expr) }, within, 200*time.Millisecond,
		"%s: %s (page at %s, %s, shows: %s)", what, expr, eval[string](t, b, `new Date().toLocaleTimeString()`),
		eval[string](t, b, `document.visibilityState`), eval[string](t, b, `document.body.innerText.slice(0, 3000)`))
}

// rowsJS lists the keys of a table's rows, e.g. the node names.
func rowsJS(table, attr string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll('#%s tbody tr[%s]')).map(r => r.getAttribute('%s')).join(',')`, table, attr, attr)
}

// cellJS is the text of one cell of the row keyed value.
func cellJS(table, attr, value, class string) string {
	return fmt.Sprintf(`((document.querySelector('#%s tbody tr[%s=%q] td.%s') || {}).textContent || '')`, table, attr, value, class)
}

// cores formats millicores as the page does.
func cores(m int64) string {
	if m%1000 == 0 {
		return fmt.Sprintf("%d", m/1000)
	}
	return fmt.Sprintf("%.2f", float64(m)/1000)
}
