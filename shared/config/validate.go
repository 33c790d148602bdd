package config

// Every rule on the configuration is in this file: Validate (both
// binaries), ValidateAgent and ValidateAggregator, each message naming its
// key. The chart checks the same rules when rendering, so that a bad value
// fails the install instead of crash-looping the pods:
//
//   - bounds of single keys: charts/k8s-llm-monitor/values.schema.json
//     (metrics.collect_interval 1..3600 s, metrics.cache_retention at most
//     7 days, aggregator.events_retention at least 1m, stale_intervals,
//     history_points, events_max, thresholds, kubelet.url, subject prefix);
//   - cross-field rules: the "fail" calls of k8smon.validateConfig and
//     k8smon.validate in the chart's templates/_helpers.tpl
//     (agent.source_timeout at most metrics.collect_interval;
//     nats.jetstream.replicas above 1 only with nats.url).
//
// scripts/chart-check.sh renders each of them; TestChartChecksAgree runs
// the same values through these functions and expects the same verdict.

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// Limits on durations, so that a typo (15ms for 15s) fails at start. The
// interval's bounds are those the aggregator accepts in a report's
// intervalSeconds.
const (
	MinCollectInterval = wire.MinInterval
	MaxCollectInterval = wire.MaxInterval
	MaxCacheRetention  = 7 * 24 * time.Hour
	// MaxSnapshotStreams caps aggregator.max_snapshot_streams: each stream
	// may hold one build's encoded snapshot.
	MaxSnapshotStreams = 256
	MaxClockSkew       = time.Hour
)

// Validate checks the parts both binaries use; each message names its key.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.Metrics.CollectInterval < MinCollectInterval || c.Metrics.CollectInterval > MaxCollectInterval {
		bad("metrics.collect_interval", "%s is outside %s..%s", c.Metrics.CollectInterval, MinCollectInterval, MaxCollectInterval)
	}
	if c.Metrics.CacheRetention < 0 || c.Metrics.CacheRetention > MaxCacheRetention {
		bad("metrics.cache_retention", "%s is outside 0..%s", c.Metrics.CacheRetention, MaxCacheRetention)
	}
	if err := wire.ValidPrefix(c.NATS.SubjectPrefix); err != nil {
		bad("nats.subject_prefix", "%v", err)
	}
	if c.NATS.URL != "" {
		for _, u := range splitURLs(c.NATS.URL) {
			if p, err := url.Parse(u); err != nil || p.Host == "" {
				bad("nats.url", "%q is not a URL such as nats://host:4222", redactURL(u))
			}
		}
	}
	if c.NATS.Token != "" && (c.NATS.User != "" || c.NATS.CredsFile != "") {
		bad("nats.token", "set either a token, a user/password or a credentials file, not several")
	}
	if (c.NATS.TLSCertFile == "") != (c.NATS.TLSKeyFile == "") {
		bad("nats.tls_cert_file", "a client certificate needs nats.tls_key_file and the other way round")
	}
	return errs
}

// ValidateAgent checks what the agent needs beyond Validate.
func (c *Config) ValidateAgent() []error {
	errs := c.Validate()
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	a := c.Agent
	if a.NodeName == "" {
		bad("agent.node_name", "empty and neither $NODE_NAME nor the hostname is known")
	}
	if a.HostRoot == "" {
		bad("agent.host_root", "empty; use / on the host itself")
	}
	if a.SourceTimeout <= 0 || a.SourceTimeout > c.Metrics.CollectInterval {
		bad("agent.source_timeout", "%s must be positive and at most metrics.collect_interval (%s)", a.SourceTimeout, c.Metrics.CollectInterval)
	}
	if c.NATS.BufferSize < 0 {
		bad("nats.buffer_size", "%d is negative", c.NATS.BufferSize)
	}
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			bad("agent.listen", "%q is not host:port: %v", a.Listen, err)
		}
	}
	if podsOn, _ := c.Metrics.PodMetrics(); podsOn && a.Kubelet.Enabled && !a.Once && a.Kubelet.URL == "" {
		bad("agent.kubelet.url", "empty and $NODE_IP is not set: set --kubelet-url or --node-ip, or --disable-kubelet")
	}
	if a.Kubelet.URL != "" {
		if u, err := url.Parse(a.Kubelet.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("agent.kubelet.url", "%q is not an http(s) URL", RedactURLs(a.Kubelet.URL))
		}
	}
	for name, r := range map[string]float64{"cpu_rate": a.Thresholds.CPURate, "memory_rate": a.Thresholds.MemoryRate, "disk_rate": a.Thresholds.DiskRate} {
		if r <= 0 || r > 100 {
			bad("agent.thresholds."+name, "%v is outside (0, 100]", r)
		}
	}
	return errs
}

