//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// TestIdentity runs the aggregator as the chart does (kubernetes identity
// on NATS and HTTP) against the real API server: TokenRequest tokens bound
// to pods on two nodes, RBAC from the rendered chart.
func TestIdentity(t *testing.T) {
	e := newEnv(t)
	const nodeA, nodeB = "node-a.e2e", "node-b.e2e"
	for _, n := range []string{nodeA, nodeB} {
		e.addNode(t, nodeSpec{name: n, cpu: "4", memory: "16Gi", allocCPU: "3900m", allocMemory: "15Gi"})
	}
	aggKC := e.cp.serviceAccountKubeconfig(t, e.chartNS, aggregatorSA)
	e.agg = startAggregator(t, e.root, e.productBin, e.logs, "aggregator", aggKC, freePort(t), e.aggregatorArgs()...)
	e.startAgent(t, nodeB)
	var b model.NodeMetrics
	require.Eventually(t, func() bool {
		code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+nodeB, &b)
		return err == nil && code == http.StatusOK && b.UsageSource == "agent"
	}, settle, 250*time.Millisecond, "the real agent of %s reports through NATS with its pod-bound token", nodeB)

	// Prometheus's view of the aggregator: a ServiceAccount bound to the
	// chart's metrics-reader role.
	e.cp.createServiceAccount(t, "default", "e2e-prometheus")
	e.cp.bindClusterRole(t, metricsReaderRole, "default", "e2e-prometheus")
	scrapeToken := e.cp.serviceAccountToken(t, "default", "e2e-prometheus")
	counter := func(name, reason string) float64 {
		code, body, err := getWithToken(e.agg.api+"/metrics", scrapeToken)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		return metricValue(body, name+`{reason="`+reason+`"}`)
	}

	podA, tokenFileA := e.agentPod(t, "agent-"+nodeA, nodeA)
	tokenA := readFile(t, tokenFileA)

	t.Run("an agent publishes for its node, and NATS refuses it another node's subjects", func(t *testing.T) {
		agent := connect(t, e.agg.natsURL, nats.Token(tokenA))
		now := time.Now().UTC()
		own := &model.NodeReport{NodeName: nodeA, Timestamp: now, IntervalSeconds: 2,
			Node: model.NodeMetrics{NodeName: nodeA, CPUCapacity: 4000, CPUUsage: 1234, CPUUsageRate: 30.85,
				MemoryCapacity: 16 << 30, MemoryUsage: 4 << 30, MemoryUsageRate: 25, Healthy: true}}
		data, err := wire.EncodeReport(own)
		require.NoError(t, err)
		require.NoError(t, agent.nc.Publish(wire.NodeReportSubject(wire.DefaultPrefix, nodeA), data))
		var a model.NodeMetrics
		require.Eventually(t, func() bool {
			code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+nodeA, &a)
			return err == nil && code == http.StatusOK && a.CPUUsage == 1234
		}, settle, 250*time.Millisecond, "node A's report accepted: %+v", a)

		// The attack of the issue: a report for node B, idle and healthy,
		// stamped a minute ahead so the real agent's would look outdated.
		before := counter("k8smon_nats_permission_violations_total", "publish")
		forged := &model.NodeReport{NodeName: nodeB, Timestamp: now.Add(time.Minute), IntervalSeconds: 2,
			Node: model.NodeMetrics{NodeName: nodeB, CPUCapacity: 4000, CPUUsage: 7, CPUUsageRate: 0.2,
				MemoryCapacity: 16 << 30, MemoryUsage: 1 << 20, MemoryUsageRate: 0.01, Healthy: true}}
		data, err = wire.EncodeReport(forged)
		require.NoError(t, err)
		require.NoError(t, agent.nc.Publish(wire.NodeReportSubject(wire.DefaultPrefix, nodeB), data))
		require.NoError(t, agent.nc.Flush())
		require.Eventually(t, func() bool {
			return counter("k8smon_nats_permission_violations_total", "publish") == before+1
		}, settle, 250*time.Millisecond, "the forged publish is counted")
		require.Eventually(t, func() bool { return strings.Contains(agent.errors(), "Permissions Violation for Publish") },
			settle, 100*time.Millisecond, "the agent is told")
		// Counted means refused before delivery: node B keeps its own
		// agent's numbers and timestamps over the next reports.
		last := b.Timestamp
		for range 2 {
			require.Eventually(t, func() bool {
				code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+nodeB, &b)
				return err == nil && code == http.StatusOK && b.Timestamp.After(last)
			}, settle, 250*time.Millisecond, "node B's own agent keeps reporting")
			assert.NotEqual(t, int64(7), b.CPUUsage, "the forged usage never shows")
			assert.True(t, b.Timestamp.Before(now.Add(30*time.Second)), "the forged timestamp never shows")
			last = b.Timestamp
		}
		assert.Contains(t, e.agg.proc.Tail(200), "NATS permission violation", "logged with the client's identity")
	})

	t.Run("anonymous clients and tokens for another audience cannot connect", func(t *testing.T) {
		apiAudience := e.cp.tokenFor(t, e.chartNS, agentSA, nil, podA)
		unboundAgent := e.cp.tokenFor(t, e.chartNS, agentSA, []string{productAudience}, nil)
		for name, opts := range map[string][]nats.Option{
			"anonymous":                      nil,
			"the API server's audience":      {nats.Token(apiAudience)},
			"agents' account, bound to none": {nats.Token(unboundAgent)},
			"a made-up token":                {nats.Token("not-a-token")},
		} {
			_, err := nats.Connect(e.agg.natsURL, append(opts, nats.NoReconnect(), nats.Timeout(10*time.Second))...)
			assert.ErrorIs(t, err, nats.ErrAuthorization, name)
		}
		assert.Positive(t, counter("k8smon_nats_auth_refused_total", "invalid_token"))
		assert.Positive(t, counter("k8smon_nats_auth_refused_total", "no_rights"))
	})

	t.Run("a reader subscribes and cannot publish", func(t *testing.T) {
		reader := connect(t, e.agg.natsURL, nats.Token(e.readerNATSToken))
		sub, err := reader.nc.SubscribeSync(wire.DefaultPrefix + ".>")
		require.NoError(t, err)
		// Cluster events come on the same wildcard; a report must follow.
		deadline := time.Now().Add(settle)
		for {
			msg, err := sub.NextMsg(time.Until(deadline))
			require.NoError(t, err, "reports reach the reader")
			require.True(t, strings.HasPrefix(msg.Subject, wire.DefaultPrefix+"."), msg.Subject)
			if strings.HasPrefix(msg.Subject, wire.DefaultPrefix+".node.") {
				break
			}
		}

		before := counter("k8smon_nats_permission_violations_total", "publish")
		require.NoError(t, reader.nc.Publish(wire.NodeReportSubject(wire.DefaultPrefix, nodeB), []byte(`{}`)))
		require.NoError(t, reader.nc.Flush())
		require.Eventually(t, func() bool {
			return counter("k8smon_nats_permission_violations_total", "publish") == before+1
		}, settle, 250*time.Millisecond)

		// An identity without the reader binding gets nothing.
		e.cp.createServiceAccount(t, "team-a", "nobody")
		_, err = nats.Connect(e.agg.natsURL, nats.Token(e.cp.tokenFor(t, "team-a", "nobody", []string{productAudience}, nil)), nats.NoReconnect())
		assert.ErrorIs(t, err, nats.ErrAuthorization)
	})

	t.Run("a token whose pod was deleted loses its connection", func(t *testing.T) {
		pod, file := e.agentPod(t, "agent-extra", nodeA)
		c := connect(t, e.agg.natsURL, nats.Token(readFile(t, file)))
		require.NoError(t, c.nc.Publish(wire.NodeEventSubject(wire.DefaultPrefix, nodeA), []byte(`{}`)))
		require.NoError(t, c.nc.Flush())
		require.NoError(t, e.cp.client.CoreV1().Pods(e.chartNS).Delete(context.Background(), pod.Name,
			metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		select {
		case <-c.closed:
		case <-time.After(settle):
			t.Fatal("the connection of a deleted pod's token stays open")
		}
		_, err := nats.Connect(e.agg.natsURL, nats.Token(readFile(t, file)), nats.NoReconnect())
		assert.ErrorIs(t, err, nats.ErrAuthorization, "and cannot come back")
		assert.Positive(t, counter("k8smon_nats_auth_closed_total", "pod_deleted"))
	})

	t.Run("HTTP: 401 without a token, 403 without the reader binding, 200 with it", func(t *testing.T) {
		unbound := e.cp.serviceAccountToken(t, "team-a", "default")
		for _, c := range []struct {
			path, token string
			want        int
		}{
			{"/api/v1/metrics/cluster", "", http.StatusUnauthorized},
			{"/api/v1/metrics/cluster", "not-a-token", http.StatusUnauthorized},
			{"/api/v1/metrics/cluster", unbound, http.StatusForbidden},
			{"/api/v1/metrics/cluster", apiToken, http.StatusOK},
			{"/api/v1/metrics/nodes/" + nodeA, apiToken, http.StatusOK},
			{"/api/v1/metrics/cluster", e.readerNATSToken, http.StatusOK}, // the product's audience works too
			{"/metrics", apiToken, http.StatusForbidden},                  // a permission of its own
			{"/metrics", scrapeToken, http.StatusOK},
			{"/api/v1/metrics/cluster", scrapeToken, http.StatusForbidden},
			{"/healthz", "", http.StatusOK},
			{"/readyz", "", http.StatusOK},
		} {
			code, body, err := getWithToken(e.agg.api+c.path, c.token)
			require.NoError(t, err)
			assert.Equal(t, c.want, code, "%s with %.12s...: %s", c.path, c.token, body)
			if c.want == http.StatusUnauthorized || c.want == http.StatusForbidden {
				assert.Contains(t, string(body), `"status":`+strconv.Itoa(c.want), "the API's error JSON")
			}
		}
	})
}

// natsClient is a connection that records the server's errors.
type natsClient struct {
	nc     *nats.Conn
	mu     sync.Mutex
	errs   []string
	closed chan struct{}
}

func connect(t *testing.T, url string, opts ...nats.Option) *natsClient {
	t.Helper()
	c := &natsClient{closed: make(chan struct{})}
	opts = append(opts, nats.NoReconnect(), nats.Timeout(10*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

func (c *natsClient) errors() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

// metricValue reads one sample of a Prometheus text exposition, -1 when
// it is absent.
func metricValue(body []byte, series string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// TestIdentityExternalNATS runs the same identity rules on an external
// nats-server process (built from the nats-server module at the version in
// go.mod) whose auth callout the aggregator serves.
func TestIdentityExternalNATS(t *testing.T) {
	e := newEnv(t)
	const nodeA, nodeB = "node-a.e2e", "node-b.e2e"
	for _, n := range []string{nodeA, nodeB} {
		e.addNode(t, nodeSpec{name: n, cpu: "4", memory: "16Gi", allocCPU: "3900m", allocMemory: "15Gi"})
	}

	issuer, err := nkeys.CreateAccount()
	require.NoError(t, err)
	issuerPub, err := issuer.PublicKey()
	require.NoError(t, err)
	seed, err := issuer.Seed()
	require.NoError(t, err)
	seedFile := writeFile(t, e.cp.dir, "callout-issuer.nk", string(seed))
	natsURL := startNATSServer(t, e.logs, e.cp.dir, fmt.Sprintf(`
authorization {
  timeout: 10
  users: [ { user: aggregator, password: callout-pw } ]
  auth_callout {
    issuer: %s
    auth_users: [ aggregator ]
  }
}
`, issuerPub))

	aggKC := e.cp.serviceAccountKubeconfig(t, e.chartNS, aggregatorSA)
	args := append(e.aggregatorArgs(), "--nats-url", natsURL, "--nats-user", "aggregator", "--nats-password", "callout-pw",
		"--nats-callout-issuer-seed-file", seedFile)
	e.agg = startAggregator(t, e.root, e.productBin, e.logs, "aggregator", aggKC, freePort(t), args...)
	e.agg.natsURL = natsURL
	e.startAgent(t, nodeB)
	var b model.NodeMetrics
	require.Eventually(t, func() bool {
		code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+nodeB, &b)
		return err == nil && code == http.StatusOK && b.UsageSource == "agent"
	}, settle, 250*time.Millisecond, "the real agent of %s reports through the external NATS", nodeB)

	_, tokenFileA := e.agentPod(t, "agent-"+nodeA, nodeA)
	agent := connect(t, natsURL, nats.Token(readFile(t, tokenFileA)))
	forged := &model.NodeReport{NodeName: nodeB, Timestamp: time.Now().UTC().Add(time.Minute), IntervalSeconds: 2,
		Node: model.NodeMetrics{NodeName: nodeB, CPUCapacity: 4000, CPUUsage: 7, Healthy: true}}
	data, err := wire.EncodeReport(forged)
	require.NoError(t, err)
	require.NoError(t, agent.nc.Publish(wire.NodeReportSubject(wire.DefaultPrefix, nodeB), data))
	require.NoError(t, agent.nc.Flush())
	require.Eventually(t, func() bool { return strings.Contains(agent.errors(), "Permissions Violation for Publish") },
		settle, 100*time.Millisecond, "the external server refuses another node's subject")
	last := b.Timestamp
	require.Eventually(t, func() bool {
		code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+nodeB, &b)
		return err == nil && code == http.StatusOK && b.Timestamp.After(last)
	}, settle, 250*time.Millisecond)
	assert.NotEqual(t, int64(7), b.CPUUsage, "the forged usage never shows")

	reader := connect(t, natsURL, nats.Token(e.readerNATSToken))
	sub, err := reader.nc.SubscribeSync(wire.DefaultPrefix + ".>")
	require.NoError(t, err)
	_, err = sub.NextMsg(settle)
	require.NoError(t, err, "a reader receives reports")
	require.NoError(t, reader.nc.Publish(wire.NodeReportSubject(wire.DefaultPrefix, nodeB), []byte(`{}`)))
	require.Eventually(t, func() bool { return strings.Contains(reader.errors(), "Permissions Violation for Publish") },
		settle, 100*time.Millisecond, "and publishes nothing")

	apiAudience := e.cp.tokenFor(t, e.chartNS, agentSA, nil, nil)
	for name, opts := range map[string][]nats.Option{"anonymous": nil, "the API server's audience": {nats.Token(apiAudience)}} {
		_, err := nats.Connect(natsURL, append(opts, nats.NoReconnect(), nats.Timeout(15*time.Second))...)
		assert.Error(t, err, name)
	}
}

// startNATSServer builds nats-server (the version in go.mod) and runs it on
// a free loopback port with the given authorization block; it returns the
// client URL.
func startNATSServer(t *testing.T, logs, dir, auth string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build nats-server:\n%s", out)
	port := freePort(t)
	// JetStream: the aggregator keeps reports and events in its streams.
	conf := writeFile(t, dir, "nats-server.conf", fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n%s", port, filepath.Join(dir, "nats-store"), auth))
	p := start(t, logs, "nats-server", bin, "-c", conf)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		if p.Exited() {
			return true
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	require.False(t, p.Exited(), "nats-server exited:\n%s", p.Tail(40))
	return url
}
