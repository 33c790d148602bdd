package authcallout

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
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
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
)

const (
	agentNS  = "mon"
	agentSA  = "mon-agent"
	audience = "k8s-llm-monitor"
)

// calloutEnv is a NATS server configured with an auth callout (the same
// server code a nats-server process runs, configured in process), the
// aggregator's callout service on it, and a fake API server.
type calloutEnv struct {
	ns     *server.Server
	own    *nats.Conn // the aggregator's connection, an auth user
	api    *authntest.API
	client *fake.Clientset
	svc    *Service
	reg    *prometheus.Registry
}

func startCallout(t *testing.T, maxTTL time.Duration) *calloutEnv {
	t.Helper()
	issuer, err := nkeys.CreateAccount()
	require.NoError(t, err)
	issuerPub, err := issuer.PublicKey()
	require.NoError(t, err)
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, JetStream: true, StoreDir: t.TempDir(),
		Users:       []*server.User{{Username: "aggregator", Password: "pw"}},
		AuthCallout: &server.AuthCallout{Issuer: issuerPub, AuthUsers: []string{"aggregator"}},
	})
	require.NoError(t, err)
	ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(5*time.Second))

	e := &calloutEnv{ns: ns, api: authntest.New(), reg: prometheus.NewRegistry()}
	e.client = e.api.Client(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "agent-a", UID: types.UID("uid-a")},
		Spec:       corev1.PodSpec{NodeName: "node-a.example.com", ServiceAccountName: agentSA},
	})
	logger := slog.New(slog.DiscardHandler)
	client := e.client
	pods := natsauth.NewPodWatcher(client, agentNS, agentSA, logger)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pods.Start(ctx)
	rules := natsauth.New(natsauth.Options{
		Reviewer: authn.NewReviewer(client, authn.Options{}), Audience: audience, Prefix: "k8smon",
		AgentNamespace: agentNS, AgentServiceAccount: agentSA, Pods: pods, Logger: logger,
	})
	e.svc, err = New(Options{Rules: rules, Issuer: issuer, MaxUserTTL: maxTTL, Registerer: e.reg, Logger: logger})
	require.NoError(t, err)
	own, err := nats.Connect(ns.ClientURL(), nats.UserInfo("aggregator", "pw"))
	require.NoError(t, err)
	t.Cleanup(own.Close)
	require.NoError(t, e.svc.Start(own))
	require.NoError(t, own.Flush())
	e.own = own
	return e
}

func (e *calloutEnv) token(user string, extra map[string][]string, exp time.Time) string {
	tok := authntest.JWT(exp, user)
	ui := authntest.ServiceAccount(agentNS, agentSA, nil)
	if user != agentSA {
		ui = authntest.ServiceAccount("team-a", user, nil)
		e.api.Grant(ui.Username, authn.DefaultPathPrefix+natsauth.ReadPath)
	} else {
		ui = authntest.ServiceAccount(agentNS, agentSA, authntest.PodBound("agent-a", "uid-a", "node-a.example.com"))
	}
	e.api.AddToken(tok, authntest.Token{User: ui, Audiences: []string{audience}})
	return tok
}

type conn struct {
	nc     *nats.Conn
	mu     sync.Mutex
	errs   []string
	closed chan struct{}
}

