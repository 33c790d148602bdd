package collector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func TestNetworkSourceDeltas(t *testing.T) {
	tests := []struct {
		fixture       string
		wantIfaces    []model.InterfaceMetrics
		wantBandwidth float64
	}{
		{
			// Recorded 2 s apart on an idle VM: no byte moved; lo is left out.
			fixture: "host1",
			wantIfaces: []model.InterfaceMetrics{
				{Name: "ifb0"}, {Name: "ifb1"}, {Name: "eth0"},
			},
		},
		{
			// 10 s apart. ens5: rx 812736450123 → 812836450123 (+100 MB,
			// 10 MB/s), tx 401827364512 → 401847364512 (+20 MB, 2 MB/s),
			// rx drops now 131. ens6's counters were reset (4294967000 →
			// 12000): 0 for this interval, not negative. docker0,
			// vxlan.calico, kube-ipvs0, cali*, tunl0 and lo are left out;
			// nodelocaldns is a dummy interface no prefix names.
			fixture: "k8snode",
			wantIfaces: []model.InterfaceMetrics{
				{Name: "ens5", RxBytesPerSec: 10_000_000, TxBytesPerSec: 2_000_000, RxDropped: 131},
				{Name: "ens6"},
				{Name: "nodelocaldns"},
			},
			wantBandwidth: 12_000_000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			root := copyFixture(t, tt.fixture)
			clock := newFakeClock()
			s := newNetworkSource(NewHostPaths(root), clock.Now)
			advanceFixture(t, root, "proc/1/net/dev")
			clock.Advance(10 * time.Second)

			var r model.NodeReport
			require.NoError(t, collectInto(t, context.Background(), s, &r))
			assert.Equal(t, tt.wantIfaces, r.Node.Interfaces)
			assert.InDelta(t, tt.wantBandwidth, r.Node.NetworkBandwidth, 1e-6)
		})
	}
}

// netDevHeader is the two header lines of /proc/net/dev.
const netDevHeader = "Inter-|   Receive                                                |  Transmit\n" +
	" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"

func TestNetworkSourceCycles(t *testing.T) {
	const header = netDevHeader
	line := func(name, rx, tx string) string {
		return name + ": " + rx + " 1 2 3 0 0 0 0 " + tx + " 1 4 5 0 0 0 0\n"
	}
	root := copyFixture(t, "host1")
	clock := newFakeClock()
	writeFixture(t, root, "proc/1/net/dev", header+line("eth0", "1000", "500"))
	s := newNetworkSource(NewHostPaths(root), clock.Now)

	steps := []struct {
		name    string
		dev     string
		advance time.Duration
		want    []model.InterfaceMetrics
	}{
		{
			// +4000 rx, +1000 tx over 2 s.
			name: "rates", advance: 2 * time.Second,
			dev: header + line("eth0", "5000", "1500"),
			want: []model.InterfaceMetrics{
				{Name: "eth0", RxBytesPerSec: 2000, TxBytesPerSec: 500, RxErrors: 2, RxDropped: 3, TxErrors: 4, TxDropped: 5},
			},
		},
		{
			// A new interface has no interval yet; eth0 tx wrapped.
			name: "new interface and wrap", advance: time.Second,
			dev: header + line("eth0", "6000", "10") + line("eth1", "99999", "99999"),
			want: []model.InterfaceMetrics{
				{Name: "eth0", RxBytesPerSec: 1000, RxErrors: 2, RxDropped: 3, TxErrors: 4, TxDropped: 5},
				{Name: "eth1", RxErrors: 2, RxDropped: 3, TxErrors: 4, TxDropped: 5},
			},
		},
		{
			// The kernel's old format had no space after the colon.
			name: "joined name and counter", advance: 4 * time.Second,
			dev: header + strings.Replace(line("eth0", "6000", "10"), ": ", ":", 1) + line("eth1", "100399", "99999"),
			want: []model.InterfaceMetrics{
				{Name: "eth0", RxErrors: 2, RxDropped: 3, TxErrors: 4, TxDropped: 5},
				{Name: "eth1", RxBytesPerSec: 100, RxErrors: 2, RxDropped: 3, TxErrors: 4, TxDropped: 5},
			},
		},
		{
			name: "clock did not move", advance: 0,
			dev: header + line("eth0", "7000", "10"),
			want: []model.InterfaceMetrics{
				{Name: "eth0", RxErrors: 2, RxDropped: 3, TxErrors: 4, TxDropped: 5},
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			writeFixture(t, root, "proc/1/net/dev", st.dev)
			clock.Advance(st.advance)
			var r model.NodeReport
			require.NoError(t, collectInto(t, context.Background(), s, &r))
			assert.Equal(t, st.want, r.Node.Interfaces)
			var sum float64
			for _, i := range st.want {
				sum += i.RxBytesPerSec + i.TxBytesPerSec
			}
			assert.InDelta(t, sum, r.Node.NetworkBandwidth, 1e-9)
		})
	}
}

