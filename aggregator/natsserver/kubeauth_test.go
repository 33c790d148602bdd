package natsserver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn/authntest"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsauth"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

const (
	agentNS  = "mon"
	agentSA  = "mon-agent"
	audience = "k8s-llm-monitor"
)

// kubeEnv is an embedded server in kubernetes mode over a fake API server.
type kubeEnv struct {
	api    *authntest.API
	client *fake.Clientset
	srv    *Server
	reg    *prometheus.Registry
	logs   *syncBuffer
}

func startKube(t *testing.T, reviewer authn.Options, recheck time.Duration, pods ...*corev1.Pod) *kubeEnv {
	t.Helper()
	return startKubeWith(t, reviewer, recheck, nil, pods...)
}

// startKubeWith starts the server with the options with besides.
func startKubeWith(t *testing.T, reviewer authn.Options, recheck time.Duration, with []Option, pods ...*corev1.Pod) *kubeEnv {
	t.Helper()
	e := &kubeEnv{api: authntest.New(), reg: prometheus.NewRegistry()}
	e.client = e.api.Client()
	for _, p := range pods {
		_, err := e.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	logger, logs := testLogger(t)
	e.logs = logs
	w := natsauth.NewPodWatcher(e.client, agentNS, agentSA, logger)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w.Start(ctx)
	rules := natsauth.New(natsauth.Options{
		Reviewer: authn.NewReviewer(e.client, reviewer), Audience: audience, Prefix: "k8smon",
		AgentNamespace: agentNS, AgentServiceAccount: agentSA, Pods: w, Logger: logger,
	})
	srv, err := Start(config.NATSConfig{Listen: "127.0.0.1:0", AuthMode: config.AuthKubernetes}, logger,
		append([]Option{WithKubernetes(rules, w), WithRegisterer(e.reg), WithRecheck(recheck)}, with...)...)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	e.srv = srv
	return e
}

// agentToken registers a token of the agents' account bound to pod uid on
// node (node "" leaves the claim out) and expiring at exp.
func (e *kubeEnv) agentToken(pod, uid, node string, exp time.Time) string {
	tok := authntest.JWT(exp, pod+uid)
	e.api.AddToken(tok, authntest.Token{User: authntest.ServiceAccount(agentNS, agentSA, authntest.PodBound(pod, uid, node)), Audiences: []string{audience}})
	return tok
}

func (e *kubeEnv) readerToken(name string) string {
	tok := authntest.JWT(time.Now().Add(time.Hour), "reader-"+name)
	user := authntest.ServiceAccount("team-a", name, nil)
	e.api.AddToken(tok, authntest.Token{User: user, Audiences: []string{audience}})
	e.api.Grant(user.Username, authn.DefaultPathPrefix+natsauth.ReadPath)
	return tok
}

// client connects with token and records the server's async errors.
type client struct {
	nc     *nats.Conn
	mu     sync.Mutex
	errs   []string
	closed chan struct{}
}

func (e *kubeEnv) connect(t *testing.T, opts ...nats.Option) (*client, error) {
	t.Helper()
	c := &client{closed: make(chan struct{})}
	opts = append([]nats.Option{nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
	}, opts...)
	nc, err := nats.Connect(e.srv.ClientURL(), opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c, nil
}

func (c *client) errors() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

func (e *kubeEnv) counter(name, reason string) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func agentPodOn(name, uid, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: name, UID: types.UID(uid)},
		Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: agentSA},
	}
}

