//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakePod is one pod's numbers on a fake kubelet. CPU counters grow at
// exactly CPU millicores from Start, so any two readings give that rate.
type fakePod struct {
	Namespace, Name, UID string
	Container            string
	Start                time.Time // whole seconds
	// /stats/summary (the agents)
	CPU    int64 // millicores
	Memory uint64
	// /metrics/resource (metrics-server); deliberately different numbers,
	// so the API shows which path they came through.
	MSCPU    int64
	MSMemory uint64
	// PVC-backed volumes: name -> stats
	Volumes []fakeVolume
}

type fakeVolume struct {
	Name, PVCNamespace, PVCName string
	Capacity, Used              uint64
}

// fakeKubelet serves /stats/summary and /metrics/resource for one node over
// TLS. It is the only simulated part of the cluster.
type fakeKubelet struct {
	node string
	srv  *httptest.Server
	port int

	mu        sync.Mutex
	pods      map[string]*fakePod // by namespace/name
	fail      bool                // answer 500 on every path
	lastToken string              // bearer token of the last /stats/summary request
	summaries int
	// authorize, when set, decides a /stats/summary request from its bearer
	// token as a kubelet with webhook authentication and authorization
	// does; it returns the HTTP status and a message.
	authorize func(token, node string) (int, string)
}

// startFakeKubelet serves until owner ends.
func startFakeKubelet(t, owner *testing.T, node string, kp *keyPair) *fakeKubelet {
	t.Helper()
	k := &fakeKubelet{node: node, pods: map[string]*fakePod{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/summary", k.summary)
	mux.HandleFunc("/metrics/resource", k.resource)
	k.srv = httptest.NewUnstartedServer(mux)
	k.srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.srv.Listener = ln
	k.srv.TLS = tlsServerConfig(t, kp)
	k.srv.StartTLS()
	owner.Cleanup(k.srv.Close)
	k.port = ln.Addr().(*net.TCPAddr).Port
	return k
}

func (k *fakeKubelet) setPod(p fakePod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cp := p
	k.pods[p.Namespace+"/"+p.Name] = &cp
}

func (k *fakeKubelet) deletePod(ns, name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pods, ns+"/"+name)
}

func (k *fakeKubelet) setFail(fail bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = fail
}

func (k *fakeKubelet) token() (string, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastToken, k.summaries
}

func (k *fakeKubelet) sorted() []*fakePod {
	out := make([]*fakePod, 0, len(k.pods))
	for _, p := range k.pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

// cpuNanos is the cumulative CPU of a pod at at: millicores since start.
func cpuNanos(millicores int64, start, at time.Time) uint64 {
	d := at.Sub(start)
	if d < 0 {
		return 0
	}
	return uint64(millicores) * 1_000_000 * uint64(d/time.Millisecond) / 1000
}

func ptr[T any](v T) *T { return &v }

func (k *fakeKubelet) summary(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	k.mu.Lock()
	authorize := k.authorize
	k.mu.Unlock()
	if authorize != nil {
		if code, msg := authorize(token, k.node); code != http.StatusOK {
			http.Error(w, msg, code)
			return
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastToken = token
	k.summaries++
	if k.fail {
		http.Error(w, "simulated kubelet failure", http.StatusInternalServerError)
		return
	}
	// The summary's times are RFC 3339 with whole seconds: the counters
	// are computed at the time the reader will see.
	now := time.Now().Truncate(time.Second)
	mt := metav1.NewTime(now)
	s := statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{
		NodeName:  k.node,
		StartTime: metav1.NewTime(now.Add(-time.Hour)),
		Fs: &statsv1alpha1.FsStats{Time: mt, CapacityBytes: ptr(uint64(100 << 30)), UsedBytes: ptr(uint64(40 << 30)),
			AvailableBytes: ptr(uint64(60 << 30))},
	}}
	for _, p := range k.sorted() {
		cpu := cpuNanos(p.CPU, p.Start, now)
		ps := statsv1alpha1.PodStats{
			PodRef:    statsv1alpha1.PodReference{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			StartTime: metav1.NewTime(p.Start),
			CPU:       &statsv1alpha1.CPUStats{Time: mt, UsageCoreNanoSeconds: ptr(cpu)},
			Memory:    &statsv1alpha1.MemoryStats{Time: mt, WorkingSetBytes: ptr(p.Memory)},
			Containers: []statsv1alpha1.ContainerStats{{
				Name: p.Container, StartTime: metav1.NewTime(p.Start),
				CPU:    &statsv1alpha1.CPUStats{Time: mt, UsageCoreNanoSeconds: ptr(cpu)},
				Memory: &statsv1alpha1.MemoryStats{Time: mt, WorkingSetBytes: ptr(p.Memory)},
			}},
		}
		for _, v := range p.Volumes {
			vs := statsv1alpha1.VolumeStats{Name: v.Name, FsStats: statsv1alpha1.FsStats{
				Time: mt, CapacityBytes: ptr(v.Capacity), UsedBytes: ptr(v.Used), AvailableBytes: ptr(v.Capacity - v.Used),
			}}
			if v.PVCName != "" {
				vs.PVCRef = &statsv1alpha1.PVCReference{Name: v.PVCName, Namespace: v.PVCNamespace}
			}
			ps.VolumeStats = append(ps.VolumeStats, vs)
		}
		s.Pods = append(s.Pods, ps)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&s)
}

// resource serves the kubelet's /metrics/resource, which metrics-server
// scrapes, in the Prometheus text format with explicit timestamps.
func (k *fakeKubelet) resource(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		http.Error(w, "simulated kubelet failure", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	ts := now.UnixMilli()
	at := time.UnixMilli(ts)
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\n")
	fmt.Fprintf(&b, "node_cpu_usage_seconds_total %.9f %d\n", float64(cpuNanos(1000, at.Add(-time.Hour), at))/1e9, ts)
	fmt.Fprintf(&b, "# HELP node_memory_working_set_bytes Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge\n")
	fmt.Fprintf(&b, "node_memory_working_set_bytes %d %d\n", 2<<30, ts)
	pods := k.sorted()
	fmt.Fprintf(&b, "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n")
	for _, p := range pods {
		fmt.Fprintf(&b, "container_cpu_usage_seconds_total{container=%q,namespace=%q,pod=%q} %.9f %d\n",
			p.Container, p.Namespace, p.Name, float64(cpuNanos(p.MSCPU, p.Start, at))/1e9, ts)
	}
	fmt.Fprintf(&b, "# HELP container_memory_working_set_bytes Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge\n")
	for _, p := range pods {
		fmt.Fprintf(&b, "container_memory_working_set_bytes{container=%q,namespace=%q,pod=%q} %d %d\n",
			p.Container, p.Namespace, p.Name, p.MSMemory, ts)
	}
	fmt.Fprintf(&b, "# HELP container_start_time_seconds Start time of the container since unix epoch in seconds\n# TYPE container_start_time_seconds gauge\n")
	for _, p := range pods {
		fmt.Fprintf(&b, "container_start_time_seconds{container=%q,namespace=%q,pod=%q} %d %d\n",
			p.Container, p.Namespace, p.Name, p.Start.Unix(), ts)
	}
	fmt.Fprintf(&b, "# HELP scrape_error 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n")
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}
