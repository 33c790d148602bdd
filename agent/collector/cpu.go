package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"sync"
	"time"

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
// load averages of /proc/loadavg.
type CPUSource struct {
	statPath    string
	loadavgPath string

	// mu serialises Collects: a runner that gave up on a slow cycle may
	// start the next one while this one still runs, and both move prev.
	mu   sync.Mutex
	buf  []byte
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
	s := &CPUSource{
		statPath:    filepath.Join(paths.Proc, "stat"),
		loadavgPath: filepath.Join(paths.Proc, "loadavg"),
	}
	// A failed prime is not an error yet: Collect reads again and says why.
	s.prev, _ = s.readStat()
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

	cur, err := s.readStat()
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
	load, loadErr := s.readLoad()

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
		next, err := s.readStat()
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

// readStat reads the aggregate counters and counts the cpuN lines of
// /proc/stat. Only the leading cpu block is parsed: the interrupt line after
// it runs to tens of kilobytes on large machines.
func (s *CPUSource) readStat() (cpuTimes, error) {
	var err error
	s.buf, err = readProcFile(s.statPath, s.buf)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read cpu counters: %w", err)
	}
	var t cpuTimes
	for rest := s.buf; len(rest) > 0; {
		var line []byte
		line, rest = nextProcLine(rest)
		if !bytes.HasPrefix(line, []byte("cpu")) {
			if t.valid || t.cpus > 0 {
				break
			}
			continue
		}
		if len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			t.cpus++
			continue
		}
		if t.total, t.idle, err = parseCPULine(line); err != nil {
			return cpuTimes{}, fmt.Errorf("parse %s: %w", s.statPath, err)
		}
		t.valid = true
	}
	if !t.valid || t.cpus == 0 {
		return cpuTimes{}, fmt.Errorf("parse %s: no cpu lines", s.statPath)
	}
	return t, nil
}

// parseCPULine sums "cpu user nice system idle iowait irq softirq steal
// guest guest_nice". Guest time is already counted in user and nice, so the
// total stops at steal; kernels older than 2.6.33 print fewer columns.
func parseCPULine(line []byte) (total, idle uint64, err error) {
	_, rest := nextProcField(line) // "cpu"
	n := 0
	for ; n < 8; n++ {
		var f []byte
		f, rest = nextProcField(rest)
		if len(f) == 0 {
			break
		}
		v, err := parseProcUint(f)
		if err != nil {
			return 0, 0, fmt.Errorf("cpu column %d: %w", n+1, err)
		}
		total += v
		if n == 3 || n == 4 { // idle, iowait
			idle += v
		}
	}
	if n < 4 {
		return 0, 0, fmt.Errorf("cpu line has %d columns, want at least 4", n)
	}
	return total, idle, nil
}

// readLoad parses the first three fields of /proc/loadavg.
func (s *CPUSource) readLoad() (*model.LoadAverage, error) {
	var err error
	s.buf, err = readProcFile(s.loadavgPath, s.buf)
	if err != nil {
		return nil, fmt.Errorf("read load average: %w", err)
	}
	var v [3]float64
	rest := s.buf
	for i := range v {
		var f []byte
		f, rest = nextProcField(rest)
		if v[i], err = strconv.ParseFloat(string(f), 64); err != nil {
			return nil, fmt.Errorf("parse %s: %w", s.loadavgPath, err)
		}
	}
	return &model.LoadAverage{Load1: v[0], Load5: v[1], Load15: v[2]}, nil
}