func TestKubernetesModeAgentSpeaksOnlyForItsNode(t *testing.T) {
	e := startKube(t, authn.Options{}, time.Hour, agentPodOn("agent-a", "uid-a", "node-a.example.com"))
	reader, err := e.connect(t, nats.Token(e.readerToken("reader")))
	require.NoError(t, err)
	got, err := reader.nc.SubscribeSync("k8smon.>")
	require.NoError(t, err)
	require.NoError(t, reader.nc.Flush())

	agent, err := e.connect(t, nats.Token(e.agentToken("agent-a", "uid-a", "node-a.example.com", time.Now().Add(time.Hour))))
	require.NoError(t, err)
	require.NoError(t, agent.nc.Publish("k8smon.node.node-a_example_com.report", []byte("a")))
	require.NoError(t, agent.nc.Publish("k8smon.node.node-a_example_com.event", []byte("a-event")))
	// Forgeries: another node, the cluster subject, a wildcard-looking node.
	for _, subj := range []string{"k8smon.node.node-b.report", "k8smon.cluster.event", "k8smon.node.node-a.report"} {
		require.NoError(t, agent.nc.Publish(subj, []byte("forged")))
	}
	require.NoError(t, agent.nc.Flush())

	for _, want := range []string{"a", "a-event"} {
		msg, err := got.NextMsg(5 * time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, string(msg.Data))
	}
	require.Eventually(t, func() bool { return e.counter("k8smon_nats_permission_violations_total", "publish") == 3 },
		5*time.Second, 10*time.Millisecond)
	_, err = got.NextMsg(100 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "no forged message reached the reader")
	assert.Contains(t, agent.errors(), "Permissions Violation for Publish")

	// Subscribing to other nodes' data is refused too.
	_, err = agent.nc.SubscribeSync("k8smon.>")
	require.NoError(t, err) // asynchronous: the server answers with an error
	require.Eventually(t, func() bool { return e.counter("k8smon_nats_permission_violations_total", "subscribe") == 1 },
		5*time.Second, 10*time.Millisecond)

	// Logged once for this client, with its identity.
	logs := e.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "NATS permission violation"), logs)
	assert.Contains(t, logs, "agent system:serviceaccount:mon:mon-agent (pod agent-a) for node node-a.example.com")
	assert.NotContains(t, logs, "level=ERROR msg=", "violations are not logged as server errors")
}

func TestKubernetesModeReaderSubscribesOnly(t *testing.T) {
	e := startKube(t, authn.Options{}, time.Hour)
	reader, err := e.connect(t, nats.Token(e.readerToken("reader")))
	require.NoError(t, err)
	got, err := reader.nc.SubscribeSync("k8smon.>")
	require.NoError(t, err)
	require.NoError(t, reader.nc.Publish("k8smon.node.node-a.report", []byte("forged")))
	require.NoError(t, reader.nc.Flush())
	require.Eventually(t, func() bool { return e.counter("k8smon_nats_permission_violations_total", "publish") == 1 },
		5*time.Second, 10*time.Millisecond)

	// The aggregator's in-process connection has every right.
	own, err := nats.Connect("", e.srv.InProcessOption())
	require.NoError(t, err)
	defer own.Close()
	require.NoError(t, own.Publish("k8smon.cluster.event", []byte("health")))
	msg, err := got.NextMsg(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "health", string(msg.Data))
	roundTrip(t, own)
}

