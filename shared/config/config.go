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
	Enabled         bool          // metrics.enabled: false collects no node or pod metrics
	CollectInterval time.Duration // metrics.collect_interval: seconds (seed) or a duration ("15s")
	Namespaces      []string      // metrics.namespaces: empty means all
	EnableNode      bool          // metrics.enable_node: host and GPU metrics (see NodeMetrics)
	EnablePod       bool          // metrics.enable_pod: pod metrics (see PodMetrics)
	EnableNetwork   bool          // metrics.enable_network (reserved: no prober yet)
	EnableCustom    bool          // metrics.enable_custom: VM custom resources
	CacheRetention  time.Duration // metrics.cache_retention: seconds or a duration ("2h")
}

// NodeMetrics reports whether node metrics (the host's CPU, memory, disks,
// network and GPUs) are collected; when not, off names the key that turned
// them off, for the sources' reasons.
func (m MetricsConfig) NodeMetrics() (on bool, off string) {
	switch {
	case !m.Enabled:
		return false, "metrics.enabled=false"
	case !m.EnableNode:
		return false, "metrics.enable_node=false"
	}
	return true, ""
}

// PodMetrics reports whether pod metrics (the kubelet's pods and their
// cgroups) are collected; when not, off names the key that turned them off.
func (m MetricsConfig) PodMetrics() (on bool, off string) {
	switch {
	case !m.Enabled:
		return false, "metrics.enabled=false"
	case !m.EnablePod:
		return false, "metrics.enable_pod=false"
	}
	return true, ""
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
		if err := bindFlags(v, fs); err != nil {
			return nil, err
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
	errs := readKeys(v, c)
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
