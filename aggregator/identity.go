package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authcallout"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/kube"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsauth"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsserver"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

// Review client limits: they bound how hard clients presenting tokens can
// make the aggregator ask the API server (reviews beyond them wait, then
// answer 503 or refuse the connection).
const (
	reviewQPS   = 20
	reviewBurst = 50
)

// identity is what the kubernetes modes of NATS and HTTP share: one
// reviewer, so one cache, and the NATS rules.
type identity struct {
	reviewer *authn.Reviewer
	rules    *natsauth.Rules
	pods     *natsauth.PodWatcher
	cfg      *config.Config
	logger   *slog.Logger
	reg      prometheus.Registerer
}

// newIdentity builds the identity parts the configuration asks for; with
// neither kubernetes mode it returns an identity that changes nothing.
func newIdentity(ctx context.Context, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (*identity, error) {
	id := &identity{cfg: cfg, logger: logger.With("component", "identity"), reg: reg}
	natsK8s := cfg.NATS.AuthMode == config.AuthKubernetes
	if !natsK8s && cfg.Aggregator.HTTPAuth != config.AuthKubernetes {
		return id, nil
	}
	rc, from, err := kube.LoadRESTConfig(cfg.Aggregator.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes authentication (nats.auth_mode, aggregator.http_auth) needs the API server: %w", err)
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = reviewQPS, reviewBurst
	rc.UserAgent = "k8smon-aggregator/" + version.Version + " (identity)"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client for reviews at %s: %w", rc.Host, err)
	}
	id.reviewer = authn.NewReviewer(client, authn.Options{Registerer: reg})
	id.logger.Info("identities are checked by the API server", "host", rc.Host, "config", from,
		"nats", cfg.NATS.AuthMode, "http", cfg.Aggregator.HTTPAuth, "audience", cfg.Aggregator.TokenAudience,
		"authzPrefix", cfg.Aggregator.AuthzPrefix)
	if !natsK8s {
		return id, nil
	}
	o := natsauth.Options{
		Reviewer: id.reviewer, Audience: cfg.Aggregator.TokenAudience, Prefix: cfg.NATS.SubjectPrefix,
		PathPrefix: cfg.Aggregator.AuthzPrefix, Logger: id.logger,
	}
	if sa := cfg.Aggregator.AgentServiceAccount; sa != "" {
		o.AgentNamespace, o.AgentServiceAccount, _ = config.ParseServiceAccount(sa) // validated at start
		id.pods = natsauth.NewPodWatcher(client, o.AgentNamespace, o.AgentServiceAccount, id.logger)
		id.pods.Start(ctx)
		o.Pods = id.pods
	} else {
		id.logger.Warn("aggregator.agent_service_account is empty: no agent may publish reports")
	}
	id.rules = natsauth.New(o)
	return id, nil
}

// serveCallout answers an external NATS server's auth callout on nc when
// NATS identities come from Kubernetes and nats.url is set.
func (id *identity) serveCallout(nc *nats.Conn) error {
	if id.rules == nil || id.cfg.NATS.URL == "" {
		return nil
	}
	seed, err := config.ReadToken(id.cfg.NATS.CalloutIssuerSeedFile)
	if err != nil {
		return fmt.Errorf("read the auth callout issuer seed (nats.callout_issuer_seed_file): %w", err)
	}
	// The seed alone, or a file holding it among other lines (nsc's output).
	issuer, err := jwt.ParseDecoratedNKey([]byte(seed))
	if err != nil {
		return fmt.Errorf("auth callout issuer seed in %s: %w", id.cfg.NATS.CalloutIssuerSeedFile, err)
	}
	svc, err := authcallout.New(authcallout.Options{
		Rules: id.rules, Issuer: issuer, Account: id.cfg.NATS.CalloutAccount,
		Logger: id.logger.With("component", "auth-callout"), Registerer: id.reg,
	})
	if err != nil {
		return err
	}
	return svc.Start(nc)
}

// natsOptions configure the embedded server.
func (id *identity) natsOptions() []natsserver.Option {
	opts := []natsserver.Option{natsserver.WithRegisterer(id.reg)}
	if id.rules != nil {
		var pods natsserver.PodEvents
		if id.pods != nil {
			pods = id.pods
		}
		opts = append(opts, natsserver.WithKubernetes(id.rules, pods))
	}
	return opts
}

// http wraps the API handler with kubernetes authentication when asked,
// and warns when the API is open beyond loopback.
func (id *identity) http(h http.Handler) http.Handler {
	if id.cfg.Aggregator.HTTPAuth != config.AuthKubernetes {
		if !id.cfg.HTTPLoopback() {
			id.logger.Warn("the HTTP API is open to anyone who can reach it; set aggregator.http_auth=kubernetes (--http-auth kubernetes) in a cluster",
				"addr", id.cfg.Aggregator.HTTPAddr)
		}
		return h
	}
	return id.reviewer.HTTP(h, authn.HTTPOptions{
		Audience: id.cfg.Aggregator.TokenAudience, PathPrefix: id.cfg.Aggregator.AuthzPrefix,
		Logger: id.logger.With("component", "http-auth"), Registerer: id.reg,
	})
}
