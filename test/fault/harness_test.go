//go:build fault

package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

var (
	// productDir holds the agent and aggregator built for this run.
	productDir string
	// natsBin is the nats-server binary build.sh made.
	natsBin string
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	dir, err := os.MkdirTemp("", "k8smon-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range []string{"agent", "aggregator"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "./"+b)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./%s: %v\n%s", b, err, out)
			return 1
		}
	}
	productDir = dir
	natsBin = os.Getenv("FAULT_NATS_SERVER")
	if natsBin == "" {
		out, err := exec.Command("./build.sh").Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "test/fault/build.sh: %v\n", err)
			return 1
		}
		natsBin = filepath.Join(strings.TrimSpace(string(out)), "nats-server")
	}
	return m.Run()
}

// Cases are quick (make fault, in CI) or slow (make e2e); K8SMON_FAULT
// picks quick, slow, or all (the default when unset).
func quick(t *testing.T) { only(t, "quick") }
func slow(t *testing.T)  { only(t, "slow") }

func only(t *testing.T, class string) {
	if want := os.Getenv("K8SMON_FAULT"); want != "" && want != "all" && want != class {
		t.Skipf("a %s case; K8SMON_FAULT=%s", class, want)
	}
}

// interval is the agents' and the aggregator's collection interval.
const interval = time.Second

// natsServer is a nats-server process with JetStream; restarts keep its
// port and store, as a restarted pod with its volume would.
type natsServer struct {
	t    *testing.T
	dir  string
	name string
	port int
	conf string
	p    *process
}

// startNATS runs a single JetStream server.
func startNATS(t *testing.T, dir, name string) *natsServer {
	t.Helper()
	port := freePort(t)
	conf := filepath.Join(dir, name+".conf")
	writeFile(t, conf, fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q }\n",
		name, port, filepath.Join(dir, name+"-store")))
	n := &natsServer{t: t, dir: dir, name: name, port: port, conf: conf}
	n.start()
	return n
}

// startCluster runs n JetStream servers routed to each other.
func startCluster(t *testing.T, dir string, size int) []*natsServer {
	t.Helper()
	ports, routes := make([]int, size), make([]int, size)
	var urls []string
	for i := range size {
		ports[i], routes[i] = freePort(t), freePort(t)
		urls = append(urls, fmt.Sprintf("nats-route://127.0.0.1:%d", routes[i]))
	}
	servers := make([]*natsServer, size)
	for i := range size {
		name := fmt.Sprintf("nats-%d", i)
		conf := filepath.Join(dir, name+".conf")
		writeFile(t, conf, fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: fault
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, ports[i], filepath.Join(dir, name+"-store"), routes[i], strings.Join(urls, ", ")))
		servers[i] = &natsServer{t: t, dir: dir, name: name, port: ports[i], conf: conf}
		servers[i].p = start(t, dir, name, natsBin, nil, "-c", conf)
	}
	for _, s := range servers {
		s.waitReady()
	}
	return servers
}

