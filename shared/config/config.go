// Package config loads the agent's and the aggregator's configuration: the
// seed's configs/config.yaml keys under "metrics:", plus "nats:", "agent:",
// "aggregator:" and "vms:". Precedence, highest first: command-line flags,
// K8SMON_* environment variables (K8SMON_NATS_URL for nats.url), the YAML
// file, defaults.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// EnvPrefix prefixes every environment override.
const EnvPrefix = "K8SMON"

// Config is the whole configuration; each binary reads the parts it needs.
type Config struct {
	Metrics    MetricsConfig
	NATS       NATSConfig
	Agent      AgentConfig
	Aggregator AggregatorConfig
	VMs        VMConfig
	// File is the config file that was read, "" when none.
	File string
}

// MetricsConfig is the seed's "metrics:" block.
type MetricsConfig struct {
	Enabled         bool          // metrics.enabled
	CollectInterval time.Duration // metrics.collect_interval: seconds (seed) or a duration ("15s")
	Namespaces      []string      // metrics.namespaces: empty means all
	EnableNode      bool          // metrics.enable_node
	EnablePod       bool          // metrics.enable_pod
	EnableNetwork   bool          // metrics.enable_network (reserved: no prober yet)
	EnableCustom    bool          // metrics.enable_custom: VM custom resources
	CacheRetention  time.Duration // metrics.cache_retention: seconds or a duration ("2h")
}

// NATSConfig is the "nats:" block, shared by agent and aggregator.
type NATSConfig struct {
	URL           string // nats.url: empty on the aggregator means embed a server
	SubjectPrefix string // nats.subject_prefix
	User          string // nats.user
	Password      string // nats.password
	Token         string // nats.token
	CredsFile     string // nats.creds_file
	TLSCAFile     string // nats.tls_ca_file
	TLSCertFile   string // nats.tls_cert_file
	TLSKeyFile    string // nats.tls_key_file
	TLSInsecure   bool   // nats.tls_insecure_skip_verify
	Listen        string // nats.listen: the embedded server's address (aggregator)
	BufferSize    int    // nats.buffer_size: reports kept while NATS is down (agent)
	// AuthMode is nats.auth_mode: "" (the credentials given) or
	// "kubernetes" (ServiceAccount tokens; aggregator).
	AuthMode string
	// TokenFile is nats.token_file: a file holding the token, re-read on
	// every connect; used when no other credential is set (agent).
	TokenFile string
	// AllowAnonymous is nats.allow_anonymous: let the embedded server
	// listen beyond loopback without authentication (aggregator).
	AllowAnonymous bool
	// CalloutIssuerSeedFile is nats.callout_issuer_seed_file: with nats.url
	// and kubernetes mode, the account nkey seed that signs the answers to
	// the server's auth callout (aggregator).
	CalloutIssuerSeedFile string
	// CalloutAccount is nats.callout_account: the account auth callout
	// users are placed in ($G: a server without operator mode).
	CalloutAccount string
	JetStream      JetStreamConfig
}

// AgentConfig is the "agent:" block.
type AgentConfig struct {
	NodeName string // agent.node_name: default $NODE_NAME, else the hostname
	NodeIP   string // agent.node_ip: default $NODE_IP
	HostRoot string // agent.host_root: where the host's / is mounted
	Listen   string // agent.listen: /healthz, /readyz, /metrics; "" disables
	// SourceTimeout is each source's deadline per cycle (agent.source_timeout);
	// 0 means DefaultSourceTimeout, capped at half the interval.
	SourceTimeout time.Duration
	Once          bool // agent.once: print one report and exit
	Kubelet       KubeletConfig
	GPU           GPUConfig
	DiskMounts    []string // agent.disk.mounts: empty means every real filesystem
	// RootDir is the filesystem the node's Disk* fields describe:
	// agent.disk.root_dir, default "/" (set it to the kubelet root dir).
	RootDir    string
	Thresholds model.Thresholds // agent.thresholds.*
}

// KubeletConfig is "agent.kubelet:".
type KubeletConfig struct {
	Enabled               bool   // agent.kubelet.enabled
	URL                   string // agent.kubelet.url: default https://$NODE_IP:10250
	TokenFile             string // agent.kubelet.token_file
	CAFile                string // agent.kubelet.ca_file
	InsecureSkipTLSVerify bool   // agent.kubelet.insecure_skip_tls_verify
}

// GPUConfig is "agent.gpu:".
type GPUConfig struct {
	Enabled            bool   // agent.gpu.enabled
	PodResourcesSocket string // agent.gpu.pod_resources_socket
}

