package collector

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// MemorySource reports the node's memory from /proc/meminfo. Usage is
// MemTotal − MemAvailable: page cache the kernel can drop is not counted as
// used, matching what the kubelet's eviction logic sees.
type MemorySource struct {
	path string

	mu  sync.Mutex // guards buf
	buf []byte
}

var _ Source = (*MemorySource)(nil)

// NewMemorySource returns the memory source of the host at paths.
func NewMemorySource(paths HostPaths) *MemorySource {
	return &MemorySource{path: filepath.Join(paths.Proc, "meminfo")}
}

// Name implements Source.
func (s *MemorySource) Name() string { return "memory" }

// Collect implements Source.
func (s *MemorySource) Collect(ctx context.Context) (Apply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect memory: %w", err)
	}
	total, avail, err := s.read()
	if err != nil {
		return nil, err
	}
	used := total - avail
	if used < 0 {
		used = 0
	}
	rate := percentOf(float64(used), float64(total))
	return func(r *model.NodeReport) {
		r.Node.MemoryCapacity = total
		r.Node.MemoryUsage = used
		r.Node.MemoryUsageRate = rate
	}, nil
}

// read returns MemTotal and MemAvailable in bytes.
func (s *MemorySource) read() (total, avail int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf, err = readProcFile(s.path, s.buf)
	if err != nil {
		return 0, 0, fmt.Errorf("read memory info: %w", err)
	}
	var (
		haveTotal, haveAvail bool
		// Kernels before 3.14 lack MemAvailable; free + buffers + page
		// cache is the usual approximation there.
		fallback int64
	)
	for rest := s.buf; len(rest) > 0 && !(haveTotal && haveAvail); {
		var line []byte
		line, rest = nextProcLine(rest)
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvail = &avail, true
		case "MemFree", "Buffers", "Cached":
			var v int64
			if v, err = parseMeminfoBytes(val); err != nil {
				return 0, 0, fmt.Errorf("parse %s %s: %w", s.path, key, err)
			}
			fallback += v
			continue
		default:
			continue
		}
		if *dst, err = parseMeminfoBytes(val); err != nil {
			return 0, 0, fmt.Errorf("parse %s %s: %w", s.path, key, err)
		}
	}
	if !haveTotal || total == 0 {
		return 0, 0, fmt.Errorf("parse %s: no MemTotal", s.path)
	}
	if !haveAvail {
		avail = min(fallback, total)
	}
	return total, avail, nil
}

// parseMeminfoBytes reads "   24683620 kB" as bytes.
func parseMeminfoBytes(val []byte) (int64, error) {
	num, rest := nextProcField(val)
	v, err := parseProcUint(num)
	if err != nil {
		return 0, err
	}
	if unit, _ := nextProcField(rest); string(unit) == "kB" {
		v *= 1024
	}
	return int64(v), nil
}
