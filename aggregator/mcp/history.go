package mcp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// MetricHistoryInput are metric_history's arguments.
type MetricHistoryInput struct {
	Kind      string `json:"kind" jsonschema:"node or pod"`
	Name      string `json:"name" jsonschema:"the node's or the pod's name"`
	Namespace string `json:"namespace,omitempty" jsonschema:"the pod's namespace (pods only)"`
	Points    int    `json:"points,omitempty" jsonschema:"downsample to at most this many points over the whole history, 2 to 200 (default 20)"`
	Budget
}

const defaultHistoryPoints = 20

// nodeBucket is a downsampled stretch of a node's history.
type nodeBucket struct {
	Time       time.Time `json:"time"` // of the stretch's last reading
	Readings   int       `json:"readings"`
	CPURate    float64   `json:"cpuUsageRate"` // mean
	MemoryRate float64   `json:"memoryUsageRate"`
	MemoryMax  float64   `json:"memoryUsageRateMax"`
	DiskRate   float64   `json:"diskUsageRate"` // last
	GPURate    float64   `json:"gpuUsageRate,omitempty"`
	Unhealthy  bool      `json:"unhealthy,omitempty"` // at any reading
	Stale      bool      `json:"stale,omitempty"`
}

// podBucket is a downsampled stretch of a pod's history.
type podBucket struct {
	Time       time.Time `json:"time"`
	Readings   int       `json:"readings"`
	CPU        int64     `json:"cpuUsage"` // mean, millicores
	CPURate    float64   `json:"cpuUsageRate"`
	Memory     int64     `json:"memoryUsage"` // mean, bytes
	MemoryMax  int64     `json:"memoryUsageMax"`
	MemoryRate float64   `json:"memoryUsageRateMax"`
	Restarts   int32     `json:"restarts"` // last
}

// buckets splits n readings at times at(i), oldest first, into at most
// points stretches of equal time; it returns each stretch's [lo, hi).
func buckets(n, points int, at func(i int) time.Time) [][2]int {
	if n == 0 {
		return nil
	}
	if n <= points {
		out := make([][2]int, n)
		for i := range out {
			out[i] = [2]int{i, i + 1}
		}
		return out
	}
	first, span := at(0), at(n-1).Sub(at(0))
	var out [][2]int
	lo := 0
	for b := 1; b <= points && lo < n; b++ {
		end := first.Add(time.Duration(float64(span) * float64(b) / float64(points)))
		hi := lo
		for hi < n && (b == points || at(hi).Before(end)) {
			hi++
		}
		if hi > lo {
			out = append(out, [2]int{lo, hi})
			lo = hi
		}
	}
	return out
}

func nodeBuckets(pts []state.NodePoint, points int) []nodeBucket {
	var out []nodeBucket
	for _, r := range buckets(len(pts), points, func(i int) time.Time { return pts[i].Timestamp }) {
		b := nodeBucket{Time: pts[r[1]-1].Timestamp, Readings: r[1] - r[0], DiskRate: round1(pts[r[1]-1].DiskUsageRate)}
		var cpu, mem, gpu float64
		for _, p := range pts[r[0]:r[1]] {
			cpu += p.CPUUsageRate
			mem += p.MemoryUsageRate
			gpu += p.GPUUsageRate
			b.MemoryMax = max(b.MemoryMax, round1(p.MemoryUsageRate))
			b.Unhealthy = b.Unhealthy || !p.Healthy
			b.Stale = b.Stale || p.Stale
		}
		k := float64(b.Readings)
		b.CPURate, b.MemoryRate, b.GPURate = round1(cpu/k), round1(mem/k), round1(gpu/k)
		out = append(out, b)
	}
	return out
}

func podBuckets(pts []state.PodPoint, points int) []podBucket {
	var out []podBucket
	for _, r := range buckets(len(pts), points, func(i int) time.Time { return pts[i].Timestamp }) {
		b := podBucket{Time: pts[r[1]-1].Timestamp, Readings: r[1] - r[0], Restarts: pts[r[1]-1].Restarts}
		var cpu, mem, cpuRate float64
		for _, p := range pts[r[0]:r[1]] {
			cpu += float64(p.CPUUsage)
			mem += float64(p.MemoryUsage)
			cpuRate += p.CPUUsageRate
			b.MemoryMax = max(b.MemoryMax, p.MemoryUsage)
			b.MemoryRate = max(b.MemoryRate, round1(p.MemoryUsageRate))
		}
		k := float64(b.Readings)
		b.CPU, b.Memory, b.CPURate = int64(cpu/k), int64(mem/k), round1(cpuRate/k)
		out = append(out, b)
	}
	return out
}

// historyAnswer builds a history answer for a number of points; fitting
// lowers the points rather than cutting the newest readings off.
type historyAnswer struct {
	points int
	build  func(points int) *answer
}

func (h *historyAnswer) fit(maxBytes int) *sdk.CallToolResult {
	p := h.points
	for {
		a := h.build(p)
		res, k := a.fitRows(maxBytes)
		if k >= a.rowCount() || k == 0 || k >= p {
			return res
		}
		p = k
	}
}

