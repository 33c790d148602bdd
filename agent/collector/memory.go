package collector

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/shirou/gopsutil/v4/mem"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// MemorySource reports the node's memory from /proc/meminfo, read through
// gopsutil. Usage is MemTotal − MemAvailable: page cache the kernel can drop
// is not counted as used, matching what the kubelet's eviction logic sees.
type MemorySource struct {
	paths HostPaths
	path  string // for messages
}

var _ Source = (*MemorySource)(nil)

// NewMemorySource returns the memory source of the host at paths.
func NewMemorySource(paths HostPaths) *MemorySource {
	return &MemorySource{paths: paths, path: filepath.Join(paths.Proc, "meminfo")}
}

// Name implements Source.
func (s *MemorySource) Name() string { return "memory" }

// Collect implements Source.
func (s *MemorySource) Collect(ctx context.Context) (Apply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect memory: %w", err)
	}
	// Kernels before 3.14 lack MemAvailable; gopsutil then estimates it as
	// free(1) does (MemFree + Cached + SReclaimable, or from zoneinfo).
	vm, err := mem.VirtualMemoryWithContext(s.paths.context(ctx))
	if err != nil {
		return nil, fmt.Errorf("read memory info from %s: %w", s.path, err)
	}
	if vm.Total == 0 {
		return nil, fmt.Errorf("parse %s: no MemTotal", s.path)
	}
	// Computed here, not taken from vm.Used: gopsutil subtracts unsigned
	// numbers, and MemAvailable above MemTotal (a kernel's accounting
	// transient) would wrap into exabytes.
	total := saturatedInt64(vm.Total)
	used := total - min(saturatedInt64(vm.Available), total)
	rate := percentOf(float64(used), float64(total))
	return func(r *model.NodeReport) {
		r.Node.MemoryCapacity = total
		r.Node.MemoryUsage = used
		r.Node.MemoryUsageRate = rate
	}, nil
}