// AggregatorConfig is the "aggregator:" block.
type AggregatorConfig struct {
	HTTPAddr   string // aggregator.http_addr
	Kubeconfig string // aggregator.kubeconfig: "" means in-cluster, else standalone
	// StaleIntervals is how many missed agent intervals make a node stale.
	StaleIntervals int  // aggregator.stale_intervals
	MetricsServer  bool // aggregator.metrics_server: read metrics.k8s.io
	// ObjectMetrics turns the per-node and per-pod Prometheus gauges on;
	// off keeps /metrics to self-metrics for low cardinality.
	ObjectMetrics bool // aggregator.object_metrics
	// HistoryPoints bounds each node's and pod's history ring.
	HistoryPoints int // aggregator.history_points
	// MaxSnapshotStreams bounds the snapshot-sized HTTP answers written
	// at once; more are refused with 429 (aggregator.max_snapshot_streams).
	MaxSnapshotStreams int
	// Pprof serves /debug/pprof/ on the HTTP API (aggregator.pprof).
	Pprof bool
	// MaxNodes caps the node names tracked from agent reports; a name
	// with a Kubernetes Node object is admitted beyond it.
	MaxNodes int // aggregator.max_nodes
	// MaxClockSkew is how far ahead of the aggregator's clock an agent's
	// timestamps may run before its messages are refused.
	MaxClockSkew time.Duration // aggregator.max_clock_skew
	// NodeEventRate and NodeEventBurst are each node's event allowance:
	// events per second sustained, and how many at once.
	NodeEventRate  float64 // aggregator.node_event_rate
	NodeEventBurst int     // aggregator.node_event_burst
	// HTTPAuth is aggregator.http_auth: "none" or "kubernetes".
	HTTPAuth string
	// TokenAudience is aggregator.token_audience: the audience NATS tokens
	// must carry, and one HTTP accepts besides the API server's own.
	TokenAudience string
	// AgentServiceAccount is aggregator.agent_service_account,
	// "namespace/name": pod-bound tokens of it may publish for their node.
	AgentServiceAccount string
	// AuthzPrefix is aggregator.authz_prefix: put before every path a
	// SubjectAccessReview asks about, so that only roles written for this
	// product (one release) grant anything.
	AuthzPrefix string
	// EventsRetention is how long the events store keeps an event after
	// it last happened (the API server keeps Kubernetes events an hour).
	EventsRetention time.Duration // aggregator.events_retention
	// EventsMax bounds the events store.
	EventsMax int // aggregator.events_max
	// DataDir holds the embedded NATS server's JetStream store
	// (aggregator.data_dir); "" means a temporary directory removed at exit.
	DataDir string
}

