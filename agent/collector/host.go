package collector

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"

	psutil "github.com/shirou/gopsutil/v4/common"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// HostPaths locates the host's filesystems. In a container the host's / is
// mounted somewhere else (commonly /host), and every host read must go
// through these paths or it silently describes the container instead; tests
// point them at fixtures.
type HostPaths struct {
	// Root is where the host's / is visible: "/" on the host itself.
	Root string
	// Proc is the host's procfs, Root/proc.
	Proc string
	// Sys is the host's sysfs, Root/sys.
	Sys string
}

// NewHostPaths returns the paths for a host whose / is mounted at hostRoot;
// "" means "/".
func NewHostPaths(hostRoot string) HostPaths {
	if hostRoot == "" {
		hostRoot = "/"
	}
	root := filepath.Clean(hostRoot)
	return HostPaths{Root: root, Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys")}
}

// Path returns where the host's absolute path p is visible from here.
func (p HostPaths) Path(hostPath string) string {
	if p.Root == "/" || p.Root == "" {
		return hostPath
	}
	return filepath.Join(p.Root, hostPath)
}

// context returns ctx carrying these paths for gopsutil, which reads
// HOST_PROC, HOST_SYS, HOST_DEV and HOST_ROOT from the context before the
// environment: the agent's configured host root wins over whatever the
// container's environment says, and tests point the library at fixtures.
func (p HostPaths) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, psutil.EnvKey, psutil.EnvMap{
		psutil.HostRootEnvKey: p.Root,
		psutil.HostProcEnvKey: p.Proc,
		psutil.HostSysEnvKey:  p.Sys,
		psutil.HostDevEnvKey:  p.Path("/dev"),
	})
}

// NewHostSources returns the cpu, memory, disk and network sources for the
// agent's configuration, each already primed so that the first cycle
// reports usage.
func NewHostSources(cfg config.AgentConfig, logger *slog.Logger) []Source {
	paths := NewHostPaths(cfg.HostRoot)
	return []Source{
		NewCPUSource(paths),
		NewMemorySource(paths),
		NewDiskSource(paths, cfg.DiskMounts, cfg.RootDir, logger),
		NewNetworkSource(paths),
	}
}

// counterDelta is new−old for a cumulative counter, 0 when the counter went
// backwards (wrapped, or reset by a driver reload or a hotplugged CPU).
func counterDelta(newV, oldV uint64) uint64 {
	if newV < oldV {
		return 0
	}
	return newV - oldV
}

// percentOf returns part/whole in percent, clamped to 0–100, 0 for an empty whole.
func percentOf(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return model.ClampRate(part / whole * 100)
}

// saturatedInt64 converts an unsigned count of bytes to the model's int64,
// saturating instead of wrapping negative.
func saturatedInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
