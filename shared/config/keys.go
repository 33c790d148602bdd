package config

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// Binaries say which command lines register a key's flag.
type Binaries uint8

// The binaries a key belongs to.
const (
	ForAgent Binaries = 1 << iota
	ForAggregator
	ForBoth = ForAgent | ForAggregator
)

// Key declares one configuration key, once: its name in the YAML file (and
// so its K8SMON_ environment variable), its default, the binaries that use
// it, its optional flags and help text, and the Config field it fills. The
// field's type decides how the key is read: time.Duration through
// ParseSeconds, []string as a comma-separated list, anything else that is
// not a scalar through viper's unmarshalling.
type Key struct {
	Name    string   // e.g. "metrics.collect_interval"
	Default any      // viper default; durations as seconds or a duration string
	For     Binaries // binaries that read the key and register its flags
	Flag    string   // flag that sets the key, "" for none
	// Disable is a --disable-* flag that, set, turns this boolean key off.
	Disable string
	Help    string              // flag help text, without the key
	Field   func(c *Config) any // pointer to the field the key fills
}

// Keys is every configuration key; configs/config.yaml documents each one
// (TestConfigYAMLDocumentsEveryKey).
var Keys = []Key{
	{Name: "metrics.enabled", Default: true, For: ForBoth, Field: func(c *Config) any { return &c.Metrics.Enabled }},
	{Name: "metrics.collect_interval", Default: int(DefaultCollectInterval / time.Second), For: ForBoth, Flag: "interval",
		Help: "collection interval, seconds or a duration such as 15s", Field: func(c *Config) any { return &c.Metrics.CollectInterval }},
	{Name: "metrics.namespaces", Default: []string{}, For: ForAggregator, Flag: "namespaces",
		Help: "namespaces to watch; default all", Field: func(c *Config) any { return &c.Metrics.Namespaces }},
	{Name: "metrics.enable_node", Default: true, For: ForBoth, Field: func(c *Config) any { return &c.Metrics.EnableNode }},
	{Name: "metrics.enable_pod", Default: true, For: ForBoth, Field: func(c *Config) any { return &c.Metrics.EnablePod }},
	{Name: "metrics.enable_network", Default: false, For: ForBoth, Field: func(c *Config) any { return &c.Metrics.EnableNetwork }},
	{Name: "metrics.enable_custom", Default: false, For: ForAggregator, Field: func(c *Config) any { return &c.Metrics.EnableCustom }},
	{Name: "metrics.cache_retention", Default: int(DefaultCacheRetention / time.Second), For: ForAggregator, Flag: "cache-retention",
		Help: "history kept per node and pod, seconds or a duration such as 2h", Field: func(c *Config) any { return &c.Metrics.CacheRetention }},

	{Name: "nats.url", Default: "", For: ForBoth, Flag: "nats-url",
		Help: "NATS server URL(s), comma-separated", Field: func(c *Config) any { return &c.NATS.URL }},
	{Name: "nats.subject_prefix", Default: wire.DefaultPrefix, For: ForBoth, Flag: "nats-subject-prefix",
		Help: "prefix of every NATS subject", Field: func(c *Config) any { return &c.NATS.SubjectPrefix }},
	{Name: "nats.user", Default: "", For: ForBoth, Flag: "nats-user",
		Help: "NATS user name", Field: func(c *Config) any { return &c.NATS.User }},
	{Name: "nats.password", Default: "", For: ForBoth, Flag: "nats-password",
		Help: "NATS password (prefer K8SMON_NATS_PASSWORD)", Field: func(c *Config) any { return &c.NATS.Password }},
	{Name: "nats.token", Default: "", For: ForBoth, Flag: "nats-token",
		Help: "NATS auth token (prefer K8SMON_NATS_TOKEN)", Field: func(c *Config) any { return &c.NATS.Token }},
	{Name: "nats.creds_file", Default: "", For: ForBoth, Flag: "nats-creds-file",
		Help: "NATS credentials file", Field: func(c *Config) any { return &c.NATS.CredsFile }},
	{Name: "nats.tls_ca_file", Default: "", For: ForBoth, Flag: "nats-tls-ca-file",
		Help: "CA bundle to verify the NATS server", Field: func(c *Config) any { return &c.NATS.TLSCAFile }},
	{Name: "nats.tls_cert_file", Default: "", For: ForBoth, Flag: "nats-tls-cert-file",
		Help: "client certificate for NATS TLS", Field: func(c *Config) any { return &c.NATS.TLSCertFile }},
	{Name: "nats.tls_key_file", Default: "", For: ForBoth, Flag: "nats-tls-key-file",
		Help: "client key for NATS TLS", Field: func(c *Config) any { return &c.NATS.TLSKeyFile }},
	{Name: "nats.tls_insecure_skip_verify", Default: false, For: ForBoth, Flag: "nats-tls-insecure-skip-verify",
		Help: "do not verify the NATS server's certificate", Field: func(c *Config) any { return &c.NATS.TLSInsecure }},
	{Name: "nats.listen", Default: DefaultNATSListen, For: ForAggregator, Flag: "nats-listen",
		Help: "address of the embedded NATS server when --nats-url is empty", Field: func(c *Config) any { return &c.NATS.Listen }},
	{Name: "nats.buffer_size", Default: DefaultBufferSize, For: ForAgent, Flag: "nats-buffer-size",
		Help: "reports kept while NATS is unreachable, oldest dropped first", Field: func(c *Config) any { return &c.NATS.BufferSize }},
	{Name: "nats.auth_mode", Default: "", For: ForAggregator, Flag: "nats-auth-mode",
		Help: `"kubernetes": agents and consumers authenticate to NATS with ServiceAccount tokens checked by the API server`, Field: func(c *Config) any { return &c.NATS.AuthMode }},
	{Name: "nats.token_file", Default: DefaultNATSTokenFile, For: ForAgent, Flag: "nats-token-file",
		Help: "file whose content is the NATS token, re-read on every (re)connect: the projected ServiceAccount token in a cluster", Field: func(c *Config) any { return &c.NATS.TokenFile }},
	{Name: "nats.allow_anonymous", Default: false, For: ForAggregator, Flag: "nats-allow-anonymous",
		Help: "let the embedded NATS server listen beyond loopback without authentication", Field: func(c *Config) any { return &c.NATS.AllowAnonymous }},
	{Name: "nats.callout_issuer_seed_file", Default: "", For: ForAggregator, Flag: "nats-callout-issuer-seed-file",
		Help: "external NATS in kubernetes mode: file with the account nkey seed that signs auth callout answers", Field: func(c *Config) any { return &c.NATS.CalloutIssuerSeedFile }},
	{Name: "nats.callout_account", Default: "$G", For: ForAggregator, Field: func(c *Config) any { return &c.NATS.CalloutAccount }},
	{Name: "nats.jetstream.replicas", Default: 0, For: ForAggregator, Flag: "nats-stream-replicas",
		Help: "replicas of the JetStream streams; 0 = 3 on a NATS cluster, else 1", Field: func(c *Config) any { return &c.NATS.JetStream.Replicas }},
	{Name: "nats.jetstream.reports_max_bytes", Default: DefaultReportsMaxBytes, For: ForAggregator, Field: func(c *Config) any { return &c.NATS.JetStream.ReportsMaxBytes }},
	{Name: "nats.jetstream.events_max_age", Default: DefaultEventsMaxAge.String(), For: ForAggregator, Field: func(c *Config) any { return &c.NATS.JetStream.EventsMaxAge }},
	{Name: "nats.jetstream.events_max_bytes", Default: DefaultEventsMaxBytes, For: ForAggregator, Field: func(c *Config) any { return &c.NATS.JetStream.EventsMaxBytes }},

	{Name: "agent.node_name", Default: "", For: ForAgent, Flag: "node-name",
		Help: "this node's name (default $NODE_NAME, else the hostname)", Field: func(c *Config) any { return &c.Agent.NodeName }},
	{Name: "agent.node_ip", Default: "", For: ForAgent, Flag: "node-ip",
		Help: "this node's IP, used in the default kubelet URL (default $NODE_IP)", Field: func(c *Config) any { return &c.Agent.NodeIP }},
	{Name: "agent.host_root", Default: "/", For: ForAgent, Flag: "host-root",
		Help: "where the host's /, /proc and /sys are mounted in a container", Field: func(c *Config) any { return &c.Agent.HostRoot }},
	{Name: "agent.listen", Default: ":9102", For: ForAgent, Flag: "listen",
		Help: "address for /healthz, /readyz and /metrics; empty disables", Field: func(c *Config) any { return &c.Agent.Listen }},
	{Name: "agent.source_timeout", Default: "0", For: ForAgent, Flag: "source-timeout",
		Help: "deadline of each data source per cycle, seconds or a duration; 0 = 5s, or half the interval if less; at most the interval", Field: func(c *Config) any { return &c.Agent.SourceTimeout }},
	{Name: "agent.once", Default: false, For: ForAgent, Flag: "once",
		Help: "collect one report, print it as JSON on stdout and exit (needs no cluster, NATS or GPU)", Field: func(c *Config) any { return &c.Agent.Once }},
	{Name: "agent.kubelet.enabled", Default: true, For: ForAgent, Disable: "disable-kubelet",
		Help: "do not read the kubelet", Field: func(c *Config) any { return &c.Agent.Kubelet.Enabled }},
	{Name: "agent.kubelet.url", Default: "", For: ForAgent, Flag: "kubelet-url",
		Help: "kubelet base URL (default https://$NODE_IP:10250)", Field: func(c *Config) any { return &c.Agent.Kubelet.URL }},
	{Name: "agent.kubelet.token_file", Default: DefaultServiceAccountTok, For: ForAgent, Flag: "kubelet-token-file",
		Help: "bearer token file for the kubelet", Field: func(c *Config) any { return &c.Agent.Kubelet.TokenFile }},
	{Name: "agent.kubelet.ca_file", Default: "", For: ForAgent, Flag: "kubelet-ca-file",
		Help: "CA bundle to verify the kubelet", Field: func(c *Config) any { return &c.Agent.Kubelet.CAFile }},
	{Name: "agent.kubelet.insecure_skip_tls_verify", Default: false, For: ForAgent, Flag: "kubelet-insecure-skip-tls-verify",
		Help: "do not verify the kubelet's certificate", Field: func(c *Config) any { return &c.Agent.Kubelet.InsecureSkipTLSVerify }},
	{Name: "agent.gpu.enabled", Default: true, For: ForAgent, Disable: "disable-gpu",
		Help: "do not load NVML", Field: func(c *Config) any { return &c.Agent.GPU.Enabled }},
	{Name: "agent.gpu.pod_resources_socket", Default: DefaultPodResourcesSock, For: ForAgent, Flag: "pod-resources-socket",
		Help: "kubelet pod-resources socket, for GPU-to-pod attribution", Field: func(c *Config) any { return &c.Agent.GPU.PodResourcesSocket }},
	{Name: "agent.disk.mounts", Default: []string{}, For: ForAgent, Flag: "disk-mounts",
		Help: "mount points to report; default every real filesystem", Field: func(c *Config) any { return &c.Agent.DiskMounts }},
	{Name: "agent.disk.root_dir", Default: "/", For: ForAgent, Flag: "root-dir",
		Help: "filesystem the node's disk fields describe, e.g. /var/lib/kubelet", Field: func(c *Config) any { return &c.Agent.RootDir }},
	{Name: "agent.thresholds.cpu_rate", Default: model.DefaultThresholds().CPURate, For: ForAgent, Field: func(c *Config) any { return &c.Agent.Thresholds.CPURate }},
	{Name: "agent.thresholds.memory_rate", Default: model.DefaultThresholds().MemoryRate, For: ForAgent, Field: func(c *Config) any { return &c.Agent.Thresholds.MemoryRate }},
	{Name: "agent.thresholds.disk_rate", Default: model.DefaultThresholds().DiskRate, For: ForAgent, Field: func(c *Config) any { return &c.Agent.Thresholds.DiskRate }},
	{Name: "agent.thresholds.gpu_temperature_c", Default: model.DefaultThresholds().GPUTempC, For: ForAgent, Field: func(c *Config) any { return &c.Agent.Thresholds.GPUTempC }},

	{Name: "aggregator.http_addr", Default: ":8080", For: ForAggregator, Flag: "http-addr",
		Help: "address of the HTTP API", Field: func(c *Config) any { return &c.Aggregator.HTTPAddr }},
	{Name: "aggregator.kubeconfig", Default: "", For: ForAggregator, Flag: "kubeconfig",
		Help: "kubeconfig path; default in-cluster config, else $KUBECONFIG or ~/.kube/config, else standalone", Field: func(c *Config) any { return &c.Aggregator.Kubeconfig }},
	{Name: "aggregator.stale_intervals", Default: DefaultStaleIntervals, For: ForAggregator, Flag: "stale-intervals",
		Help: "missed agent intervals before a node is stale", Field: func(c *Config) any { return &c.Aggregator.StaleIntervals }},
	{Name: "aggregator.metrics_server", Default: true, For: ForAggregator, Disable: "disable-metrics-server",
		Help: "do not read metrics.k8s.io", Field: func(c *Config) any { return &c.Aggregator.MetricsServer }},
	{Name: "aggregator.object_metrics", Default: true, For: ForAggregator, Disable: "disable-object-metrics",
		Help: "leave per-node and per-pod gauges out of /metrics", Field: func(c *Config) any { return &c.Aggregator.ObjectMetrics }},
	{Name: "aggregator.history_points", Default: DefaultHistoryPoints, For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.HistoryPoints }},
	{Name: "aggregator.max_snapshot_streams", Default: DefaultSnapshotStreams, For: ForAggregator, Flag: "max-snapshot-streams",
		Help: "snapshot-sized HTTP answers written at once; more get 429", Field: func(c *Config) any { return &c.Aggregator.MaxSnapshotStreams }},
	{Name: "aggregator.pprof", Default: false, For: ForAggregator, Flag: "pprof",
		Help: "serve Go profiles on /debug/pprof/ of the HTTP API; for operators, do not expose", Field: func(c *Config) any { return &c.Aggregator.Pprof }},
	{Name: "aggregator.max_nodes", Default: DefaultMaxNodes, For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.MaxNodes }},
	{Name: "aggregator.max_clock_skew", Default: int(DefaultMaxClockSkew / time.Second), For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.MaxClockSkew }},
	{Name: "aggregator.node_event_rate", Default: DefaultNodeEventRate, For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.NodeEventRate }},
	{Name: "aggregator.node_event_burst", Default: DefaultNodeEventBurst, For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.NodeEventBurst }},
	{Name: "aggregator.http_auth", Default: AuthNone, For: ForAggregator, Flag: "http-auth",
		Help: `"kubernetes": HTTP clients need a bearer token the API server authorizes`, Field: func(c *Config) any { return &c.Aggregator.HTTPAuth }},
	{Name: "aggregator.token_audience", Default: DefaultTokenAudience, For: ForAggregator, Flag: "token-audience",
		Help: "audience of the tokens for NATS; HTTP also accepts it", Field: func(c *Config) any { return &c.Aggregator.TokenAudience }},
	{Name: "aggregator.agent_service_account", Default: "", For: ForAggregator, Flag: "agent-service-account",
		Help: "namespace/name of the agents' ServiceAccount, whose pod-bound tokens may publish their node's reports", Field: func(c *Config) any { return &c.Aggregator.AgentServiceAccount }},
	{Name: "aggregator.authz_prefix", Default: DefaultAuthzPrefix, For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.AuthzPrefix }},
	{Name: "aggregator.events_retention", Default: DefaultEventsRetention.String(), For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.EventsRetention }},
	{Name: "aggregator.events_max", Default: DefaultEventsMax, For: ForAggregator, Field: func(c *Config) any { return &c.Aggregator.EventsMax }},
	{Name: "aggregator.data_dir", Default: "", For: ForAggregator, Flag: "data-dir",
		Help: "directory of the embedded NATS server's JetStream store; empty = a temporary one, lost at exit", Field: func(c *Config) any { return &c.Aggregator.DataDir }},

	{Name: "vms.kubevirt.enabled", Default: true, For: ForAggregator, Field: func(c *Config) any { return &c.VMs.KubeVirt }},
	{Name: "vms.custom", Default: []map[string]any{}, For: ForAggregator, Field: func(c *Config) any { return &c.VMs.Custom }},
}