func (s *Server) metricHistory(_ context.Context, in MetricHistoryInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	points := defaultHistoryPoints
	if in.Points != 0 {
		if in.Points < 2 || in.Points > maxHistoryPt {
			return nil, invalidf("points=%d: want 2 to %d (default %d)", in.Points, maxHistoryPt, defaultHistoryPoints)
		}
		points = in.Points
	}
	if in.Name == "" {
		return nil, invalidf("name: required")
	}
	switch in.Kind {
	case "node":
		if in.Namespace != "" {
			return nil, invalidf("namespace: nodes have none; leave it out with kind=node")
		}
		pts, ok := s.opts.Provider.NodeHistory(in.Name)
		if !ok && snap.NodeMetrics[in.Name] == nil {
			return nil, notFoundf("node %q not found; list_nodes lists the nodes", in.Name)
		}
		return &historyAnswer{points: points, build: func(p int) *answer { return nodeHistoryAnswer(in.Name, pts, p) }}, nil
	case "pod":
		if in.Namespace == "" {
			return nil, invalidf("namespace: required with kind=pod (list_pods name=%q finds the pod)", in.Name)
		}
		pts, ok := s.opts.Provider.PodHistory(in.Namespace, in.Name)
		if !ok && snap.PodMetrics[model.PodKey(in.Namespace, in.Name)] == nil {
			return nil, notFoundf("pod %s/%s not found; list_pods name=%s finds it in any namespace", in.Namespace, in.Name, in.Name)
		}
		return &historyAnswer{points: points, build: func(p int) *answer { return podHistoryAnswer(in.Namespace, in.Name, pts, p) }}, nil
	}
	return nil, invalidf("kind=%q: want node or pod", in.Kind)
}

// spanText says how many readings cover which time.
func spanText(n int, first, last time.Time) string {
	if n == 0 {
		return "no readings kept (history is off or the object is new)"
	}
	return fmt.Sprintf("%s over %s (%s to %s)", plural(n, "reading"), last.Sub(first).Round(time.Second), timeText(first), timeText(last))
}

func nodeHistoryAnswer(name string, pts []state.NodePoint, points int) *answer {
	bs := nodeBuckets(pts, points)
	var verdict string
	if len(pts) == 0 {
		verdict = "node " + name + ": " + spanText(0, time.Time{}, time.Time{})
	} else {
		first, last := pts[0], pts[len(pts)-1]
		peak := 0.0
		unhealthy := 0
		for _, p := range pts {
			peak = max(peak, p.MemoryUsageRate)
			if !p.Healthy {
				unhealthy++
			}
		}
		verdict = fmt.Sprintf("node %s: %s; cpu %s -> %s, memory %s -> %s (max %s), unhealthy in %d readings",
			name, spanText(len(pts), first.Timestamp, last.Timestamp), pctText(first.CPUUsageRate), pctText(last.CPUUsageRate),
			pctText(first.MemoryUsageRate), pctText(last.MemoryUsageRate), pctText(peak), unhealthy)
	}
	a := newAnswer(verdict)
	a.data["node"] = name
	a.data["readings"] = len(pts)
	sec := a.section("points", "points", fmt.Sprintf("%s, oldest first: time readings cpu mem mem-max disk gpu flags", plural(len(bs), "point")))
	for _, b := range bs {
		var flags []string
		if b.Unhealthy {
			flags = append(flags, "unhealthy")
		}
		if b.Stale {
			flags = append(flags, "stale")
		}
		line := strings.Join([]string{timeText(b.Time), strconv.Itoa(b.Readings), pctText(b.CPURate), pctText(b.MemoryRate),
			pctText(b.MemoryMax), pctText(b.DiskRate), pctText(b.GPURate), strings.Join(flags, ",")}, " ")
		sec.add(strings.TrimRight(line, " "), b)
	}
	return a
}

func podHistoryAnswer(namespace, name string, pts []state.PodPoint, points int) *answer {
	key := model.PodKey(namespace, name)
	bs := podBuckets(pts, points)
	var verdict string
	if len(pts) == 0 {
		verdict = "pod " + key + ": " + spanText(0, time.Time{}, time.Time{})
	} else {
		first, last := pts[0], pts[len(pts)-1]
		var peak int64
		var peakRate float64
		for _, p := range pts {
			peak = max(peak, p.MemoryUsage)
			peakRate = max(peakRate, p.MemoryUsageRate)
		}
		verdict = fmt.Sprintf("pod %s: %s; memory %s -> %s (max %s, %s of limit), cpu %s -> %s, restarts %d -> %d",
			key, spanText(len(pts), first.Timestamp, last.Timestamp), bytesText(first.MemoryUsage), bytesText(last.MemoryUsage),
			bytesText(peak), pctText(peakRate), cpuText(first.CPUUsage), cpuText(last.CPUUsage), first.Restarts, last.Restarts)
	}
	a := newAnswer(verdict)
	a.data["pod"] = key
	a.data["readings"] = len(pts)
	sec := a.section("points", "points", fmt.Sprintf("%s, oldest first: time readings cpu cpu%% mem mem-max mem-max%% restarts", plural(len(bs), "point")))
	for _, b := range bs {
		sec.add(strings.Join([]string{timeText(b.Time), strconv.Itoa(b.Readings), cpuText(b.CPU), pctText(b.CPURate),
			bytesText(b.Memory), bytesText(b.MemoryMax), pctText(b.MemoryRate), strconv.Itoa(int(b.Restarts))}, " "), b)
	}
	return a
}
