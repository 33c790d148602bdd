package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// keyPaths flattens a YAML document into its dotted key paths; lists are
// leaves (vms.custom's items are checked by the config loader).
func keyPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	js, err := utilyaml.ToJSON(doc)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			for k, vv := range sub {
				walk(strings.TrimPrefix(prefix+"."+k, "."), vv)
			}
			return
		}
		out = append(out, prefix)
	}
	walk("", m)
	sort.Strings(out)
	return out
}

// TestConfigMapKeysAreDocumented: every key the chart renders is a key of
// configs/config.yaml, the documented file the binaries read; a misspelled
// key would otherwise be ignored silently.
func TestConfigMapKeysAreDocumented(t *testing.T) {
	documented, err := os.ReadFile("../../configs/config.yaml")
	require.NoError(t, err)
	known := map[string]bool{}
	for _, k := range keyPaths(t, documented) {
		known[k] = true
	}
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			cm := one[*corev1.ConfigMap](t, r, fullname)
			for _, k := range keyPaths(t, []byte(cm.Data["config.yaml"])) {
				assert.True(t, known[k], "config key %s is not in configs/config.yaml", k)
			}
		})
	}
}

// podEnv sets the environment a container would get: literal values as
// they are, downward-API and Secret values as stand-ins.
func podEnv(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			t.Setenv(e.Name, e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP":
			t.Setenv(e.Name, "10.0.0.7")
		case e.ValueFrom.FieldRef != nil:
			t.Setenv(e.Name, "node-7.example.internal")
		case e.ValueFrom.SecretKeyRef != nil:
			t.Setenv(e.Name, "from-a-secret")
		}
	}
}

// loadAs parses a container's arguments with the binary's flags, pointing
// --config at the rendered ConfigMap, and loads the configuration.
func loadAs(t *testing.T, register func(*pflag.FlagSet), c corev1.Container, configFile string) *config.Config {
	t.Helper()
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	register(fs)
	// Registered by each binary's main, next to the config flags.
	fs.String("log-level", "info", "")
	var args []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--config=") {
			a = "--config=" + configFile
		}
		args = append(args, a)
	}
	require.NoError(t, fs.Parse(args), "%s: the chart passes flags the binary does not have", c.Name)
	cfg, err := config.Load(fs)
	require.NoError(t, err)
	return cfg
}

// TestRenderedConfigLoads loads each render's ConfigMap with the agents'
// and the aggregator's arguments and environment, as the pods would, and
// validates it with the binaries' own checks.
func TestRenderedConfigLoads(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			cm := one[*corev1.ConfigMap](t, r, fullname)
			file := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600))

			for _, ds := range all[*appsv1.DaemonSet](r) {
				t.Run(ds.Name, func(t *testing.T) {
					c := container(t, ds.Spec.Template.Spec, "agent")
					podEnv(t, c)
					cfg := loadAs(t, config.RegisterAgentFlags, c, file)
					assert.Empty(t, cfg.ValidateAgent())
					assert.Equal(t, "/host", cfg.Agent.HostRoot)
					assert.Equal(t, "node-7.example.internal", cfg.Agent.NodeName)
					assert.Equal(t, "https://10.0.0.7:10250", cfg.Agent.Kubelet.URL, "the agent calls its own kubelet")
					assert.Equal(t, config.DefaultPodResourcesSock, cfg.Agent.GPU.PodResourcesSocket, "the socket is where the chart mounts it")
					assert.Equal(t, isGPUAgent(c), cfg.Agent.GPU.Enabled)
					assert.NotEmpty(t, cfg.NATS.URL, "agents always connect to a NATS server")
					if natsModes[r.name] == "kubernetes" {
						assert.Equal(t, "token file "+config.DefaultNATSTokenFile, cfg.NATS.CredentialKind(), "the agent presents its projected token")
					}
				})
			}
			t.Run("aggregator", func(t *testing.T) {
				c := container(t, one[*appsv1.Deployment](t, r, aggregatorName).Spec.Template.Spec, "aggregator")
				podEnv(t, c)
				cfg := loadAs(t, config.RegisterAggregatorFlags, c, file)
				assert.Empty(t, cfg.ValidateAggregator())
				assert.Equal(t, ":8080", cfg.Aggregator.HTTPAddr)
				assert.Equal(t, isExternal(r), cfg.NATS.URL != "", "the aggregator embeds NATS unless nats.url is set")
				assert.Equal(t, r.name != "all-features", cfg.VMs.KubeVirt)
				assert.Equal(t, config.AuthKubernetes, cfg.Aggregator.HTTPAuth)
				assert.Equal(t, "/"+fullname, cfg.Aggregator.AuthzPrefix, "the reader roles' paths")
				if natsModes[r.name] == "kubernetes" {
					assert.Equal(t, config.AuthKubernetes, cfg.NATS.AuthMode)
					assert.Equal(t, releaseNamespace+"/"+agentName, cfg.Aggregator.AgentServiceAccount, "agents' pod-bound tokens may publish")
					assert.Equal(t, "k8s-llm-monitor", cfg.Aggregator.TokenAudience)
				} else {
					assert.Empty(t, cfg.NATS.AuthMode)
				}
				if isExternal(r) {
					assert.Empty(t, cfg.Aggregator.DataDir, "the streams live on the external NATS")
				} else {
					assert.Equal(t, dataDir, cfg.Aggregator.DataDir, "the embedded JetStream store is the mounted volume")
				}
				assert.Equal(t, 0, cfg.NATS.JetStream.Replicas)
				assert.Equal(t, 24*time.Hour, cfg.NATS.JetStream.EventsMaxAge)
			})
		})
	}
}