func TestKubernetesModeRefuses(t *testing.T) {
	e := startKube(t, authn.Options{}, time.Hour, agentPodOn("agent-c", "uid-c", "node-c"))
	unbound := authntest.JWT(time.Now().Add(time.Hour), "unbound")
	e.api.AddToken(unbound, authntest.Token{User: authntest.ServiceAccount("team-a", "default", nil), Audiences: []string{audience}})
	wrongAudience := authntest.JWT(time.Now().Add(time.Hour), "api-audience")
	e.api.AddToken(wrongAudience, authntest.Token{User: authntest.ServiceAccount(agentNS, agentSA, authntest.PodBound("agent-c", "uid-c", "node-c"))})

	tests := []struct {
		name   string
		opts   []nats.Option
		reason string
	}{
		{"anonymous", nil, "invalid_token"},
		{"user and password", []nats.Option{nats.UserInfo("admin", "admin")}, "invalid_token"},
		{"forged token", []nats.Option{nats.Token("forged")}, "invalid_token"},
		{"the API server's audience", []nats.Option{nats.Token(wrongAudience)}, "invalid_token"},
		{"unbound account", []nats.Option{nats.Token(unbound)}, "no_rights"},
		{"agent token of a pod that is gone", []nats.Option{nats.Token(e.agentToken("agent-gone", "uid-gone", "", time.Now().Add(time.Hour)))}, "pod_unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.counter("k8smon_nats_auth_refused_total", tt.reason)
			_, err := e.connect(t, tt.opts...)
			require.ErrorIs(t, err, nats.ErrAuthorization)
			assert.Equal(t, before+1, e.counter("k8smon_nats_auth_refused_total", tt.reason))
		})
	}

	// Without a node claim, the pod's node from the informer.
	c, err := e.connect(t, nats.Token(e.agentToken("agent-c", "uid-c", "", time.Now().Add(time.Hour))))
	require.NoError(t, err)
	require.NoError(t, c.nc.Publish("k8smon.node.node-c.report", []byte("c")))
	require.NoError(t, c.nc.Flush())
	assert.Empty(t, c.errors())

	// The API server down: refused, never let in.
	e.api.SetDown(true)
	_, err = e.connect(t, nats.Token(e.readerToken("late")))
	require.ErrorIs(t, err, nats.ErrAuthorization)
	assert.Equal(t, 1.0, e.counter("k8smon_nats_auth_refused_total", "unavailable"))
}

func TestKubernetesModeClosesEndedIdentities(t *testing.T) {
	e := startKube(t, authn.Options{AllowedTTL: time.Millisecond, TokenTTL: time.Millisecond}, 50*time.Millisecond,
		agentPodOn("agent-d", "uid-d", "node-d"), agentPodOn("agent-e", "uid-e", "node-e"))

	t.Run("pod deleted", func(t *testing.T) {
		c, err := e.connect(t, nats.Token(e.agentToken("agent-d", "uid-d", "node-d", time.Now().Add(time.Hour))))
		require.NoError(t, err)
		require.NoError(t, e.client.CoreV1().Pods(agentNS).Delete(context.Background(), "agent-d", metav1.DeleteOptions{}))
		waitClosed(t, c)
		assert.Equal(t, 1.0, e.counter("k8smon_nats_auth_closed_total", "pod_deleted"))
	})
	t.Run("token expired", func(t *testing.T) {
		// JWT exp has second resolution: at least a second ahead.
		c, err := e.connect(t, nats.Token(e.agentToken("agent-e", "uid-e", "node-e", time.Now().Add(2*time.Second))))
		require.NoError(t, err)
		waitClosed(t, c)
	})
	t.Run("read rights revoked", func(t *testing.T) {
		c, err := e.connect(t, nats.Token(e.readerToken("revoked")))
		require.NoError(t, err)
		e.api.Grant("system:serviceaccount:team-a:revoked")
		waitClosed(t, c)
		assert.Equal(t, 1.0, e.counter("k8smon_nats_auth_closed_total", "revoked"))
	})
	t.Run("API server down keeps connections", func(t *testing.T) {
		c, err := e.connect(t, nats.Token(e.readerToken("steady")))
		require.NoError(t, err)
		e.api.SetDown(true)
		defer e.api.SetDown(false)
		before, _ := e.api.Counts()
		require.Eventually(t, func() bool { n, _ := e.api.Counts(); return n > before+2 }, 5*time.Second, 10*time.Millisecond,
			"rechecks keep asking")
		assert.True(t, c.nc.IsConnected())
	})
}

func waitClosed(t *testing.T, c *client) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
}

func TestViolationMetricsExistInEveryMode(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger, _ := testLogger(t)
	s, err := Start(config.NATSConfig{Listen: "127.0.0.1:0"}, logger, WithRegisterer(reg))
	require.NoError(t, err)
	defer s.Shutdown()
	n, err := testutil.GatherAndCount(reg, "k8smon_nats_permission_violations_total")
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	_, err = Start(config.NATSConfig{Listen: "127.0.0.1:0", AuthMode: config.AuthKubernetes}, logger)
	require.ErrorIs(t, err, ErrConfig, "kubernetes mode without rules")
}
