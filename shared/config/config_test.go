package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func agentFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	RegisterAgentFlags(fs)
	require.NoError(t, fs.Parse(args))
	return fs
}

func TestDefaults(t *testing.T) {
	t.Setenv("NODE_NAME", "node-7")
	t.Setenv("NODE_IP", "10.0.0.7")
	cfg, err := Load(agentFlags(t))
	require.NoError(t, err)
	assert.Equal(t, 15*time.Second, cfg.Metrics.CollectInterval)
	assert.Equal(t, 300*time.Second, cfg.Metrics.CacheRetention)
	assert.Equal(t, "k8smon", cfg.NATS.SubjectPrefix)
	assert.Equal(t, "node-7", cfg.Agent.NodeName)
	assert.Equal(t, "https://10.0.0.7:10250", cfg.Agent.Kubelet.URL)
	assert.True(t, cfg.Agent.GPU.Enabled)
	assert.Equal(t, 24*time.Hour, cfg.Aggregator.EventsRetention)
	assert.Equal(t, 20000, cfg.Aggregator.EventsMax)
	assert.Empty(t, cfg.ValidateAgent())
}

// The seed's config file, with its keys, loads as written.
func TestSeedFileAndPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
metrics:
  enabled: true
  collect_interval: 30
  namespaces:
    - default
    - kube-system
  enable_node: true
  enable_pod: true
  enable_network: false
  enable_custom: false
  cache_retention: 2h
nats:
  url: nats://from-file:4222
agent:
  node_name: from-file