func setDefaults(v *viper.Viper) {
	for _, k := range Keys {
		v.SetDefault(k.Name, k.Default)
	}
}

// registerFlags adds the flags of the keys bin uses, plus --config.
func registerFlags(fs *pflag.FlagSet, bin Binaries) {
	fs.String("config", "", "path of the YAML config file (keys as in configs/config.yaml)")
	for _, k := range Keys {
		if k.For&bin == 0 {
			continue
		}
		if k.Disable != "" {
			fs.Bool(k.Disable, false, fmt.Sprintf("%s (%s=false)", k.Help, k.Name))
		}
		if k.Flag == "" {
			continue
		}
		usage := fmt.Sprintf("%s (%s)", k.Help, k.Name)
		switch k.Field(&Config{}).(type) {
		case *bool:
			fs.Bool(k.Flag, k.Default.(bool), usage)
		case *int:
			fs.Int(k.Flag, k.Default.(int), usage)
		case *[]string:
			fs.StringSlice(k.Flag, nil, usage)
		default: // strings, and durations as seconds or "15s" (ParseSeconds)
			fs.String(k.Flag, fmt.Sprint(k.Default), usage)
		}
	}
}

// RegisterAgentFlags adds the agent's flags to fs.
func RegisterAgentFlags(fs *pflag.FlagSet) { registerFlags(fs, ForAgent) }