// Defaults, also the values documented in configs/config.yaml.
const (
	DefaultCollectInterval   = 15 * time.Second
	DefaultCacheRetention    = 300 * time.Second
	DefaultSourceTimeout     = 5 * time.Second
	DefaultBufferSize        = 100
	DefaultStaleIntervals    = 3
	DefaultHistoryPoints     = 1200
	DefaultSnapshotStreams   = 4
	DefaultMaxNodes          = 10_000
	DefaultMaxClockSkew      = 2 * time.Minute
	DefaultNodeEventRate     = 1.0
	DefaultNodeEventBurst    = 30
	DefaultEventsRetention   = 24 * time.Hour
	DefaultEventsMax         = 20000
	DefaultPodResourcesSock  = "/var/lib/kubelet/pod-resources/kubelet.sock"
	DefaultServiceAccountTok = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultServiceAccountCA  = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

func setDefaults(v *viper.Viper) {
	v.SetDefault("metrics.enabled", true)
	v.SetDefault("metrics.collect_interval", int(DefaultCollectInterval/time.Second))
	v.SetDefault("metrics.namespaces", []string{})
	v.SetDefault("metrics.enable_node", true)
	v.SetDefault("metrics.enable_pod", true)
	v.SetDefault("metrics.enable_network", false)
	v.SetDefault("metrics.enable_custom", false)
	v.SetDefault("metrics.cache_retention", int(DefaultCacheRetention/time.Second))

	v.SetDefault("nats.url", "")
	v.SetDefault("nats.subject_prefix", wire.DefaultPrefix)
	v.SetDefault("nats.user", "")
	v.SetDefault("nats.password", "")
	v.SetDefault("nats.token", "")
	v.SetDefault("nats.creds_file", "")
	v.SetDefault("nats.tls_ca_file", "")
	v.SetDefault("nats.tls_cert_file", "")
	v.SetDefault("nats.tls_key_file", "")
	v.SetDefault("nats.tls_insecure_skip_verify", false)
	v.SetDefault("nats.listen", DefaultNATSListen)
	v.SetDefault("nats.buffer_size", DefaultBufferSize)

	v.SetDefault("agent.node_name", "")
	v.SetDefault("agent.node_ip", "")
	v.SetDefault("agent.host_root", "/")
	v.SetDefault("agent.listen", ":9102")
	v.SetDefault("agent.source_timeout", "0")
	v.SetDefault("agent.once", false)
	v.SetDefault("agent.kubelet.enabled", true)
	v.SetDefault("agent.kubelet.url", "")
	v.SetDefault("agent.kubelet.token_file", DefaultServiceAccountTok)
	v.SetDefault("agent.kubelet.ca_file", "")
	v.SetDefault("agent.kubelet.insecure_skip_tls_verify", false)
	v.SetDefault("agent.gpu.enabled", true)
	v.SetDefault("agent.gpu.pod_resources_socket", DefaultPodResourcesSock)
	v.SetDefault("agent.disk.mounts", []string{})
	v.SetDefault("agent.disk.root_dir", "/")
	t := model.DefaultThresholds()
	v.SetDefault("agent.thresholds.cpu_rate", t.CPURate)
	v.SetDefault("agent.thresholds.memory_rate", t.MemoryRate)
	v.SetDefault("agent.thresholds.disk_rate", t.DiskRate)
	v.SetDefault("agent.thresholds.gpu_temperature_c", t.GPUTempC)

	v.SetDefault("aggregator.http_addr", ":8080")
	v.SetDefault("aggregator.kubeconfig", "")
	v.SetDefault("aggregator.stale_intervals", DefaultStaleIntervals)
	v.SetDefault("aggregator.metrics_server", true)
	v.SetDefault("aggregator.object_metrics", true)
	v.SetDefault("aggregator.history_points", DefaultHistoryPoints)
	v.SetDefault("aggregator.max_snapshot_streams", DefaultSnapshotStreams)
	v.SetDefault("aggregator.pprof", false)
	v.SetDefault("aggregator.max_nodes", DefaultMaxNodes)
	v.SetDefault("aggregator.max_clock_skew", int(DefaultMaxClockSkew/time.Second))
	v.SetDefault("aggregator.node_event_rate", DefaultNodeEventRate)
	v.SetDefault("aggregator.node_event_burst", DefaultNodeEventBurst)
	v.SetDefault("aggregator.events_retention", DefaultEventsRetention.String())
	v.SetDefault("aggregator.events_max", DefaultEventsMax)
	setVMDefaults(v)
	setAuthDefaults(v)
	setJetStreamDefaults(v)
}

// FlagKeys maps command-line flags to config keys. A binary registers the
// flags it supports (see RegisterAgentFlags, RegisterAggregatorFlags) and
// Load binds those that are present.
var FlagKeys = map[string]string{
	"interval":                         "metrics.collect_interval",
	"namespaces":                       "metrics.namespaces",
	"cache-retention":                  "metrics.cache_retention",
	"nats-url":                         "nats.url",
	"nats-subject-prefix":              "nats.subject_prefix",
	"nats-user":                        "nats.user",
	"nats-password":                    "nats.password",
	"nats-token":                       "nats.token",
	"nats-creds-file":                  "nats.creds_file",
	"nats-tls-ca-file":                 "nats.tls_ca_file",
	"nats-tls-cert-file":               "nats.tls_cert_file",
	"nats-tls-key-file":                "nats.tls_key_file",
	"nats-tls-insecure-skip-verify":    "nats.tls_insecure_skip_verify",
	"nats-listen":                      "nats.listen",
	"nats-buffer-size":                 "nats.buffer_size",
	"node-name":                        "agent.node_name",
	"node-ip":                          "agent.node_ip",
	"host-root":                        "agent.host_root",
	"listen":                           "agent.listen",
	"source-timeout":                   "agent.source_timeout",
	"once":                             "agent.once",
	"kubelet-url":                      "agent.kubelet.url",
	"kubelet-token-file":               "agent.kubelet.token_file",
	"kubelet-ca-file":                  "agent.kubelet.ca_file",
	"kubelet-insecure-skip-tls-verify": "agent.kubelet.insecure_skip_tls_verify",
	"pod-resources-socket":             "agent.gpu.pod_resources_socket",
	"disk-mounts":                      "agent.disk.mounts",
	"root-dir":                         "agent.disk.root_dir",
	"http-addr":                        "aggregator.http_addr",
	"kubeconfig":                       "aggregator.kubeconfig",
	"stale-intervals":                  "aggregator.stale_intervals",
	"max-snapshot-streams":             "aggregator.max_snapshot_streams",
	"pprof":                            "aggregator.pprof",
	"nats-auth-mode":                   "nats.auth_mode",
	"nats-token-file":                  "nats.token_file",
	"nats-allow-anonymous":             "nats.allow_anonymous",
	"nats-callout-issuer-seed-file":    "nats.callout_issuer_seed_file",
	"http-auth":                        "aggregator.http_auth",
	"token-audience":                   "aggregator.token_audience",
	"agent-service-account":            "aggregator.agent_service_account",
	"data-dir":                         "aggregator.data_dir",
	"nats-stream-replicas":             "nats.jetstream.replicas",
}

// negatedFlags are the --disable-* booleans: set, each turns its key off.
var negatedFlags = map[string]string{
	"disable-kubelet":        "agent.kubelet.enabled",
	"disable-gpu":            "agent.gpu.enabled",
	"disable-object-metrics": "aggregator.object_metrics",
	"disable-metrics-server": "aggregator.metrics_server",
}

func registerCommon(fs *pflag.FlagSet) {
	fs.String("config", "", "path of the YAML config file (keys as in configs/config.yaml)")
	fs.String("interval", "", "collection interval, seconds or a duration such as 15s (metrics.collect_interval, default 15)")
	fs.String("nats-url", "", "NATS server URL(s), comma-separated (nats.url)")
	fs.String("nats-subject-prefix", wire.DefaultPrefix, "prefix of every NATS subject (nats.subject_prefix)")
	fs.String("nats-user", "", "NATS user name (nats.user)")
	fs.String("nats-password", "", "NATS password (nats.password; prefer K8SMON_NATS_PASSWORD)")
	fs.String("nats-token", "", "NATS auth token (nats.token; prefer K8SMON_NATS_TOKEN)")
	fs.String("nats-creds-file", "", "NATS credentials file (nats.creds_file)")
	fs.String("nats-tls-ca-file", "", "CA bundle to verify the NATS server (nats.tls_ca_file)")
	fs.String("nats-tls-cert-file", "", "client certificate for NATS TLS (nats.tls_cert_file)")
	fs.String("nats-tls-key-file", "", "client key for NATS TLS (nats.tls_key_file)")
	fs.Bool("nats-tls-insecure-skip-verify", false, "do not verify the NATS server's certificate (nats.tls_insecure_skip_verify)")
}

// RegisterAgentFlags adds the agent's flags to fs.
func RegisterAgentFlags(fs *pflag.FlagSet) {
	registerCommon(fs)
	fs.Int("nats-buffer-size", DefaultBufferSize, "reports kept while NATS is unreachable, oldest dropped first (nats.buffer_size)")
	fs.String("node-name", "", "this node's name (agent.node_name; default $NODE_NAME, else the hostname)")
	fs.String("node-ip", "", "this node's IP, used in the default kubelet URL (agent.node_ip; default $NODE_IP)")
	fs.String("host-root", "/", "where the host's /, /proc and /sys are mounted in a container (agent.host_root)")
	fs.String("listen", ":9102", "address for /healthz, /readyz and /metrics; empty disables (agent.listen)")
	fs.Duration("source-timeout", 0, "deadline of each data source per cycle; 0 = 5s, at most half the interval (agent.source_timeout)")
	fs.Bool("once", false, "collect one report, print it as JSON on stdout and exit (needs no cluster, NATS or GPU)")
	fs.String("kubelet-url", "", "kubelet base URL (agent.kubelet.url; default https://$NODE_IP:10250)")
	fs.String("kubelet-token-file", DefaultServiceAccountTok, "bearer token file for the kubelet (agent.kubelet.token_file)")
	fs.String("kubelet-ca-file", "", "CA bundle to verify the kubelet (agent.kubelet.ca_file)")
	fs.Bool("kubelet-insecure-skip-tls-verify", false, "do not verify the kubelet's certificate (agent.kubelet.insecure_skip_tls_verify)")
	fs.Bool("disable-kubelet", false, "do not read the kubelet (agent.kubelet.enabled=false)")
	fs.String("pod-resources-socket", DefaultPodResourcesSock, "kubelet pod-resources socket, for GPU-to-pod attribution (agent.gpu.pod_resources_socket)")
	fs.Bool("disable-gpu", false, "do not load NVML (agent.gpu.enabled=false)")
	fs.StringSlice("disk-mounts", nil, "mount points to report; default every real filesystem (agent.disk.mounts)")
	fs.String("root-dir", "/", "filesystem the node's disk fields describe, e.g. /var/lib/kubelet (agent.disk.root_dir)")
	registerAgentAuthFlags(fs)
}

// RegisterAggregatorFlags adds the aggregator's flags to fs.
func RegisterAggregatorFlags(fs *pflag.FlagSet) {
	registerCommon(fs)
	fs.String("nats-listen", DefaultNATSListen, "address of the embedded NATS server when --nats-url is empty (nats.listen)")
	fs.StringSlice("namespaces", nil, "namespaces to watch; default all (metrics.namespaces)")
	fs.String("cache-retention", "", "history kept per node and pod, seconds or a duration such as 2h (metrics.cache_retention, default 300)")
	fs.String("http-addr", ":8080", "address of the HTTP API (aggregator.http_addr)")
	fs.String("kubeconfig", "", "kubeconfig path; default in-cluster config, else $KUBECONFIG or ~/.kube/config, else standalone (aggregator.kubeconfig)")
	fs.Int("stale-intervals", DefaultStaleIntervals, "missed agent intervals before a node is stale (aggregator.stale_intervals)")
	fs.Bool("disable-metrics-server", false, "do not read metrics.k8s.io (aggregator.metrics_server=false)")
	fs.Bool("disable-object-metrics", false, "leave per-node and per-pod gauges out of /metrics (aggregator.object_metrics=false)")
	fs.Int("max-snapshot-streams", DefaultSnapshotStreams, "snapshot-sized HTTP answers written at once; more get 429 (aggregator.max_snapshot_streams)")
	fs.Bool("pprof", false, "serve Go profiles on /debug/pprof/ of the HTTP API; for operators, do not expose (aggregator.pprof)")
	registerAggregatorAuthFlags(fs)
	fs.String("data-dir", "", "directory of the embedded NATS server's JetStream store; empty = a temporary one, lost at exit (aggregator.data_dir)")
	fs.Int("nats-stream-replicas", 0, "replicas of the JetStream streams; 0 = 3 on a NATS cluster, else 1 (nats.jetstream.replicas)")
}

// Load reads the configuration: defaults, then the file named by --config
// (if any), then K8SMON_* environment variables, then the flags of fs that
// were set. fs must be parsed; it may be nil.
func Load(fs *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	setDefaults(v)
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	cfg := &Config{}
	if fs != nil {
		if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
			cfg.File = f.Value.String()
		}
		for name, key := range FlagKeys {
			if f := fs.Lookup(name); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, fmt.Errorf("bind flag --%s: %w", name, err)
				}
			}
		}
		for name, key := range negatedFlags {
			if f := fs.Lookup(name); f != nil && f.Changed && f.Value.String() == "true" {
				v.Set(key, false)
			}
		}
	}
	if cfg.File == "" {
		cfg.File = os.Getenv(EnvPrefix + "_CONFIG")
	}
	if cfg.File != "" {
		v.SetConfigFile(cfg.File)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config file %s: %w", cfg.File, err)
		}
	}
	if err := fill(v, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func fill(v *viper.Viper, c *Config) error {
	var errs []error
	dur := func(key string) time.Duration {
		d, err := ParseSeconds(v.Get(key))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return d
	}
	c.Metrics = MetricsConfig{
		Enabled:         v.GetBool("metrics.enabled"),
		CollectInterval: dur("metrics.collect_interval"),
		Namespaces:      nonEmpty(v.GetStringSlice("metrics.namespaces")),
		EnableNode:      v.GetBool("metrics.enable_node"),
		EnablePod:       v.GetBool("metrics.enable_pod"),
		EnableNetwork:   v.GetBool("metrics.enable_network"),
		EnableCustom:    v.GetBool("metrics.enable_custom"),
		CacheRetention:  dur("metrics.cache_retention"),
	}
	c.NATS = NATSConfig{
		URL:           v.GetString("nats.url"),
		SubjectPrefix: v.GetString("nats.subject_prefix"),
		User:          v.GetString("nats.user"),
		Password:      v.GetString("nats.password"),
		Token:         v.GetString("nats.token"),
		CredsFile:     v.GetString("nats.creds_file"),
		TLSCAFile:     v.GetString("nats.tls_ca_file"),
		TLSCertFile:   v.GetString("nats.tls_cert_file"),
		TLSKeyFile:    v.GetString("nats.tls_key_file"),
		TLSInsecure:   v.GetBool("nats.tls_insecure_skip_verify"),
		Listen:        v.GetString("nats.listen"),
		BufferSize:    v.GetInt("nats.buffer_size"),
	}
	c.Agent = AgentConfig{
		NodeName:      v.GetString("agent.node_name"),
		NodeIP:        v.GetString("agent.node_ip"),
		HostRoot:      v.GetString("agent.host_root"),
		Listen:        v.GetString("agent.listen"),
		SourceTimeout: dur("agent.source_timeout"),
		Once:          v.GetBool("agent.once"),
		Kubelet: KubeletConfig{
			Enabled:               v.GetBool("agent.kubelet.enabled"),
			URL:                   v.GetString("agent.kubelet.url"),
			TokenFile:             v.GetString("agent.kubelet.token_file"),
			CAFile:                v.GetString("agent.kubelet.ca_file"),
			InsecureSkipTLSVerify: v.GetBool("agent.kubelet.insecure_skip_tls_verify"),
		},
		GPU: GPUConfig{
			Enabled:            v.GetBool("agent.gpu.enabled"),
			PodResourcesSocket: v.GetString("agent.gpu.pod_resources_socket"),
		},
		DiskMounts: nonEmpty(v.GetStringSlice("agent.disk.mounts")),
		RootDir:    v.GetString("agent.disk.root_dir"),
		Thresholds: model.Thresholds{
			CPURate:    v.GetFloat64("agent.thresholds.cpu_rate"),
			MemoryRate: v.GetFloat64("agent.thresholds.memory_rate"),
			DiskRate:   v.GetFloat64("agent.thresholds.disk_rate"),
			GPUTempC:   v.GetInt("agent.thresholds.gpu_temperature_c"),
		},
	}
	c.Aggregator = AggregatorConfig{
		HTTPAddr:        v.GetString("aggregator.http_addr"),
		Kubeconfig:      v.GetString("aggregator.kubeconfig"),
		StaleIntervals:  v.GetInt("aggregator.stale_intervals"),
		MetricsServer:   v.GetBool("aggregator.metrics_server"),
		ObjectMetrics:   v.GetBool("aggregator.object_metrics"),
		HistoryPoints:   v.GetInt("aggregator.history_points"),
		MaxNodes:        v.GetInt("aggregator.max_nodes"),
		MaxClockSkew:    dur("aggregator.max_clock_skew"),
		NodeEventRate:   v.GetFloat64("aggregator.node_event_rate"),
		NodeEventBurst:  v.GetInt("aggregator.node_event_burst"),
		EventsRetention: dur("aggregator.events_retention"),
		EventsMax:       v.GetInt("aggregator.events_max"),
	}
	c.Aggregator.MaxSnapshotStreams = v.GetInt("aggregator.max_snapshot_streams")
	c.Aggregator.Pprof = v.GetBool("aggregator.pprof")
	fillAuth(v, c)
	if err := fillVMs(v, c); err != nil {
		errs = append(errs, err)
	}
	if err := fillJetStream(v, c); err != nil {
		errs = append(errs, err)
	}
	// Node identity falls back to the downward API's variables.
	if c.Agent.NodeName == "" {
		c.Agent.NodeName = os.Getenv("NODE_NAME")
	}
	if c.Agent.NodeName == "" {
		if h, err := os.Hostname(); err == nil {
			c.Agent.NodeName = h
		}
	}
	if c.Agent.NodeIP == "" {
		c.Agent.NodeIP = os.Getenv("NODE_IP")
	}
	if c.Agent.SourceTimeout == 0 {
		c.Agent.SourceTimeout = min(DefaultSourceTimeout, c.Metrics.CollectInterval/2)
	}
	if c.Agent.Kubelet.URL == "" && c.Agent.NodeIP != "" {
		c.Agent.Kubelet.URL = "https://" + joinHostPort(c.Agent.NodeIP, "10250")
	}
	return errors.Join(errs...)
}

// ParseSeconds reads a duration written as a number of seconds (the seed's
// form: 30) or as a Go duration ("15s", "2h").
func ParseSeconds(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int:
		return time.Duration(x) * time.Second, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	case time.Duration:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second)), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is neither seconds nor a duration such as 15s or 2h", s)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%v (%T) is neither seconds nor a duration", v, v)
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			if p := strings.TrimSpace(part); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}
