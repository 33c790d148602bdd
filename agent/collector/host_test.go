package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// The package's -update flag rewrites testdata/*.golden. It is registered in
// init, after every package-level variable, and only when absent, so another
// test file of the package that defines it as a variable does not collide.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite testdata/*.golden from the current output")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// copyFixture copies testdata/<name> into a fresh directory and returns it.
func copyFixture(t testing.TB, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", name)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
	return dst
}

// advanceFixture moves root/<rel>.next over root/<rel>: the host's next reading.
func advanceFixture(t testing.TB, root, rel string) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.Rename(p+".next", p))
}

func writeFixture(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func readFixture(t testing.TB, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(t, err)
	return string(b)
}

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// collectInto runs one Collect and applies its result to r.
func collectInto(t testing.TB, ctx context.Context, s Source, r *model.NodeReport) error {
	t.Helper()
	apply, err := s.Collect(ctx)
	if apply != nil {
		apply(r)
	}
	return err
}

func TestNewHostPaths(t *testing.T) {
	tests := []struct {
		root string
		want HostPaths
		path string // Path("/var/lib/kubelet")
	}{
		{"", HostPaths{Root: "/", Proc: "/proc", Sys: "/sys"}, "/var/lib/kubelet"},
		{"/", HostPaths{Root: "/", Proc: "/proc", Sys: "/sys"}, "/var/lib/kubelet"},
		{"/host", HostPaths{Root: "/host", Proc: "/host/proc", Sys: "/host/sys"}, "/host/var/lib/kubelet"},
		{"/host/", HostPaths{Root: "/host", Proc: "/host/proc", Sys: "/host/sys"}, "/host/var/lib/kubelet"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.root), func(t *testing.T) {
			p := NewHostPaths(tt.root)
			assert.Equal(t, tt.want, p)
			assert.Equal(t, tt.path, p.Path("/var/lib/kubelet"))
		})
	}
}

func TestNewHostSources(t *testing.T) {
	root := copyFixture(t, "host1")
	srcs := NewHostSources(config.AgentConfig{HostRoot: root, RootDir: "/"}, nil)
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name())
	}
	assert.Equal(t, []string{"cpu", "memory", "disk", "network"}, names)
}

// TestGoldenK8sNode runs all four sources over the composed Kubernetes node
// and compares the node fields with testdata/k8snode.golden.
func TestGoldenK8sNode(t *testing.T) {
	root := copyFixture(t, "k8snode")
	paths := NewHostPaths(root)
	clock := newFakeClock()
	disk := NewDiskSource(paths, nil, "/var/lib/kubelet", nil)
	disk.statfs = fakeStatfs(root, k8snodeFilesystems)
	disk.now = clock.Now
	srcs := []Source{NewCPUSource(paths), NewMemorySource(paths), disk, newNetworkSource(paths, clock.Now)}

	advanceFixture(t, root, "proc/stat")
	advanceFixture(t, root, "proc/1/net/dev")
	clock.Advance(10 * time.Second)

	var r model.NodeReport
	for _, s := range srcs {
		require.NoError(t, collectInto(t, context.Background(), s, &r), s.Name())
	}
	got, err := json.MarshalIndent(r.Node, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')

	golden := filepath.Join("testdata", "k8snode.golden")
	if updateGolden() {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), string(got))
}

// TestHostSourcesOnThisMachine checks the sources against this machine's own
// /proc and statfs.
func TestHostSourcesOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads Linux procfs")
	}
	paths := NewHostPaths("/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("cpu", func(t *testing.T) {
		// NumCPU honours the affinity mask, which a cgroup or taskset may
		// narrow; capacity is the host's logical CPUs, the cpuN lines.
		cpuLines := 0
		for _, l := range procLines(t, "/proc/stat") {
			if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
				cpuLines++
			}
		}
		if runtime.NumCPU() == cpuLines {
			t.Logf("runtime.NumCPU() = %d matches /proc/stat", cpuLines)
		}
		s := NewCPUSource(paths)
		var r model.NodeReport
		// Usage needs one clock tick after the prime reading: poll for it.
		require.Eventually(t, func() bool {
			err := collectInto(t, ctx, s, &r)
			require.True(t, err == nil || errors.Is(err, ErrUnavailable), "unexpected error: %v", err)
			return err == nil
		}, 5*time.Second, 5*time.Millisecond)
		assert.Equal(t, int64(cpuLines)*1000, r.Node.CPUCapacity)
		assert.GreaterOrEqual(t, r.Node.CPUUsage, int64(0))
		assert.LessOrEqual(t, r.Node.CPUUsage, r.Node.CPUCapacity)
		assertRate(t, r.Node.CPUUsageRate)
		require.NotNil(t, r.Node.Load)
		assert.GreaterOrEqual(t, r.Node.Load.Load1, 0.0)
	})

	t.Run("memory", func(t *testing.T) {
		var memTotal int64
		for _, l := range procLines(t, "/proc/meminfo") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				require.NoError(t, err)
				memTotal = kb * 1024
			}
		}
		var r model.NodeReport
		require.NoError(t, collectInto(t, ctx, NewMemorySource(paths), &r))
		assert.Equal(t, memTotal, r.Node.MemoryCapacity)
		assert.Positive(t, r.Node.MemoryUsage)
		assertRate(t, r.Node.MemoryUsageRate)
	})

	t.Run("disk", func(t *testing.T) {
		var r model.NodeReport
		require.NoError(t, collectInto(t, ctx, NewDiskSource(paths, nil, "/", nil), &r))
		var st syscall.Statfs_t
		require.NoError(t, syscall.Statfs("/", &st))
		bsize := int64(st.Frsize)
		assert.Equal(t, int64(st.Blocks)*bsize, r.Node.DiskCapacity)
		// Other processes write while the test runs: usage may move a little.
		assert.InDelta(t, float64(int64(st.Blocks-st.Bfree)*bsize), float64(r.Node.DiskUsage), 256<<20)
		assertRate(t, r.Node.DiskUsageRate)
		require.NotEmpty(t, r.Node.Disks)
		for _, d := range r.Node.Disks {
			if d.Available {
				assertRate(t, d.UsageRate)
				assertRate(t, d.InodesRate)
			}
		}
	})

	t.Run("network", func(t *testing.T) {
		var r model.NodeReport
		require.NoError(t, collectInto(t, ctx, NewNetworkSource(paths), &r))
		assert.GreaterOrEqual(t, r.Node.NetworkBandwidth, 0.0)
		for _, i := range r.Node.Interfaces {
			assert.NotEqual(t, "lo", i.Name)
		}
	})
}

func procLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(t, sc.Err())
	return out
}

func assertRate(t *testing.T, r float64) {
	t.Helper()
	assert.GreaterOrEqual(t, r, 0.0)
	assert.LessOrEqual(t, r, 100.0)
}
