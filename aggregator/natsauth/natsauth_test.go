package natsauth

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn/authntest"
)

const (
	agentNS  = "k8s-llm-monitor"
	agentSA  = "k8s-llm-monitor-agent"
	audience = "k8s-llm-monitor"
)

func agentPod(name, uid, node, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: name, UID: types.UID(uid)},
		Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: sa},
	}
}

// rules builds the rules over a fake API server that knows the given
// tokens and pods, with a started pod watcher.
func rules(t *testing.T, api *authntest.API, pods ...runtime.Object) *Rules {
	t.Helper()
	client := api.Client(pods...)
	w := NewPodWatcher(client, agentNS, agentSA, discard())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w.Start(ctx)
	return New(Options{
		Reviewer: authn.NewReviewer(client, authn.Options{}), Audience: audience, Prefix: "k8smon",
		AgentNamespace: agentNS, AgentServiceAccount: agentSA, Pods: w, Logger: discard(),
	})
}

func token(api *authntest.API, tok string, user authenticationv1.UserInfo, audiences ...string) string {
	if len(audiences) == 0 {
		audiences = []string{audience}
	}
	api.AddToken(tok, authntest.Token{User: user, Audiences: audiences})
	return tok
}

func TestGrant(t *testing.T) {
	api := authntest.New()
	sa := authntest.ServiceAccount
	bound := authntest.PodBound
	r := rules(t, api,
		agentPod("agent-x", "uid-x", "worker-1.example.com", agentSA),
		agentPod("agent-old", "uid-old", "worker-3.example.com", agentSA),
		agentPod("agent-unscheduled", "uid-unscheduled", "", agentSA))
	api.Grant("system:serviceaccount:team-a:reader", authn.DefaultPathPrefix+ReadPath)
	api.Grant("alice", authn.DefaultPathPrefix+ReadPath)
	// What Kubernetes' default discovery role grants every identity.
	api.Grant("system:serviceaccount:team-a:default", "/api", "/api/*", "/apis/*", ReadPath)

	tests := []struct {
		name      string
		token     string
		wantErr   error
		role      Role
		node      string
		publish   []string
		subscribe []string
	}{
		{name: "agent with a node claim, dotted node name",
			token: token(api, "a1", sa(agentNS, agentSA, bound("agent-x", "uid-x", "worker-1.example.com"))),
			role:  RoleAgent, node: "worker-1.example.com",
			publish:   []string{"k8smon.node.worker-1_example_com.report", "k8smon.node.worker-1_example_com.event"},
			subscribe: []string{"_INBOX.>"}},
		{name: "agent without a node claim: its pod's node",
			token: token(api, "a2", sa(agentNS, agentSA, bound("agent-old", "uid-old", ""))),
			role:  RoleAgent, node: "worker-3.example.com",
			publish:   []string{"k8smon.node.worker-3_example_com.report", "k8smon.node.worker-3_example_com.event"},
			subscribe: []string{"_INBOX.>"}},
		{name: "agent token claiming another node than its pod's",
			token:   token(api, "a0", sa(agentNS, agentSA, bound("agent-x", "uid-x", "worker-9.example.com"))),
			wantErr: ErrPodUnknown},
		{name: "agent token with a node claim whose pod is gone",
			token:   token(api, "a9", sa(agentNS, agentSA, bound("agent-y", "uid-y", "worker-1.example.com"))),
			wantErr: ErrPodUnknown},
		{name: "agent token of a replaced pod (same name, other uid)",
			token:   token(api, "a3", sa(agentNS, agentSA, bound("agent-old", "uid-before", ""))),
			wantErr: ErrPodUnknown},
		{name: "agent token of a deleted pod",
			token:   token(api, "a4", sa(agentNS, agentSA, bound("agent-gone", "uid-gone", ""))),
			wantErr: ErrPodUnknown},
		{name: "agent token of an unscheduled pod",
			token:   token(api, "a5", sa(agentNS, agentSA, bound("agent-unscheduled", "uid-unscheduled", ""))),
			wantErr: ErrPodUnknown},
		{name: "agents' account, token not bound to a pod",
			token:   token(api, "a6", sa(agentNS, agentSA, nil)),
			wantErr: ErrNoRights},
		{name: "another namespace's account of the same name, bound to a pod",
			token:   token(api, "a7", sa("other", agentSA, bound("agent-x", "uid-x", "worker-1.example.com"))),
			wantErr: ErrNoRights},
		{name: "a user whose authenticator sets pod extras",
			token:   token(api, "a8", authenticationv1.UserInfo{Username: "mallory", Extra: bound("agent-x", "uid-x", "worker-1.example.com")}),
			wantErr: ErrNoRights},
		{name: "reader service account",
			token: token(api, "r1", sa("team-a", "reader", nil)),
			role:  RoleReader, publish: ReaderJetStream("k8smon"), subscribe: []string{"k8smon.>", "_INBOX.>"}},
		{name: "reader user",
			token: token(api, "r2", authenticationv1.UserInfo{Username: "alice"}),
			role:  RoleReader, publish: ReaderJetStream("k8smon"), subscribe: []string{"k8smon.>", "_INBOX.>"}},
		{name: "discovery rights and an unprefixed grant give no NATS rights",
			token:   token(api, "u1", sa("team-a", "default", nil)),
			wantErr: ErrNoRights},
		{name: "agent token with the API server's audience",
			token:   token(api, "w1", sa(agentNS, agentSA, bound("agent-x", "uid-x", "worker-1.example.com")), authntest.APIAudience),
			wantErr: ErrInvalidToken},
		{name: "unknown token", token: "forged", wantErr: ErrInvalidToken},
		{name: "no token", token: "", wantErr: ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := r.Grant(context.Background(), tt.token)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, g)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.role, g.Role)
			assert.Equal(t, tt.node, g.Node)
			assert.Equal(t, tt.publish, g.Publish)
			assert.Equal(t, tt.subscribe, g.Subscribe)
		})
	}
}

