package natsserver

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsauth"
)

// Option configures Start beyond the nats: block.
type Option func(*startOptions)

type startOptions struct {
	rules   *natsauth.Rules
	pods    PodEvents
	reg     prometheus.Registerer
	recheck time.Duration
	// jetStream runs JetStream with its store in storeDir (see JetStream).
	jetStream bool
	storeDir  string
}

// PodEvents reports deleted agent pods (natsauth.PodWatcher).
type PodEvents interface {
	OnDelete(fn func(uid string))
}

// WithKubernetes checks every client's token with rules (nats.auth_mode
// kubernetes). pods, when not nil, closes an agent's connection as soon as
// its pod is deleted.
func WithKubernetes(rules *natsauth.Rules, pods PodEvents) Option {
	return func(o *startOptions) { o.rules, o.pods = rules, pods }
}

// WithRegisterer registers the server's identity metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *startOptions) { o.reg = reg }
}

// WithRecheck sets how often open connections' tokens are reviewed again
// (default DefaultRecheck).
func WithRecheck(d time.Duration) Option {
	return func(o *startOptions) { o.recheck = d }
}

// DefaultRecheck is how often every open connection's token and rights are
// reviewed again (through the review caches), so a revoked binding or a
// rejected token ends its connection.
const DefaultRecheck = time.Minute

// authTimeout bounds one client's reviews; the client waits meanwhile.
const authTimeout = 10 * time.Second

// internalUser is the aggregator's own in-process connection.
const internalUser = "k8smon-aggregator"

// kubeAuth is the embedded server's custom client authentication in
// kubernetes mode.
type kubeAuth struct {
	rules    *natsauth.Rules
	internal string // the in-process connection's token, never leaves the process
	logger   *slog.Logger
	limit    *authn.LogLimiter

	m violationMetrics

	mu    sync.Mutex
	ns    *server.Server
	conns map[uint64]*authConn // by client id
}

// authConn is one authenticated client.
type authConn struct {
	grant  *natsauth.Grant
	token  string
	warned bool // a violation was logged
}

var _ server.Authentication = (*kubeAuth)(nil)

func newKubeAuth(rules *natsauth.Rules, m violationMetrics, logger *slog.Logger) *kubeAuth {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // crypto/rand does not fail
	return &kubeAuth{
		rules: rules, internal: hex.EncodeToString(secret), logger: logger, limit: authn.NewLogLimiter(time.Minute),
		m: m, conns: map[uint64]*authConn{},
	}
}

// violationMetrics are the identity counters; they exist in every mode so
// dashboards see zeros rather than gaps.
type violationMetrics struct {
	refused, violations, closed *prometheus.CounterVec
}

func newViolationMetrics() violationMetrics {
	m := violationMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "nats", Name: "auth_refused_total",
			Help: "NATS connections refused in kubernetes mode, by reason (invalid_token, no_rights, pod_unknown, unavailable).",
		}, []string{"reason"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "nats", Name: "permission_violations_total",
			Help: "Publishes and subscriptions the embedded NATS server refused, by reason (publish, subscribe).",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "nats", Name: "auth_closed_total",
			Help: "NATS connections closed because their identity ended, by reason (pod_deleted, revoked).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"invalid_token", "no_rights", "pod_unknown", "unavailable"} {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"publish", "subscribe"} {
		m.violations.WithLabelValues(r)
	}
	for _, r := range []string{"pod_deleted", "revoked"} {
		m.closed.WithLabelValues(r)
	}
	return m
}

// Check authenticates one client at CONNECT and registers its rights.
func (a *kubeAuth) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	token := c.GetOpts().Token
	if subtle.ConstantTimeCompare([]byte(token), []byte(a.internal)) == 1 {
		c.RegisterUser(&server.User{Username: internalUser})
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	g, err := a.rules.Grant(ctx, token)
	if err != nil {
		reason := natsauth.Reason(err)
		a.m.refused.WithLabelValues(reason).Inc()
		if n, ok := a.limit.Allow("refused-" + reason); ok {
			a.logger.Warn("NATS connection refused", "reason", reason, "remote", remote(c), "error", err, "suppressedSinceLast", n)
		}
		return false
	}
	c.RegisterUser(&server.User{
		Username:           g.Identity.Username,
		Permissions:        permissions(g),
		ConnectionDeadline: g.Identity.Expires, // the token's expiry: reconnect with the rotated one
	})
	a.mu.Lock()
	a.conns[c.GetID()] = &authConn{grant: g, token: token}
	a.mu.Unlock()
	a.logger.Debug("NATS client authenticated", "cid", c.GetID(), "grant", g.String(), "remote", remote(c), "expires", g.Identity.Expires)
	return true
}