// RegisterAggregatorFlags adds the aggregator's flags to fs.
func RegisterAggregatorFlags(fs *pflag.FlagSet) { registerFlags(fs, ForAggregator) }

// bindFlags makes the flags of fs that were set override their keys.
func bindFlags(v *viper.Viper, fs *pflag.FlagSet) error {
	for _, k := range Keys {
		if f := fs.Lookup(k.Flag); k.Flag != "" && f != nil && f.Changed {
			if err := v.BindPFlag(k.Name, f); err != nil {
				return fmt.Errorf("bind flag --%s: %w", k.Flag, err)
			}
		}
		if f := fs.Lookup(k.Disable); k.Disable != "" && f != nil && f.Changed && f.Value.String() == "true" {
			v.Set(k.Name, false)
		}
	}
	return nil
}

// readKeys fills every declared field from v; an error names its key.
func readKeys(v *viper.Viper, c *Config) []error {
	var errs []error
	for _, k := range Keys {
		var err error
		switch p := k.Field(c).(type) {
		case *string:
			*p = v.GetString(k.Name)
		case *bool:
			*p = v.GetBool(k.Name)
		case *int:
			*p = v.GetInt(k.Name)
		case *int64:
			*p = v.GetInt64(k.Name)
		case *float64:
			*p = v.GetFloat64(k.Name)
		case *[]string:
			*p = nonEmpty(v.GetStringSlice(k.Name))
		case *time.Duration:
			*p, err = ParseSeconds(v.Get(k.Name))
		default:
			err = v.UnmarshalKey(k.Name, p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k.Name, err))
		}
	}
	return errs
}
