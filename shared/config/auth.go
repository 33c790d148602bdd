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