func remote(c server.ClientAuthentication) string {
	if a := c.RemoteAddress(); a != nil {
		return a.String()
	}
	return "in-process"
}

// permissions turns a grant into the server's subject permissions.
func permissions(g *natsauth.Grant) *server.Permissions {
	p := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: g.Publish},
		Subscribe: &server.SubjectPermission{Allow: g.Subscribe},
	}
	if len(g.Publish) == 0 {
		p.Publish = &server.SubjectPermission{Deny: []string{">"}}
	}
	return p
}

// violationRE reads the server's violation log lines:
// `<addr> - cid:7 - "name" - Publish Violation - Subject "k8smon.node.b.report"`.
var violationRE = regexp.MustCompile(`cid:(\d+) .*(Publish|Subscription) Violation.*?(?:Subject|Reply) "([^"]*)"`)

// violation counts a permission violation the server logged and logs it
// once per client, with the client's identity. It reports whether msg was
// a violation.
func (a *kubeAuth) violation(msg string) bool {
	m := violationRE.FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	reason := "publish"
	if m[2] == "Subscription" {
		reason = "subscribe"
	}
	a.m.violations.WithLabelValues(reason).Inc()
	cid, _ := strconv.ParseUint(m[1], 10, 64)
	a.mu.Lock()
	c := a.conns[cid]
	first := c != nil && !c.warned
	if first {
		c.warned = true
	}
	a.mu.Unlock()
	switch {
	case first:
		a.logger.Warn("NATS permission violation; further ones of this client are only counted",
			"reason", reason, "subject", m[3], "cid", cid, "client", c.grant.String(), "allowedPublish", c.grant.Publish)
	case c == nil:
		if n, ok := a.limit.Allow("violation-unknown"); ok {
			a.logger.Warn("NATS permission violation", "reason", reason, "subject", m[3], "cid", cid, "suppressedSinceLast", n)
		}
	}
	return true
}

// podDeleted closes the connections of the agent pod uid.
func (a *kubeAuth) podDeleted(uid string) {
	if uid == "" {
		return
	}
	a.mu.Lock()
	var cids []uint64
	for cid, c := range a.conns {
		if c.grant.PodUID == uid {
			cids = append(cids, cid)
		}
	}
	a.mu.Unlock()
	a.disconnect("pod_deleted", cids)
}

// disconnect closes the clients cids and forgets them.
func (a *kubeAuth) disconnect(reason string, cids []uint64) {
	for _, cid := range cids {
		a.mu.Lock()
		ns, c := a.ns, a.conns[cid]
		delete(a.conns, cid)
		a.mu.Unlock()
		if c == nil || ns == nil || ns.DisconnectClientByID(cid) != nil {
			continue // already gone
		}
		a.m.closed.WithLabelValues(reason).Inc()
		a.logger.Info("NATS connection closed: its identity ended", "reason", reason, "cid", cid, "client", c.grant.String())
	}
}

// recheck forgets closed clients and reviews the open ones again, closing
// those whose token or rights are gone. An API server that cannot be asked
// keeps connections open: an outage must not disconnect every agent.
func (a *kubeAuth) recheck(ctx context.Context) {
	a.mu.Lock()
	ns := a.ns
	open := make(map[uint64]*authConn, len(a.conns))
	for cid, c := range a.conns {
		if ns != nil && ns.GetClient(cid) == nil {
			delete(a.conns, cid)
			continue
		}
		open[cid] = c
	}
	a.mu.Unlock()
	var revoked []uint64
	for cid, c := range open {
		rctx, cancel := context.WithTimeout(ctx, authTimeout)
		g, err := a.rules.Grant(rctx, c.token)
		cancel()
		if (err != nil && !errors.Is(err, authn.ErrUnavailable)) || (err == nil && !sameRights(g, c.grant)) {
			revoked = append(revoked, cid)
		}
	}
	a.disconnect("revoked", revoked)
}

func sameRights(a, b *natsauth.Grant) bool {
	return a.Role == b.Role && a.Node == b.Node && a.PodUID == b.PodUID
}

// loop rechecks every interval until ctx ends.
func (a *kubeAuth) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.recheck(ctx)
		}
	}
}

// inProcessOption connects the aggregator's own client with full rights.
func (a *kubeAuth) inProcessOption(ns *server.Server) nats.Option {
	return func(o *nats.Options) error {
		o.InProcessServer = ns
		o.Token, o.TokenHandler = a.internal, nil
		o.User, o.Password, o.UserJWT, o.Nkey = "", "", nil, ""
		return nil
	}
}
