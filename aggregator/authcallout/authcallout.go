// Package authcallout applies the product's Kubernetes identity rules
// (aggregator/natsauth) on an external NATS server, as its auth callout
// service: the server asks on $SYS.REQ.USER.AUTH about every client that
// is not one of its auth_users, and the aggregator answers with a user JWT
// carrying that client's permissions, signed with the account key the
// server's auth_callout.issuer names. docs/security.md shows the server
// configuration.
package authcallout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsauth"
)

// Subject is where a NATS server sends its authorization requests.
const Subject = "$SYS.REQ.USER.AUTH"

// queue spreads requests over several aggregator replicas: each is
// answered once.
const queue = "k8smon-auth-callout"

// DefaultMaxUserTTL bounds the user JWTs handed out, whatever the token's
// own expiry: the server closes the connection at the JWT's expiry and the
// client reconnects with its current token, so a deleted pod or a revoked
// binding loses NATS within this time. (The aggregator cannot close
// connections on a server it does not run.)
const DefaultMaxUserTTL = 10 * time.Minute

// reviewTimeout bounds one request's reviews; the server's own
// authorization timeout should be longer.
const reviewTimeout = 5 * time.Second

// DefaultAccount is the account users are placed in on a server without
// operator mode: its global account.
const DefaultAccount = "$G"

// Options configure a Service.
type Options struct {
	Rules *natsauth.Rules
	// Issuer signs the responses and user JWTs: an account key pair whose
	// public key the server's auth_callout.issuer names.
	Issuer nkeys.KeyPair
	// Account the users are placed in; empty: DefaultAccount.
	Account string
	// MaxUserTTL bounds user JWT lifetimes; zero: DefaultMaxUserTTL.
	MaxUserTTL time.Duration
	Logger     *slog.Logger
	// Registerer receives the request counter; nil skips it.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Service answers a NATS server's authorization requests.
type Service struct {
	o        Options
	requests *prometheus.CounterVec
	limit    *authn.LogLimiter
	sub      *nats.Subscription
}

// New returns a service; Start subscribes it.
func New(o Options) (*Service, error) {
	if o.Rules == nil || o.Issuer == nil {
		return nil, errors.New("auth callout: rules and an issuer key are required")
	}
	if pub, err := o.Issuer.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("auth callout: the issuer must be an account key (public key starting with A): %q", pub)
	}
	if o.Account == "" {
		o.Account = DefaultAccount
	}
	if o.MaxUserTTL <= 0 {
		o.MaxUserTTL = DefaultMaxUserTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, limit: authn.NewLogLimiter(time.Minute), requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "k8smon", Subsystem: "nats", Name: "callout_requests_total",
		Help: "Authorization requests of an external NATS server answered by the aggregator, by result (allowed, invalid_token, no_rights, pod_unknown, unavailable, bad_request).",
	}, []string{"result"})}
	for _, r := range []string{"allowed", "invalid_token", "no_rights", "pod_unknown", "unavailable", "bad_request"} {
		s.requests.WithLabelValues(r)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.requests)
	}
	return s, nil
}

// Start subscribes to the server's authorization requests on nc, which must
// be one of the server's auth_users.
func (s *Service) Start(nc *nats.Conn) error {
	sub, err := nc.QueueSubscribe(Subject, queue, s.handle)
	if err != nil {
		return fmt.Errorf("subscribe to %s for the auth callout: %w", Subject, err)
	}
	s.sub = sub
	pub, _ := s.o.Issuer.PublicKey()
	s.o.Logger.Info("answering the NATS server's authorization requests", "subject", Subject, "issuer", pub, "account", s.o.Account)
	return nil
}

// Stop unsubscribes.
func (s *Service) Stop() error {
	if s.sub == nil {
		return nil
	}
	return s.sub.Unsubscribe()
}

func (s *Service) handle(m *nats.Msg) {
	resp, result := s.answer(m.Data)
	s.requests.WithLabelValues(result).Inc()
	if resp == nil {
		return
	}
	if err := m.Respond(resp); err != nil {
		s.o.Logger.Warn("answer an authorization request", "error", err)
	}
}

// answer decides one request; it returns the signed response (nil when the
// request cannot be answered) and the result label.
func (s *Service) answer(data []byte) ([]byte, string) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		if n, ok := s.limit.Allow("bad_request"); ok {
			s.o.Logger.Warn("undecodable authorization request", "error", err, "suppressedSinceLast", n)
		}
		return nil, "bad_request"
	}
	ctx, cancel := context.WithTimeout(context.Background(), reviewTimeout)
	defer cancel()
	g, err := s.o.Rules.Grant(ctx, req.ConnectOptions.Token)
	if err != nil {
		reason := natsauth.Reason(err)
		if n, ok := s.limit.Allow(reason); ok {
			s.o.Logger.Warn("NATS connection refused", "reason", reason, "remote", req.ClientInformation.Host, "error", err, "suppressedSinceLast", n)
		}
		return s.respond(req, "", reason), reason
	}
	user, err := s.userJWT(req, g)
	if err != nil {
		s.o.Logger.Error("sign a user JWT", "error", err)
		return s.respond(req, "", "internal error"), "unavailable"
	}
	s.o.Logger.Debug("NATS client authorized", "grant", g.String(), "remote", req.ClientInformation.Host)
	return s.respond(req, user, ""), "allowed"
}

// userJWT carries the grant's permissions for the user nkey the server
// assigned to the connection.
func (s *Service) userJWT(req *jwt.AuthorizationRequestClaims, g *natsauth.Grant) (string, error) {
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = g.Identity.Username
	uc.Audience = s.o.Account
	uc.Sub.Allow.Add(g.Subscribe...)
	if len(g.Publish) == 0 {
		uc.Pub.Deny.Add(">")
	} else {
		uc.Pub.Allow.Add(g.Publish...)
	}
	exp := s.o.Now().Add(s.o.MaxUserTTL)
	if t := g.Identity.Expires; !t.IsZero() && t.Before(exp) {
		exp = t
	}
	uc.Expires = exp.Unix()
	return uc.Encode(s.o.Issuer)
}

// respond signs the response: a user JWT, or an error the server logs.
func (s *Service) respond(req *jwt.AuthorizationRequestClaims, userJWT, errMsg string) []byte {
	rc := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	rc.Audience = req.Server.ID
	rc.Jwt = userJWT
	rc.Error = errMsg
	out, err := rc.Encode(s.o.Issuer)
	if err != nil {
		s.o.Logger.Error("sign an authorization response", "error", err)
		return nil
	}
	return []byte(out)
}
