package collector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/load"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// /proc/stat counts in clock ticks, 10 ms of one CPU at USER_HZ=100: a
// reading taken right after the prime one may show no time at all. The
// first Collect then polls for a tick, a few times, for up to cpuTickWait.
const (
	cpuTickWait = 50 * time.Millisecond
	cpuTickPoll = 5 * time.Millisecond
)

// CPUSource reports the node's CPU capacity, its usage computed from the
// delta of /proc/stat's cumulative counters between two Collects, and the
// load averages of /proc/loadavg, all read through gopsutil.
//
// The counters are gopsutil's raw ones (cpu.ExLinux, clock ticks as the
// kernel prints them), not cpu.Times's seconds: a delta of integers is exact
// and shows "no tick elapsed" as zero, which floats divided by USER_HZ blur.
type CPUSource struct {
	paths    HostPaths
	statPath string // for messages
	ex       *cpu.ExLinux

	// mu serialises Collects: a runner that gave up on a slow cycle may
	// start the next one while this one still runs, and both move prev.
	mu   sync.Mutex
	prev cpuTimes
	// last is the latest computed usage, repeated when less than one clock
	// tick passed since prev and no new delta exists.
	last cpuUsage
}

var _ Source = (*CPUSource)(nil)

// cpuTimes is one reading of /proc/stat's aggregate line in clock ticks.
type cpuTimes struct {
	valid bool
	total uint64
	idle  uint64 // idle + iowait: time the CPUs had nothing to run
	cpus  int    // cpuN lines: the logical CPUs the kernel accounts
}

type cpuUsage struct {
	valid     bool
	millicore int64
	rate      float64
}

// NewCPUSource returns the cpu source of the host at paths. It takes a
// first reading now, so that the first Collect already has a delta.
func NewCPUSource(paths HostPaths) *CPUSource {
	s := &CPUSource{paths: paths, statPath: filepath.Join(paths.Proc, "stat"), ex: cpu.NewExLinux()}
	// A failed prime is not an error yet: Collect reads again and says why.
	s.prev, _ = s.readStat(context.Background())
	return s
}

// Name implements Source.
func (s *CPUSource) Name() string { return "cpu" }

// Collect implements Source.
func (s *CPUSource) Collect(ctx context.Context) (Apply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect cpu: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	cur, err := s.readStat(ctx)
	if err != nil {
		return nil, err
	}
	if s.prev.valid && !s.last.valid && cur.total == s.prev.total {
		if cur, err = s.waitForTick(ctx, cur); err != nil {
			return nil, err
		}
	}
	capacity := int64(cur.cpus) * 1000
	usage, usageErr := s.advance(cur, capacity)
	load, loadErr := s.readLoad(ctx)

	apply := func(r *model.NodeReport) {
		r.Node.CPUCapacity = capacity
		if usage.valid {
			r.Node.CPUUsage = usage.millicore
			r.Node.CPUUsageRate = usage.rate
		}
		if load != nil {
			r.Node.Load = load
		}
	}
	return apply, errors.Join(usageErr, loadErr)
}

// waitForTick polls /proc/stat until its counters move past prev, for at
// most cpuTickWait. It serves the first Collect only (no usage value yet),
// which in --once mode follows NewCPUSource within microseconds.
func (s *CPUSource) waitForTick(ctx context.Context, cur cpuTimes) (cpuTimes, error) {
	limit := time.NewTimer(cpuTickWait)
	defer limit.Stop()
	poll := time.NewTicker(cpuTickPoll)
	defer poll.Stop()
	for cur.total == s.prev.total {
		select {
		case <-ctx.Done():
			return cur, nil
		case <-limit.C:
			return cur, nil
		case <-poll.C:
		}
		next, err := s.readStat(ctx)
		if err != nil {
			return cur, err
		}
		cur = next
	}
	return cur, nil
}

// advance computes usage between prev and cur and makes cur the new prev.
func (s *CPUSource) advance(cur cpuTimes, capacity int64) (cpuUsage, error) {
	prev := s.prev
	switch {
	case !prev.valid || cur.total < prev.total:
		// No baseline, or counters reset (cannot happen on a live kernel,
		// but a restored checkpoint or a test fixture can): start over.
		s.prev = cur
		return cpuUsage{}, fmt.Errorf("%w: cpu usage needs a second reading of %s", ErrUnavailable, s.statPath)
	case cur.total == prev.total:
		// Less than one tick since prev: keep prev so the next delta spans
		// a real interval, and repeat the latest value if there is one.
		if s.last.valid {
			return s.last, nil
		}
		return cpuUsage{}, fmt.Errorf("%w: no cpu time elapsed since the previous reading of %s", ErrUnavailable, s.statPath)
	}
	total := cur.total - prev.total
	idle := counterDelta(cur.idle, prev.idle)
	busy := uint64(0)
	if idle < total {
		busy = total - idle
	}
	u := cpuUsage{
		valid:     true,
		millicore: int64(math.Round(float64(busy) * float64(capacity) / float64(total))),
		rate:      percentOf(float64(busy), float64(total)),
	}
	s.prev = cur
	s.last = u
	return u, nil
}

// readStat reads the aggregate counters and the per-CPU rows of
// /proc/stat. Capacity counts the rows (the online CPUs) of the same reading
// as the aggregate, so a hotplugged CPU shows at once; runtime.NumCPU would
// give the agent's own affinity mask, not the host's CPUs.
func (s *CPUSource) readStat(ctx context.Context) (cpuTimes, error) {
	ctx = s.paths.context(ctx)
	all, err := s.ex.TimesWithContext(ctx, false)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read cpu counters from %s: %w", s.statPath, err)
	}
	if len(all) == 0 {
		return cpuTimes{}, fmt.Errorf("read cpu counters from %s: no cpu lines", s.statPath)
	}
	perCPU, err := s.ex.TimesWithContext(ctx, true)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read per-cpu counters from %s: %w", s.statPath, err)
	}
	if len(perCPU) == 0 {
		return cpuTimes{}, fmt.Errorf("read cpu counters from %s: no cpu lines", s.statPath)
	}
	c := all[0]
	// Guest time is already counted in user and nice, so the total stops
	// at steal.
	return cpuTimes{
		valid: true,
		total: c.User + c.Nice + c.System + c.Idle + c.Iowait + c.Irq + c.Softirq + c.Steal,
		idle:  c.Idle + c.Iowait,
		cpus:  len(perCPU),
	}, nil
}

// readLoad reads the load averages. gopsutil falls back to sysinfo(2) when
// /proc/loadavg cannot be read; the kernel's load is not namespaced, so
// that is the host's load too.
func (s *CPUSource) readLoad(ctx context.Context) (*model.LoadAverage, error) {
	avg, err := load.AvgWithContext(s.paths.context(ctx))
	if err != nil {
		return nil, fmt.Errorf("read load average: %w", err)
	}
	return &model.LoadAverage{Load1: avg.Load1, Load5: avg.Load5, Load15: avg.Load15}, nil
}