func TestNetworkSourceFiles(t *testing.T) {
	tests := []struct {
		name      string
		prepare   func(t *testing.T, root string)
		wantErr   string
		wantUnav  bool
		wantNames []string
	}{
		{
			// The agent's own namespace when PID 1's is not readable.
			name: "fallback to proc/net/dev",
			prepare: func(t *testing.T, root string) {
				dev := readFixture(t, root, "proc/1/net/dev")
				require.NoError(t, os.RemoveAll(filepath.Join(root, "proc/1/net")))
				writeFixture(t, root, "proc/net/dev", dev)
			},
			wantNames: []string{"ifb0", "ifb1", "eth0"},
		},
		{
			name: "no counters",
			prepare: func(t *testing.T, root string) {
				require.NoError(t, os.RemoveAll(filepath.Join(root, "proc/1/net")))
			},
			wantErr: "read network counters",
		},
		{
			name: "garbage counter",
			prepare: func(t *testing.T, root string) {
				writeFixture(t, root, "proc/1/net/dev", netDevHeader+"  eth0: 1 2 3 x 5 6 7 8 9 10 11 12 13 14 15 16\n")
			},
			wantErr: `net/dev: strconv.ParseUint: parsing "x"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyFixture(t, "host1")
			tt.prepare(t, root)
			s := NewNetworkSource(NewHostPaths(root))
			var r model.NodeReport
			err := collectInto(t, context.Background(), s, &r)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.NotErrorIs(t, err, ErrUnavailable)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, i := range r.Node.Interfaces {
				names = append(names, i.Name)
			}
			assert.Equal(t, tt.wantNames, names)
		})
	}
}

func TestNetworkSourcePrimeFailed(t *testing.T) {
	root := copyFixture(t, "host1")
	dev := readFixture(t, root, "proc/1/net/dev")
	require.NoError(t, os.RemoveAll(filepath.Join(root, "proc/1/net")))
	clock := newFakeClock()
	s := newNetworkSource(NewHostPaths(root), clock.Now)

	writeFixture(t, root, "proc/1/net/dev", dev)
	var r model.NodeReport
	err := collectInto(t, context.Background(), s, &r)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Len(t, r.Node.Interfaces, 3, "cumulative counters are reported without rates")

	clock.Advance(time.Second)
	require.NoError(t, collectInto(t, context.Background(), s, &r))
}

func TestNetworkSourceIgnoredPrefixes(t *testing.T) {
	s := NewNetworkSource(NewHostPaths(t.TempDir()))
	for _, name := range []string{"lo", "veth1a2b", "cali0", "cni0", "flannel.1", "docker0", "br-3f2a", "vxlan.calico", "tunl0", "kube-ipvs0", "cilium_host", "lxc12ab", "genev_sys_6081", "virbr0"} {
		assert.True(t, s.ignored(name), name)
	}
	for _, name := range []string{"eth0", "ens5", "enp0s31f6", "bond0", "eth0.100", "wlan0", "ib0", "lo0"} {
		assert.False(t, s.ignored(name), name)
	}
}