func (n *natsServer) start() {
	n.t.Helper()
	n.p = start(n.t, n.dir, n.name, natsBin, nil, "-c", n.conf)
	n.waitReady()
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// waitReady waits until the server answers the JetStream API.
func (n *natsServer) waitReady() {
	n.t.Helper()
	require.Eventually(n.t, func() bool {
		nc, err := nats.Connect(n.url(), nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "%s never answered the JetStream API:\n%s", n.name, n.p.Tail(20))
}

// clusterURL joins the servers' URLs, as a client of the cluster is given.
func clusterURL(servers []*natsServer) string {
	var u []string
	for _, s := range servers {
		u = append(u, s.url())
	}
	return strings.Join(u, ",")
}

// aggregator is an aggregator process on an external NATS.
type aggregator struct {
	t    *testing.T
	dir  string
	name string
	api  string
	args []string
	p    *process
}

func startAggregator(t *testing.T, dir, name, natsURL string, extra ...string) *aggregator {
	t.Helper()
	port := freePort(t)
	a := &aggregator{t: t, dir: dir, name: name, api: fmt.Sprintf("http://127.0.0.1:%d", port)}
	a.args = append([]string{
		"--nats-url", natsURL,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--interval", strconv.Itoa(int(interval / time.Second)),
		"--log-level", "debug",
	}, extra...)
	a.start()
	return a
}

// start runs the aggregator and waits for its liveness probe.
func (a *aggregator) start() {
	a.t.Helper()
	a.p = start(a.t, a.dir, a.name, filepath.Join(productDir, "aggregator"), nil, a.args...)
	require.Eventually(a.t, func() bool {
		code, _ := get(a.api+"/healthz", nil)
		return code == http.StatusOK || a.p.Exited()
	}, 30*time.Second, 20*time.Millisecond, "aggregator not answering /healthz")
	require.False(a.t, a.p.Exited(), "aggregator exited:\n%s", a.p.Tail(30))
}

// ready returns /readyz's status code and body.
func (a *aggregator) ready() (int, string) {
	var body map[string]any
	code, _ := get(a.api+"/readyz", &body)
	return code, fmt.Sprint(body)
}

// point is the part of a history point the suite compares.
type point struct {
	Timestamp time.Time `json:"timestamp"`
	CPUUsage  int64     `json:"cpuUsage"`
}

// history returns a node's history on this aggregator, nil when unknown.
func (a *aggregator) history(node string) []point {
	var h struct {
		Items []point `json:"items"`
	}
	if code, _ := get(a.api+"/api/v1/metrics/nodes/"+node+"/history", &h); code != http.StatusOK {
		return nil
	}
	return h.Items
}

// nodes returns the names in this aggregator's snapshot.
func (a *aggregator) nodes() []string {
	var snap struct {
		NodeMetrics map[string]json.RawMessage `json:"nodeMetrics"`
	}
	if code, _ := get(a.api+"/api/v1/metrics/snapshot", &snap); code != http.StatusOK {
		return nil
	}
	var out []string
	for n := range snap.NodeMetrics {
		out = append(out, n)
	}
	return out
}

func (a *aggregator) metric(series string) float64 { return metric(a.t, a.api+"/metrics", series) }

// agent is an agent process for one simulated node: host readings of this
// machine under the node's name, no kubelet, no GPU.
type agent struct {
	t       *testing.T
	node    string
	metrics string
	p       *process
}

func startAgent(t *testing.T, dir, node, natsURL string) *agent {
	t.Helper()
	port := freePort(t)
	a := &agent{t: t, node: node, metrics: fmt.Sprintf("http://127.0.0.1:%d", port)}
	a.p = start(t, dir, "agent-"+node, filepath.Join(productDir, "agent"), nil,
		"--node-name", node, "--disable-kubelet", "--disable-gpu", "--host-root", "/",
		"--nats-url", natsURL, "--interval", strconv.Itoa(int(interval/time.Second)),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "debug")
	return a
}

func (a *agent) metric(series string) float64 { return metric(a.t, a.metrics+"/metrics", series) }

// counters is what the agent says about its reports.
type counters struct {
	cycles, published, buffered, dropped float64
}

func (a *agent) counters() counters {
	return counters{
		cycles:    a.metric("k8smon_agent_cycles_total"),
		published: a.metric(`k8smon_agent_published_total{kind="NodeReport"}`),
		buffered:  a.metric("k8smon_agent_buffered_messages"),
		dropped:   a.metric("k8smon_agent_buffer_dropped_total"),
	}
}

// settled waits for a moment between two cycles when the agent has nothing
// buffered, and returns its counters then together with the reports the
// stream holds for its node, read between two equal readings of the
// counters.
func (a *agent) settled(js jetstream.JetStream) (counters, []time.Time) {
	a.t.Helper()
	var c counters
	var stored []time.Time
	require.Eventually(a.t, func() bool {
		before := a.counters()
		if before.buffered != 0 || before.cycles == 0 {
			return false
		}
		var err error
		if stored, err = tryStoredReports(js, a.node); err != nil {
			return false
		}
		c = a.counters()
		return c == before
	}, 60*time.Second, 100*time.Millisecond, "the agent never settled")
	return c, stored
}

// storedReports returns the report times the Reports stream holds for node,
// oldest first, retrying while the stream is unavailable (a NATS cluster
// electing a new leader).
func storedReports(t *testing.T, js jetstream.JetStream, node string) []time.Time {
	t.Helper()
	var out []time.Time
	var err error
	require.Eventually(t, func() bool {
		out, err = tryStoredReports(js, node)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "read the stored reports of %s", node)
	return out
}

func tryStoredReports(js jetstream.JetStream, node string) ([]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.ReportsName(wire.DefaultPrefix))
	if err != nil {
		return nil, err
	}
	subject := wire.NodeReportSubject(wire.DefaultPrefix, node)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	want := int(info.State.Subjects[subject])
	if want == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for len(out) < want {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			r, err := wire.DecodeReport(wire.DefaultPrefix, m.Subject(), m.Data())
			if err != nil {
				return nil, err
			}
			out = append(out, r.Timestamp.UTC())
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("stream has %d reports of %s, read %d: %w", want, node, len(out), batch.Error())
		}
	}
	return out, nil
}

// client connects the suite itself to NATS.
func client(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// times returns the points' timestamps.
func times(points []point) []time.Time {
	out := make([]time.Time, len(points))
	for i, p := range points {
		out[i] = p.Timestamp.UTC()
	}
	return out
}

// get decodes url's JSON body into into (when not nil) and returns the
// status code; 0 when the server did not answer.
func get(url string, into any) (int, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}

// metric reads one series from a Prometheus text endpoint, written as it
// appears there (name{label="value"}); -1 when the endpoint or the series
// is missing.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "%s: %q", series, v)
			return f
		}
	}
	return -1
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}
