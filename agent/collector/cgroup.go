package collector

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// CgroupSourceName is the cgroup source's name in reports, logs and metrics.
const CgroupSourceName = "cgroup"

// Bounds of one cgroup walk: a node runs at most a few hundred pods
// (kubelet --max-pods, 110 by default), so these only stop a tree that is
// not what it seems from costing the agent memory.
const (
	maxCgroupPods       = 1024
	maxCgroupContainers = 64
	// maxCgroupFile bounds one counter file read; memory.events is about
	// 80 bytes.
	maxCgroupFile = 4096
	// v1NoLimit is the smallest memory.limit_in_bytes treated as "no
	// limit": the kernel reports an unlimited cgroup as the largest page
	// multiple below 2^63.
	v1NoLimit = 1 << 62
)

// kubepodsDirs are where the kubelet puts its pods' cgroups, relative to
// the memory hierarchy's root, in the order tried: the systemd and
// cgroupfs drivers' defaults, then the same under a kubelet --cgroup-root
// of /kubelet (kind and some installers).
var kubepodsDirs = []string{
	"kubepods.slice",
	"kubepods",
	"kubelet.slice/kubelet-kubepods.slice",
	"kubelet/kubepods",
}

// CgroupSource reads each pod's and container's memory counters from the
// node's cgroup tree: OOM kills (memory.events oom_kill in cgroup v2,
// memory.oom_control in v1), the number of times the limit was hit and the
// peak usage. The kernel counts an OOM kill even when the killed process was
// a child and the container lives on, which neither the kubelet nor the API
// server reports.
//
// Cgroup directories name pods by UID and containers by runtime ID, never
// by name: the aggregator matches IDs to the pod status's containerID.
type CgroupSource struct {
	root string // the host's /sys/fs/cgroup as seen from here

	mu  sync.Mutex // guards buf
	buf []byte
}

var _ Source = (*CgroupSource)(nil)

// NewCgroupSource returns the cgroup source of the host at paths.
func NewCgroupSource(paths HostPaths) *CgroupSource {
	return &CgroupSource{root: filepath.Join(paths.Sys, "fs", "cgroup")}
}

// Name implements Source.
func (s *CgroupSource) Name() string { return CgroupSourceName }

// cgroupLayout is where the pod cgroups were found.
type cgroupLayout struct {
	version  int
	driver   string
	kubepods string // absolute directory
}

// Collect implements Source. A node without a kubepods cgroup (not a
// Kubernetes node, or /sys not mounted from the host) is unavailable.
func (s *CgroupSource) Collect(ctx context.Context) (Apply, error) {
	layout, err := s.detect()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stats, err := s.walk(ctx, layout)
	if err != nil {
		return nil, err
	}
	return func(r *model.NodeReport) { r.Cgroups = stats }, nil
}

// detect finds the memory hierarchy (v2 unified, or v1's memory
// controller) and the kubepods directory in it.
func (s *CgroupSource) detect() (cgroupLayout, error) {
	l := cgroupLayout{version: 2}
	base := s.root
	if _, err := os.Stat(filepath.Join(s.root, "cgroup.controllers")); err != nil {
		l.version, base = 1, filepath.Join(s.root, "memory")
	}
	for _, d := range kubepodsDirs {
		dir := filepath.Join(base, d)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			l.kubepods, l.driver = dir, "cgroupfs"
			if strings.HasSuffix(d, ".slice") {
				l.driver = "systemd"
			}
			return l, nil
		}
	}
	return l, fmt.Errorf("%w: no kubepods cgroup under %s (cgroup v%d)", ErrUnavailable, base, l.version)
}

// walk reads every pod under the kubepods directory: Guaranteed pods sit
// right in it, Burstable and BestEffort pods one level down.
func (s *CgroupSource) walk(ctx context.Context, l cgroupLayout) (*model.CgroupStats, error) {
	entries, err := os.ReadDir(l.kubepods)
	if err != nil {
		return nil, fmt.Errorf("list pod cgroups in %s: %w", l.kubepods, err)
	}
	out := &model.CgroupStats{Version: l.version, Driver: l.driver, Pods: []model.PodCgroupStats{}}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if qos := qosOfDir(e.Name()); qos != "" {
			sub := filepath.Join(l.kubepods, e.Name())
			pods, err := os.ReadDir(sub)
			if err != nil {
				return nil, fmt.Errorf("list %s pod cgroups in %s: %w", qos, sub, err)
			}
			for _, p := range pods {
				if err := s.addPod(ctx, out, l, filepath.Join(sub, p.Name()), p, qos); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := s.addPod(ctx, out, l, filepath.Join(l.kubepods, e.Name()), e, "Guaranteed"); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out.Pods, func(a, b model.PodCgroupStats) int { return cmp.Compare(a.UID, b.UID) })
	return out, nil
}

// addPod reads one pod directory into out, unless it is not a pod's or a
// bound is reached. Only ctx ending is an error: a pod removed while it is
// read is simply left out.
func (s *CgroupSource) addPod(ctx context.Context, out *model.CgroupStats, l cgroupLayout, dir string, e fs.DirEntry, qos string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("read pod cgroups: %w", err)
	}
	uid, ok := podUIDOfDir(e.Name())
	if !e.IsDir() || !ok {
		return nil
	}
	if len(out.Pods) >= maxCgroupPods {
		out.Truncated++
		return nil
	}
	pod := model.PodCgroupStats{UID: uid, QOSClass: qos, Memory: s.readMemory(dir, l.version)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil //nolint:nilerr // the pod went away between two reads
	}
	for _, c := range entries {
		id, ok := containerIDOfDir(c.Name())
		if !c.IsDir() || !ok {
			continue
		}
		if len(pod.Containers) >= maxCgroupContainers {
			out.Truncated++
			continue
		}
		pod.Containers = append(pod.Containers, model.ContainerCgroupStats{ID: id, Memory: s.readMemory(filepath.Join(dir, c.Name()), l.version)})
	}
	slices.SortFunc(pod.Containers, func(a, b model.ContainerCgroupStats) int { return cmp.Compare(a.ID, b.ID) })
	out.Pods = append(out.Pods, pod)
	return nil
}

