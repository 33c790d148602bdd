//go:build fault

package fault

import (
	"os"
	"testing"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/test/testproc"
)

// process is a binary the suite started; its output goes to a log file
// whose tail is printed when the test fails.
type process = testproc.Process

// start runs bin with args and env added to a clean environment; t's
// cleanup stops it.
func start(t *testing.T, dir, name, bin string, env []string, args ...string) *process {
	t.Helper()
	// No KUBECONFIG, no in-cluster variables, a HOME without ~/.kube: the
	// aggregator runs standalone, on agents alone.
	env = append([]string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}, env...)
	return testproc.Start(t, dir, name, bin, testproc.Options{Env: env}, args...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int { return testproc.FreePort(t) }
