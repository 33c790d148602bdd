//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildProduct builds the aggregator and the agent from this repository
// and returns the directory holding them.
func buildProduct(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	start := time.Now()
	for _, b := range []string{"aggregator", "agent"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "./"+b)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build ./%s:\n%s", b, out)
	}
	t.Logf("built aggregator and agent in %s", time.Since(start).Round(100*time.Millisecond))
	return dir
}

// aggregator is a running aggregator with its embedded NATS.
type aggregator struct {
	proc     *process
	api      string // http://127.0.0.1:port
	natsURL  string
	natsPort int
}

// interval is the agents' and the aggregator's collection interval.
const interval = 2 * time.Second

// startAggregator runs an aggregator that owner stops.
func startAggregator(t, owner *testing.T, bin, logs, name, kubeconfig string, natsPort int, extra ...string) *aggregator {
	t.Helper()
	httpPort := freePort(t)
	a := &aggregator{
		api:      fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		natsURL:  fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
		natsPort: natsPort,
	}
	args := append([]string{
		"--kubeconfig", kubeconfig,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort),
		"--interval", strconv.Itoa(int(interval / time.Second)),
		"--log-level", "debug",
	}, extra...)
	a.proc = startOwned(t, owner, logs, name, filepath.Join(bin, "aggregator"), args...)
	require.Eventually(t, func() bool {
		if a.proc.Exited() {
			return true
		}
		resp, err := http.Get(a.api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "aggregator not answering /healthz")
	require.False(t, a.proc.Exited(), "aggregator exited:\n%s", a.proc.Tail(40))
	return a
}

// startAgent runs one agent for node, reading the fake kubelet k with the
// token in tokenFile and presenting the one in natsTokenFile to NATS.
func startAgent(t, owner *testing.T, bin, logs, node string, k *fakeKubelet, caFile, tokenFile, natsTokenFile, natsURL string) *process {
	t.Helper()
	return startOwned(t, owner, logs, "agent-"+node, filepath.Join(bin, "agent"),
		"--node-name", node,
		"--kubelet-url", fmt.Sprintf("https://127.0.0.1:%d", k.port),
		"--kubelet-ca-file", caFile,
		"--kubelet-token-file", tokenFile,
		"--nats-token-file", natsTokenFile,
		"--disable-gpu",
		"--host-root", "/",
		"--nats-url", natsURL,
		"--interval", strconv.Itoa(int(interval/time.Second)),
		"--listen", "127.0.0.1:0",
	)
}

// apiToken is the bearer token getJSON presents: a ServiceAccount token
// bound to the chart's reader ClusterRole (newEnv sets it), as the API's
// clients need in the chart's default kubernetes mode.
var apiToken string

// getJSON decodes url's JSON body into into (when non-nil) and returns the
// status code; transport errors return 0.
func getJSON(url string, into any) (int, error) {
	code, b, err := getWithToken(url, apiToken)
	if err != nil {
		return code, err
	}
	if into != nil && code == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			return code, fmt.Errorf("decode %s: %w: %s", url, err, b)
		}
	}
	return code, nil
}

// getWithToken GETs url with token as its bearer token (none when empty)
// and returns the status code and body.
func getWithToken(url, token string) (int, []byte, error) {
	c := http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// list is the API's list envelope.
type list[T any] struct {
	Count int `json:"count"`
	Total int `json:"total"`
	Items []T `json:"items"`
}
