package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Authentication modes of nats.auth_mode and aggregator.http_auth.
const (
	// AuthNone serves HTTP without authentication (aggregator.http_auth).
	AuthNone = "none"
	// AuthKubernetes delegates identity to the API server: TokenReview for
	// who a bearer token belongs to, SubjectAccessReview for what it may do.
	AuthKubernetes = "kubernetes"
)

// Identity defaults.
const (
	// DefaultTokenAudience is the audience agents' and consumers' tokens
	// must carry for NATS, and one HTTP accepts.
	DefaultTokenAudience = "k8s-llm-monitor"
	// DefaultNATSTokenFile is where the chart projects the agent's
	// ServiceAccount token with that audience.
	DefaultNATSTokenFile = "/var/run/secrets/k8s-llm-monitor/nats/token"
	// DefaultAuthzPrefix goes before every path a SubjectAccessReview asks
	// about (see aggregator/authn.DefaultPathPrefix).
	DefaultAuthzPrefix = "/k8s-llm-monitor"
	// DefaultNATSListen is loopback: an embedded server reachable from
	// other hosts must be given authentication first (see
	// ValidateAggregator).
	DefaultNATSListen = "127.0.0.1:4222"
)

// ParseServiceAccount splits "namespace/name".
func ParseServiceAccount(s string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(s, "/")
	if !ok || len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", fmt.Errorf("%q is not namespace/name of a ServiceAccount", s)
	}
	return namespace, name, nil
}

// validateAggregatorAuth checks the identity keys of the aggregator.
func (c *Config) validateAggregatorAuth() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	n, g := c.NATS, c.Aggregator
	if n.AuthMode != "" && n.AuthMode != AuthKubernetes {
		bad("nats.auth_mode", "%q: want empty (the credentials given) or %q", n.AuthMode, AuthKubernetes)
	}
	if g.HTTPAuth != AuthNone && g.HTTPAuth != AuthKubernetes {
		bad("aggregator.http_auth", "%q: want %q or %q", g.HTTPAuth, AuthNone, AuthKubernetes)
	}
	k8s := n.AuthMode == AuthKubernetes || g.HTTPAuth == AuthKubernetes
	if k8s && g.TokenAudience == "" {
		bad("aggregator.token_audience", "empty; tokens for NATS need an audience (default %s)", DefaultTokenAudience)
	}
	if k8s && (!authzPrefixRE.MatchString(g.AuthzPrefix) || reservedPrefixes[g.AuthzPrefix]) {
		bad("aggregator.authz_prefix", "%q: want / and a lowercase name such as %s, outside the API server's own paths", g.AuthzPrefix, DefaultAuthzPrefix)
	}
	if g.AgentServiceAccount != "" {
		if _, _, err := ParseServiceAccount(g.AgentServiceAccount); err != nil {
			bad("aggregator.agent_service_account", "%v", err)
		}
	}
	if n.URL != "" && n.AuthMode == AuthKubernetes {
		if n.CalloutIssuerSeedFile == "" {
			bad("nats.callout_issuer_seed_file", "empty: with nats.url, kubernetes mode answers the server's auth callout and signs with the account seed whose public key its auth_callout.issuer names")
		}
		if n.User == "" && n.CredsFile == "" {
			bad("nats.user", "empty: with nats.url, kubernetes mode connects as one of the server's auth_callout.auth_users (nats.user and nats.password, or nats.creds_file)")
		}
	}
	if n.URL == "" && n.AuthMode == AuthKubernetes && (n.Token != "" || n.User != "") {
		bad("nats.auth_mode", "kubernetes replaces nats.token and nats.user on the embedded server: set one or the other")
	}
	if n.URL == "" && n.AuthMode == "" && n.Token == "" && n.User == "" && n.CredsFile == "" && !n.AllowAnonymous && !loopback(n.Listen) {
		bad("nats.listen", "the embedded NATS server would accept anyone on %s: listen on 127.0.0.1, or set nats.auth_mode=kubernetes (--nats-auth-mode), nats.token or nats.user, or allow it explicitly with --nats-allow-anonymous", n.Listen)
	}
	return errs
}

// authzPrefixRE is one path segment that Kubernetes' default roles never
// grant (they grant /api, /apis, /healthz, /version, ...).
var authzPrefixRE = regexp.MustCompile(`^/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// reservedPrefixes are the API server's own top-level paths.
var reservedPrefixes = map[string]bool{"/api": true, "/apis": true, "/healthz": true, "/livez": true, "/readyz": true,
	"/version": true, "/openapi": true, "/metrics": true, "/logs": true}

// loopback reports whether a listen address is reachable from this host
// only; a name other than localhost or an empty host is not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HTTPLoopback reports whether aggregator.http_addr is reachable from this
// host only (the aggregator warns when it is not and HTTP is open).
func (c *Config) HTTPLoopback() bool { return loopback(c.Aggregator.HTTPAddr) }