`), 0o600))
	t.Setenv("K8SMON_NATS_URL", "nats://from-env:4222")
	cfg, err := Load(agentFlags(t, "--config", path, "--node-name", "from-flag", "--disable-gpu"))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, cfg.Metrics.CollectInterval)
	assert.Equal(t, []string{"default", "kube-system"}, cfg.Metrics.Namespaces)
	assert.Equal(t, 2*time.Hour, cfg.Metrics.CacheRetention)
	assert.Equal(t, "nats://from-env:4222", cfg.NATS.URL, "env beats file")
	assert.Equal(t, "from-flag", cfg.Agent.NodeName, "flag beats file")
	assert.False(t, cfg.Agent.GPU.Enabled)
	assert.Equal(t, path, cfg.File)
}

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := Load(agentFlags(t, "--config", "../../configs/config.yaml", "--node-ip", "10.1.1.1"))
	require.NoError(t, err)
	assert.Empty(t, cfg.ValidateAgent())
	assert.Empty(t, cfg.ValidateAggregator())
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		args []string
		key  string
	}{
		{[]string{"--interval", "100ms"}, "metrics.collect_interval"},
		{[]string{"--interval", "2h"}, "metrics.collect_interval"},
		{[]string{"--nats-subject-prefix", "a.*"}, "nats.subject_prefix"},
		{[]string{"--nats-url", "::nope"}, "nats.url"},
		{[]string{"--nats-token", "t", "--nats-user", "u"}, "nats.token"},
		{[]string{"--nats-tls-cert-file", "c.pem"}, "nats.tls_cert_file"},
		{[]string{"--source-timeout", "1m"}, "agent.source_timeout"},
		{[]string{"--listen", "nope"}, "agent.listen"},
		{[]string{"--kubelet-url", "ftp://x"}, "agent.kubelet.url"},
		{[]string{"--nats-buffer-size", "-1"}, "nats.buffer_size"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			cfg, err := Load(agentFlags(t, append(tt.args, "--node-ip", "10.0.0.1")...))
			require.NoError(t, err)
			errs := cfg.ValidateAgent()
			require.NotEmpty(t, errs)
			assert.Contains(t, errs[0].Error(), tt.key)
		})
	}
}

func TestBadDurationNamesTheKey(t *testing.T) {
	_, err := Load(agentFlags(t, "--interval", "soon"))
	require.ErrorContains(t, err, "metrics.collect_interval")
}

func TestMissingFile(t *testing.T) {
	_, err := Load(agentFlags(t, "--config", "/nonexistent/config.yaml"))
	require.ErrorContains(t, err, "/nonexistent/config.yaml")
}

func TestAggregatorFlags(t *testing.T) {
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse([]string{"--http-addr", ":9999", "--cache-retention", "1h", "--namespaces", "a,b", "--disable-metrics-server"}))
	cfg, err := Load(fs)
	require.NoError(t, err)
	assert.Equal(t, ":9999", cfg.Aggregator.HTTPAddr)
	assert.Equal(t, time.Hour, cfg.Metrics.CacheRetention)
	assert.Equal(t, []string{"a", "b"}, cfg.Metrics.Namespaces)
	assert.False(t, cfg.Aggregator.MetricsServer)
	assert.Empty(t, cfg.ValidateAggregator())

	cfg.Aggregator.StaleIntervals = 0
	errs := cfg.ValidateAggregator()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "aggregator.stale_intervals")
}

// TestHTTPDefenceKeys: the snapshot stream limit and pprof switch load
// from defaults, file, environment and flags, and a limit out of range is
// refused by name.
func TestHTTPDefenceKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("aggregator:\n  max_snapshot_streams: 7\n"), 0o600))
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		streams int
		pprof   bool
		badKey  string
	}{
		{name: "defaults", streams: DefaultSnapshotStreams},
		{name: "file", args: []string{"--config", path}, streams: 7},
		{name: "env", env: map[string]string{"K8SMON_AGGREGATOR_PPROF": "true", "K8SMON_AGGREGATOR_MAX_SNAPSHOT_STREAMS": "2"}, streams: 2, pprof: true},
		{name: "flags beat file", args: []string{"--config", path, "--pprof", "--max-snapshot-streams", "9"}, streams: 9, pprof: true},
		{name: "zero refused", args: []string{"--max-snapshot-streams", "0"}, badKey: "aggregator.max_snapshot_streams"},
		{name: "too many refused", args: []string{"--max-snapshot-streams", "100000"}, badKey: "aggregator.max_snapshot_streams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
			RegisterAggregatorFlags(fs)
			require.NoError(t, fs.Parse(tt.args))
			cfg, err := Load(fs)
			require.NoError(t, err)
			errs := cfg.ValidateAggregator()
			if tt.badKey != "" {
				require.Len(t, errs, 1)
				assert.Contains(t, errs[0].Error(), tt.badKey)
				return
			}
			assert.Empty(t, errs)
			assert.Equal(t, tt.streams, cfg.Aggregator.MaxSnapshotStreams)
			assert.Equal(t, tt.pprof, cfg.Aggregator.Pprof)
		})
	}
}

func TestAgentMessageLimits(t *testing.T) {
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg, err := Load(fs)
	require.NoError(t, err)
	assert.Equal(t, 10_000, cfg.Aggregator.MaxNodes)
	assert.Equal(t, 2*time.Minute, cfg.Aggregator.MaxClockSkew)
	assert.Equal(t, 1.0, cfg.Aggregator.NodeEventRate)
	assert.Equal(t, 30, cfg.Aggregator.NodeEventBurst)

	t.Setenv("K8SMON_AGGREGATOR_MAX_CLOCK_SKEW", "30s")
	t.Setenv("K8SMON_AGGREGATOR_MAX_NODES", "500")
	cfg, err = Load(fs)
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, cfg.Aggregator.MaxClockSkew)
	assert.Equal(t, 500, cfg.Aggregator.MaxNodes)

	tests := []struct {
		key    string
		mutate func(*AggregatorConfig)
	}{
		{"aggregator.max_nodes", func(a *AggregatorConfig) { a.MaxNodes = 0 }},
		{"aggregator.max_clock_skew", func(a *AggregatorConfig) { a.MaxClockSkew = -time.Second }},
		{"aggregator.max_clock_skew", func(a *AggregatorConfig) { a.MaxClockSkew = 2 * time.Hour }},
		{"aggregator.node_event_rate", func(a *AggregatorConfig) { a.NodeEventRate = 0 }},
		{"aggregator.node_event_burst", func(a *AggregatorConfig) { a.NodeEventBurst = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			c := *cfg
			tt.mutate(&c.Aggregator)
			errs := c.ValidateAggregator()
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), tt.key)
		})
	}
}

func TestEventsKeys(t *testing.T) {
	t.Setenv("K8SMON_AGGREGATOR_EVENTS_RETENTION", "72h")
	t.Setenv("K8SMON_AGGREGATOR_EVENTS_MAX", "500")
	cfg, err := Load(nil)
	require.NoError(t, err)
	assert.Equal(t, 72*time.Hour, cfg.Aggregator.EventsRetention)
	assert.Equal(t, 500, cfg.Aggregator.EventsMax)

	cfg.Aggregator.EventsRetention = time.Second
	cfg.Aggregator.EventsMax = 0
	var keys []string
	for _, err := range cfg.ValidateAggregator() {
		keys = append(keys, err.Error())
	}
	assert.Len(t, keys, 2)
	assert.Contains(t, keys[0]+keys[1], "aggregator.events_retention")
	assert.Contains(t, keys[0]+keys[1], "aggregator.events_max")
}

func TestParseSeconds(t *testing.T) {
	for in, want := range map[any]time.Duration{30: 30 * time.Second, "45": 45 * time.Second, "1.5": 1500 * time.Millisecond, "2h": 2 * time.Hour, 2.5: 2500 * time.Millisecond, nil: 0} {
		got, err := ParseSeconds(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseSeconds([]int{1})
	require.Error(t, err)
}

func TestCustomVMResources(t *testing.T) {
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse([]string{"--config", "../../configs/config.yaml"}))
	cfg, err := Load(fs)
	require.NoError(t, err)
	assert.True(t, cfg.VMs.KubeVirt)
	require.Len(t, cfg.VMs.Custom, 1)
	w := cfg.VMs.Custom[0]
	assert.Equal(t, "wukong", w.Name)
	assert.Equal(t, "wukongs", w.Resource)
	assert.Equal(t, "status.vmName", w.Fields.VMName)
	assert.Equal(t, "spec.memory", w.Fields.Memory)
	assert.Equal(t, "pvcName", w.Fields.PVCName)

	cfg.VMs.Custom = append(cfg.VMs.Custom, CustomVMResource{Name: "wukong", Version: "v1", Resource: "Wukongs"})
	errs := cfg.ValidateAggregator()
	require.Len(t, errs, 2)
	assert.Contains(t, errs[0].Error(), "vms.custom[1].name")
	assert.Contains(t, errs[1].Error(), "vms.custom[1].resource")
}

func TestSourceTimeoutFollowsInterval(t *testing.T) {
	cfg, err := Load(agentFlags(t, "--interval", "3"))
	require.NoError(t, err)
	assert.Equal(t, 1500*time.Millisecond, cfg.Agent.SourceTimeout)
	cfg, err = Load(agentFlags(t))
	require.NoError(t, err)
	assert.Equal(t, DefaultSourceTimeout, cfg.Agent.SourceTimeout)
	cfg, err = Load(agentFlags(t, "--source-timeout", "2s", "--interval", "3"))
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.Agent.SourceTimeout)
}