func TestGrantUnavailable(t *testing.T) {
	api := authntest.New()
	r := rules(t, api)
	tok := token(api, "r1", authntest.ServiceAccount("team-a", "reader", nil))
	api.SetDown(true)
	_, err := r.Grant(context.Background(), tok)
	require.ErrorIs(t, err, authn.ErrUnavailable)
	assert.Equal(t, "unavailable", Reason(err))
}

func TestReason(t *testing.T) {
	assert.Equal(t, "invalid_token", Reason(ErrInvalidToken))
	assert.Equal(t, "no_rights", Reason(ErrNoRights))
	assert.Equal(t, "pod_unknown", Reason(ErrPodUnknown))
}

func TestPodWatcherReportsDeletions(t *testing.T) {
	api := authntest.New()
	client := api.Client(agentPod("agent-1", "uid-1", "n1", agentSA))
	w := NewPodWatcher(client, agentNS, agentSA, discard())
	deleted := make(chan string, 1)
	w.OnDelete(func(uid string) { deleted <- uid })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.Start(ctx)
	node, ok, err := w.NodeOf(ctx, "agent-1", "uid-1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "n1", node)

	require.NoError(t, client.CoreV1().Pods(agentNS).Delete(ctx, "agent-1", metav1.DeleteOptions{}))
	select {
	case uid := <-deleted:
		assert.Equal(t, "uid-1", uid)
	case <-time.After(10 * time.Second):
		t.Fatal("no deletion reported")
	}
	_, ok, err = w.NodeOf(ctx, "agent-1", "uid-1")
	require.NoError(t, err)
	assert.False(t, ok)
}

// TestReaderJetStream checks, with the server's own subject matching, what
// a reader's publish permissions let through: the requests that replay the
// product's streams, and none that writes, deletes or reaches another
// stream.
func TestReaderJetStream(t *testing.T) {
	allowed := ReaderJetStream("k8smon")
	tests := []struct {
		subject string
		allow   bool
	}{
		{"$JS.API.INFO", true},
		{"$JS.API.STREAM.NAMES", true},
		{"$JS.API.STREAM.LIST", true},
		{"$JS.API.STREAM.INFO.K8SMON_EVENTS", true},
		{"$JS.API.STREAM.INFO.K8SMON_REPORTS", true},
		{"$JS.API.CONSUMER.CREATE.K8SMON_EVENTS", true},
		{"$JS.API.CONSUMER.CREATE.K8SMON_EVENTS.abc_1", true},
		{"$JS.API.CONSUMER.CREATE.K8SMON_EVENTS.abc_1.k8smon.node.*.event", true},
		{"$JS.API.CONSUMER.INFO.K8SMON_REPORTS.abc_1", true},
		{"$JS.API.CONSUMER.MSG.NEXT.K8SMON_REPORTS.abc_1", true},
		{"$JS.API.CONSUMER.DELETE.K8SMON_EVENTS.abc_1", true},
		{"$JS.FC.K8SMON_EVENTS.abc.xyz", true},

		{"k8smon.node.a.report", false},
		{"k8smon.node.a.event", false},
		{"k8smon.cluster.event", false},
		{"$JS.API.STREAM.CREATE.K8SMON_EVENTS", false},
		{"$JS.API.STREAM.CREATE.OTHER", false},
		{"$JS.API.STREAM.UPDATE.K8SMON_EVENTS", false},
		{"$JS.API.STREAM.DELETE.K8SMON_EVENTS", false},
		{"$JS.API.STREAM.PURGE.K8SMON_REPORTS", false},
		{"$JS.API.STREAM.MSG.DELETE.K8SMON_EVENTS", false},
		{"$JS.API.STREAM.SNAPSHOT.K8SMON_EVENTS", false},
		{"$JS.API.STREAM.RESTORE.K8SMON_EVENTS", false},
		{"$JS.API.STREAM.INFO.KV_K8SMON_LEADER", false},
		{"$JS.API.CONSUMER.CREATE.KV_K8SMON_LEADER", false},
		{"$JS.API.CONSUMER.DURABLE.CREATE.K8SMON_EVENTS.mine", false},
		{"$JS.API.CONSUMER.PAUSE.K8SMON_EVENTS.abc_1", false},
		{"$JS.API.CONSUMER.LEADER.STEPDOWN.K8SMON_EVENTS.abc_1", false},
		{"$JS.ACK.K8SMON_EVENTS.durable.1.2.2.0.0", false},
		{"$KV.K8SMON_LEADER.publisher", false},
		{"$JS.API.STREAM.LEADER.STEPDOWN.K8SMON_EVENTS", false},
		{"$JS.API.META.LEADER.STEPDOWN", false},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			match := false
			for _, filter := range allowed {
				match = match || server.SubjectMatchesFilter(tt.subject, filter)
			}
			assert.Equal(t, tt.allow, match)
		})
	}
}