// readMemory reads one cgroup's counters. A missing file (an older kernel
// without memory.peak, a cgroup removed meanwhile) leaves its counters 0.
func (s *CgroupSource) readMemory(dir string, version int) model.MemoryCgroup {
	var m model.MemoryCgroup
	if version == 2 {
		s.readKeyed(filepath.Join(dir, "memory.events"), func(key string, v uint64) {
			switch key {
			case "oom":
				m.OOM = v
			case "oom_kill":
				m.OOMKill = v
			case "max":
				m.Max = v
			}
		})
		m.PeakBytes = clampBytes(s.readUint(filepath.Join(dir, "memory.peak")))
		m.LimitBytes = clampBytes(s.readUint(filepath.Join(dir, "memory.max"))) // "max" reads as 0: no limit
		return m
	}
	s.readKeyed(filepath.Join(dir, "memory.oom_control"), func(key string, v uint64) {
		if key == "oom_kill" {
			m.OOMKill = v
		}
	})
	m.FailCount = s.readUint(filepath.Join(dir, "memory.failcnt"))
	m.PeakBytes = clampBytes(s.readUint(filepath.Join(dir, "memory.max_usage_in_bytes")))
	if limit := s.readUint(filepath.Join(dir, "memory.limit_in_bytes")); limit < v1NoLimit {
		m.LimitBytes = int64(limit)
	}
	return m
}

// read reads a small cgroup file into the shared buffer; nil when absent
// or larger than maxCgroupFile.
func (s *CgroupSource) read(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if s.buf == nil {
		s.buf = make([]byte, maxCgroupFile+1)
	}
	n, err := io.ReadFull(f, s.buf)
	if n > maxCgroupFile || (err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)) {
		return nil
	}
	return s.buf[:n]
}

// readUint reads a file holding one number; 0 when absent or not a
// number (memory.max's "max").
func (s *CgroupSource) readUint(path string) uint64 {
	v, err := parseProcUint(bytes.TrimSpace(s.read(path)))
	if err != nil {
		return 0
	}
	return v
}

// readKeyed reads "key value" lines, skipping lines that do not parse.
func (s *CgroupSource) readKeyed(path string, set func(key string, v uint64)) {
	for rest := s.read(path); len(rest) > 0; {
		var line []byte
		line, rest = nextProcLine(rest)
		key, tail := nextProcField(line)
		val, _ := nextProcField(tail)
		if v, err := parseProcUint(val); err == nil && len(key) > 0 {
			set(string(key), v)
		}
	}
}

// qosOfDir names the QoS class of a kubepods subdirectory, "" when it is
// not one: burstable and besteffort (cgroupfs), or
// kubepods-burstable.slice and kubepods-besteffort.slice (systemd).
func qosOfDir(name string) string {
	switch name {
	case "burstable", "kubepods-burstable.slice":
		return "Burstable"
	case "besteffort", "kubepods-besteffort.slice":
		return "BestEffort"
	}
	return ""
}

// podUIDOfDir reads the pod UID from pod<uid> (cgroupfs) or
// kubepods[-qos]-pod<uid_with_underscores>.slice (systemd, which turns the
// UID's dashes into underscores because "-" nests slices).
func podUIDOfDir(name string) (string, bool) {
	var uid string
	switch {
	case strings.HasSuffix(name, ".slice"):
		i := strings.LastIndex(name, "-pod")
		if i < 0 {
			return "", false
		}
		uid = strings.ReplaceAll(strings.TrimSuffix(name[i+len("-pod"):], ".slice"), "_", "-")
	case strings.HasPrefix(name, "pod"):
		uid = name[len("pod"):]
	default:
		return "", false
	}
	return uid, validID(uid, true)
}

// containerIDOfDir reads the container ID from <id> (cgroupfs) or
// <runtime>-<id>.scope (systemd: cri-containerd-, crio-, docker-). CRI-O's
// conmon monitor scopes are not containers.
func containerIDOfDir(name string) (string, bool) {
	id := name
	if scope, ok := strings.CutSuffix(name, ".scope"); ok {
		if strings.HasPrefix(scope, "crio-conmon-") {
			return "", false
		}
		i := strings.LastIndexByte(scope, '-')
		if i < 0 {
			return "", false
		}
		id = scope[i+1:]
	}
	return id, validID(id, false)
}

// validID accepts runtime container IDs (hex) and pod UIDs (hex with
// dashes; static pods' UIDs are a 32-digit hash), up to 128 characters.
func validID(id string, dashes bool) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || dashes && c == '-') {
			return false
		}
	}
	return true
}

// clampBytes keeps a byte count within int64, the model's unit type.
func clampBytes(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