// ValidateAggregator checks what the aggregator needs beyond Validate.
func (c *Config) ValidateAggregator() []error {
	errs := c.Validate()
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	g := c.Aggregator
	if _, _, err := net.SplitHostPort(g.HTTPAddr); err != nil {
		bad("aggregator.http_addr", "%q is not host:port: %v", g.HTTPAddr, err)
	}
	if c.NATS.URL == "" {
		if _, _, err := net.SplitHostPort(c.NATS.Listen); err != nil {
			bad("nats.listen", "%q is not host:port: %v", c.NATS.Listen, err)
		}
	}
	if g.StaleIntervals < 1 {
		bad("aggregator.stale_intervals", "%d must be at least 1", g.StaleIntervals)
	}
	if g.HistoryPoints < 1 {
		bad("aggregator.history_points", "%d must be at least 1", g.HistoryPoints)
	}
	if g.MaxSnapshotStreams < 1 || g.MaxSnapshotStreams > MaxSnapshotStreams {
		bad("aggregator.max_snapshot_streams", "%d is outside 1..%d", g.MaxSnapshotStreams, MaxSnapshotStreams)
	}
	if g.MaxNodes < 1 {
		bad("aggregator.max_nodes", "%d must be at least 1", g.MaxNodes)
	}
	if g.MaxClockSkew < 0 || g.MaxClockSkew > MaxClockSkew {
		bad("aggregator.max_clock_skew", "%s is outside 0..%s", g.MaxClockSkew, MaxClockSkew)
	}
	if !(g.NodeEventRate > 0) {
		bad("aggregator.node_event_rate", "%v must be above 0", g.NodeEventRate)
	}
	if g.NodeEventBurst < 1 {
		bad("aggregator.node_event_burst", "%d must be at least 1", g.NodeEventBurst)
	}
	if g.EventsRetention < time.Minute {
		bad("aggregator.events_retention", "%s must be at least 1m", g.EventsRetention)
	}
	if g.EventsMax < 1 || g.EventsMax > 1000000 {
		bad("aggregator.events_max", "%d is outside [1, 1000000]", g.EventsMax)
	}
	errs = append(errs, c.validateAggregatorAuth()...)
	errs = append(errs, c.validateJetStream()...)
	return append(errs, c.validateVMs()...)
}

func splitURLs(s string) []string { return nonEmpty([]string{s}) }

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

func (c *Config) validateJetStream() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	j := c.NATS.JetStream
	if j.Replicas < 0 || j.Replicas > MaxStreamReplicas {
		bad("nats.jetstream.replicas", "%d is outside 0..%d (0 = 3 on a NATS cluster, else 1)", j.Replicas, MaxStreamReplicas)
	}
	if c.NATS.URL == "" && j.Replicas > 1 {
		bad("nats.jetstream.replicas", "%d needs a NATS cluster; the embedded server is a single server (set --nats-url)", j.Replicas)
	}
	if j.ReportsMaxBytes < minStreamBytes {
		bad("nats.jetstream.reports_max_bytes", "%d is below the minimum of %d", j.ReportsMaxBytes, minStreamBytes)
	}
	if j.EventsMaxBytes < minStreamBytes {
		bad("nats.jetstream.events_max_bytes", "%d is below the minimum of %d", j.EventsMaxBytes, minStreamBytes)
	}
	if j.EventsMaxAge < time.Minute || j.EventsMaxAge > MaxCacheRetention {
		bad("nats.jetstream.events_max_age", "%s is outside %s..%s", j.EventsMaxAge, time.Minute, MaxCacheRetention)
	}
	return errs
}

func (c *Config) validateVMs() []error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range c.VMs.Custom {
		key := fmt.Sprintf("vms.custom[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: empty", key))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q used twice", key, r.Name))
		}
		seen[r.Name] = true
		if r.Version == "" || r.Resource == "" {
			errs = append(errs, fmt.Errorf("%s: version and resource are required (group may be empty only for the core group)", key))
		}
		if r.Resource != strings.ToLower(r.Resource) {
			errs = append(errs, fmt.Errorf("%s.resource: %q must be the lowercase plural, e.g. wukongs", key, r.Resource))
		}
	}
	return errs
}
