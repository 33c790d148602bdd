//go:build e2e

package e2e

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/test/testproc"
)

// process is a binary the harness started; its output goes to a log file
// that is printed (the tail) when the test fails.
type process = testproc.Process

// logDir keeps every process's log; E2E_LOG_DIR keeps them after the run.
func logDir(t *testing.T) string {
	if d := os.Getenv("E2E_LOG_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// start runs bin with args; t.Cleanup stops it. The log's tail is printed
// when the test has failed.
func start(t *testing.T, dir, name, bin string, args ...string) *process {
	t.Helper()
	return startOwned(t, t, dir, name, bin, args...)
}

// startOwned is start with the process stopped when owner ends, for a
// process a subtest starts for the tests after it.
func startOwned(t, owner *testing.T, dir, name, bin string, args ...string) *process {
	t.Helper()
	return testproc.Start(t, dir, name, bin, testproc.Options{Owner: owner, TailLines: 60}, args...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int { return testproc.FreePort(t) }