func (e *calloutEnv) connect(t *testing.T, opts ...nats.Option) (*conn, error) {
	t.Helper()
	c := &conn{closed: make(chan struct{})}
	opts = append(opts, nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
	nc, err := nats.Connect(e.ns.ClientURL(), opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c, nil
}

func (c *conn) errors() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

func TestCalloutAppliesTheIdentityRules(t *testing.T) {
	e := startCallout(t, 0)
	reader, err := e.connect(t, nats.Token(e.token("reader", nil, time.Now().Add(time.Hour))))
	require.NoError(t, err)
	got, err := reader.nc.SubscribeSync("k8smon.>")
	require.NoError(t, err)
	require.NoError(t, reader.nc.Flush())

	agent, err := e.connect(t, nats.Token(e.token(agentSA, nil, time.Now().Add(time.Hour))))
	require.NoError(t, err)
	require.NoError(t, agent.nc.Publish("k8smon.node.node-a_example_com.report", []byte("own")))
	require.NoError(t, agent.nc.Publish("k8smon.node.node-b.report", []byte("forged")))
	require.NoError(t, agent.nc.Flush())
	msg, err := got.NextMsg(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "own", string(msg.Data))
	require.Eventually(t, func() bool { return strings.Contains(agent.errors(), "Permissions Violation for Publish") },
		5*time.Second, 10*time.Millisecond)
	_, err = got.NextMsg(100 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "the forged report never arrives")

	require.NoError(t, reader.nc.Publish("k8smon.node.node-a_example_com.report", []byte("reader")))
	require.NoError(t, reader.nc.Flush())
	require.Eventually(t, func() bool { return strings.Contains(reader.errors(), "Permissions Violation for Publish") },
		5*time.Second, 10*time.Millisecond, "readers publish nothing")

	for name, opts := range map[string][]nats.Option{
		"anonymous":     nil,
		"forged token":  {nats.Token("forged")},
		"user password": {nats.UserInfo("admin", "admin")},
	} {
		_, err := e.connect(t, opts...)
		assert.Error(t, err, name)
	}
	assert.Equal(t, 2.0, testutil.ToFloat64(e.svc.requests.WithLabelValues("allowed")))
	assert.Equal(t, 3.0, testutil.ToFloat64(e.svc.requests.WithLabelValues("invalid_token")))
}

// A reader authorized by the callout replays the Events stream and cannot
// delete it: the same rights as on the embedded server.
func TestCalloutReaderReplaysStreams(t *testing.T) {
	e := startCallout(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := streams.Ensure(ctx, e.own, streams.Config{Prefix: "k8smon", ReportsMaxAge: time.Hour, EventsMaxAge: time.Hour, Replicas: 1},
		slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ownJS, err := jetstream.New(e.own)
	require.NoError(t, err)
	_, err = ownJS.Publish(ctx, "k8smon.node.node-a.event", []byte("kept"))
	require.NoError(t, err)

	reader, err := e.connect(t, nats.Token(e.token("reader", nil, time.Now().Add(time.Hour))))
	require.NoError(t, err)
	js, err := jetstream.New(reader.nc)
	require.NoError(t, err)
	events := streams.EventsName("k8smon")
	cons, err := js.OrderedConsumer(ctx, events, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err, reader.errors())
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err, reader.errors())
	assert.Equal(t, "kept", string(msg.Data()))
	require.Empty(t, reader.errors())

	dctx, dcancel := context.WithTimeout(ctx, time.Second)
	defer dcancel()
	require.Error(t, js.DeleteStream(dctx, events))
	require.Eventually(t, func() bool {
		return strings.Contains(reader.errors(), `Permissions Violation for Publish to "$JS.API.STREAM.DELETE.`)
	},
		5*time.Second, 10*time.Millisecond)
	s, err := ownJS.Stream(ctx, events)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), s.CachedInfo().State.Msgs)
}

// A user JWT lives at most MaxUserTTL: the server then closes the
// connection, and the client must come back with a token that still holds;
// a deleted pod's token does not.
func TestCalloutUsersExpire(t *testing.T) {
	e := startCallout(t, 2*time.Second)
	tok := e.token(agentSA, nil, time.Now().Add(time.Hour))
	c, err := e.connect(t, nats.Token(tok))
	require.NoError(t, err)
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived its user JWT")
	}
	c, err = e.connect(t, nats.Token(tok))
	require.NoError(t, err, "the token still holds: back in")
	c.nc.Close()

	require.NoError(t, e.client.CoreV1().Pods(agentNS).Delete(context.Background(), "agent-a", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, err := e.connect(t, nats.Token(tok))
		return err != nil
	}, 10*time.Second, 50*time.Millisecond, "a deleted pod's token is refused")
}

func TestNewRejectsAUserKeyAsIssuer(t *testing.T) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	_, err = New(Options{Rules: natsauth.New(natsauth.Options{}), Issuer: kp})
	require.ErrorContains(t, err, "account key")
}
