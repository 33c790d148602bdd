package config

import (
	"fmt"
	"net"
	"net/url"
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
