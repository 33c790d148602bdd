package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"

	psnet "github.com/shirou/gopsutil/v4/net"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// DefaultIgnoredInterfacePrefixes are the name prefixes of virtual
// interfaces that the network source leaves out besides lo: per-pod veth
// ends and CNI bridges and tunnels (Calico, Flannel, Cilium, Weave-less
// VXLAN, IPIP, Geneve, kube-proxy IPVS), Docker and libvirt bridges. Their
// traffic is pod traffic already counted on the physical interfaces, so
// including them would double the node's bandwidth and add an interface per
// pod. A NetworkSource copies the list when it is built.
var DefaultIgnoredInterfacePrefixes = []string{
	"veth", "cali", "cni", "flannel", "docker", "br-", "vxlan", "tunl",
	"kube-ipvs", "cilium_", "lxc", "genev", "virbr",
}

// NetworkSource reports per-interface throughput from the delta of
// /proc/net/dev's counters between two Collects, read through gopsutil from
// the host's network namespace, and the node's total bandwidth.
type NetworkSource struct {
	// devPaths are tried in order: PID 1's view is the host's network
	// namespace even when the agent runs in a pod network; the agent's own
	// view is the fallback where PID 1's is not readable. gopsutil v4 has no
	// per-process network counters; its file reader is what they used.
	devPaths []string
	ignore   []string
	now      func() time.Time

	// mu serialises Collects, which move prev.
	mu     sync.Mutex
	prev   []netCounters
	spare  []netCounters
	prevAt time.Time
	primed bool
}

var _ Source = (*NetworkSource)(nil)

// netCounters is one interface's line of /proc/net/dev.
type netCounters struct {
	name             string
	rxBytes, txBytes uint64
	rxErrs, txErrs   uint64
	rxDrop, txDrop   uint64
}

// NewNetworkSource returns the network source of the host at paths. It takes
// a first reading now, so that the first Collect already has rates.
func NewNetworkSource(paths HostPaths) *NetworkSource {
	return newNetworkSource(paths, time.Now)
}

func newNetworkSource(paths HostPaths, now func() time.Time) *NetworkSource {
	s := &NetworkSource{
		devPaths: []string{
			filepath.Join(paths.Proc, "1", "net", "dev"),
			filepath.Join(paths.Proc, "net", "dev"),
		},
		ignore: append([]string(nil), DefaultIgnoredInterfacePrefixes...),
		now:    now,
	}
	// A failed prime is not an error yet: Collect reads again and says why.
	if cur, err := s.read(context.Background()); err == nil {
		s.prev, s.prevAt, s.primed = cur, s.now(), true
	}
	return s
}

// Name implements Source.
func (s *NetworkSource) Name() string { return "network" }

// Collect implements Source.
func (s *NetworkSource) Collect(ctx context.Context) (Apply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect network: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	cur, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	at := s.now()
	secs := at.Sub(s.prevAt).Seconds()
	var rateErr error
	if !s.primed {
		rateErr = fmt.Errorf("%w: network rates need a second reading of %s", ErrUnavailable, s.devPaths[0])
	}

	ifaces := make([]model.InterfaceMetrics, len(cur))
	var bandwidth float64
	for i, c := range cur {
		m := model.InterfaceMetrics{
			Name:      c.name,
			RxErrors:  c.rxErrs,
			TxErrors:  c.txErrs,
			RxDropped: c.rxDrop,
			TxDropped: c.txDrop,
		}
		// A new interface, or a clock that did not move, has no interval:
		// its rate stays 0 rather than a guess.
		if p, ok := findNetCounters(s.prev, c.name); ok && s.primed && secs > 0 {
			m.RxBytesPerSec = float64(counterDelta(c.rxBytes, p.rxBytes)) / secs
			m.TxBytesPerSec = float64(counterDelta(c.txBytes, p.txBytes)) / secs
		}
		bandwidth += m.RxBytesPerSec + m.TxBytesPerSec
		ifaces[i] = m
	}
	s.prev, s.spare = cur, s.prev
	s.prevAt, s.primed = at, true

	return func(r *model.NodeReport) {
		r.Node.Interfaces = ifaces
		r.Node.NetworkBandwidth = bandwidth
	}, rateErr
}

// read reads the first readable of devPaths into s.spare's array (never
// prev's, which the caller still compares against), reusing the previous
// reading's name strings.
func (s *NetworkSource) read(ctx context.Context) ([]netCounters, error) {
	var (
		stats []psnet.IOCountersStat
		err   error
		path  string
		errs  []error
	)
	for _, path = range s.devPaths {
		stats, err = psnet.IOCountersByFileWithContext(ctx, true, path)
		var pathErr *fs.PathError
		if err == nil || !errors.As(err, &pathErr) {
			break
		}
		errs = append(errs, err)
	}
	var pathErr *fs.PathError
	switch {
	case errors.As(err, &pathErr):
		return nil, fmt.Errorf("read network counters: %w", errors.Join(errs...))
	case err != nil:
		// gopsutil stops at the first bad counter; a partial list would
		// show the missing interfaces as gone.
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	out := s.spare[:0]
	for _, st := range stats {
		if s.ignored(st.Name) {
			continue
		}
		c := netCounters{
			name:    st.Name,
			rxBytes: st.BytesRecv, rxErrs: st.Errin, rxDrop: st.Dropin,
			txBytes: st.BytesSent, txErrs: st.Errout, txDrop: st.Dropout,
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *NetworkSource) ignored(name string) bool {
	if name == "lo" {
		return true
	}
	for _, p := range s.ignore {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// findNetCounters looks an interface up by name; a linear scan beats a map
// for the handful of interfaces left after filtering, and allocates nothing.
func findNetCounters(list []netCounters, name string) (netCounters, bool) {
	for _, c := range list {
		if c.name == name {
			return c, true
		}
	}
	return netCounters{}, false
}
