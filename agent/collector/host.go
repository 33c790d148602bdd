package collector

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

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

// readProcFile reads a whole procfs file into buf, growing it as needed, and
// returns the filled slice. Procfs files report size 0, so os.ReadFile's
// size hint does not help and a reused buffer saves an allocation per read.
func readProcFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 4096))
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// nextProcLine splits off the first line of data.
func nextProcLine(data []byte) (line, rest []byte) {
	for i, c := range data {
		if c == '\n' {
			return data[:i], data[i+1:]
		}
	}
	return data, nil
}

// nextProcField splits off the first whitespace-separated field of line.
func nextProcField(line []byte) (field, rest []byte) {
	i := 0
	for i < len(line) && isProcSpace(line[i]) {
		i++
	}
	j := i
	for j < len(line) && !isProcSpace(line[j]) {
		j++
	}
	return line[i:j], line[j:]
}

func isProcSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// parseProcUint parses a decimal counter without converting it to a string.
func parseProcUint(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid number %q", b)
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("number %q overflows", b)
		}
		n = n*10 + d
	}
	return n, nil
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
