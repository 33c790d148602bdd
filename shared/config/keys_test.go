package config

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigYAMLDocumentsEveryKey: configs/config.yaml names every declared
// key, and declares nothing else.
func TestConfigYAMLDocumentsEveryKey(t *testing.T) {
	v := viper.New()
	v.SetConfigFile("../../configs/config.yaml")
	require.NoError(t, v.ReadInConfig())
	inFile := v.AllKeys() // lists, such as vms.custom, are leaves
	var declared []string
	for _, k := range Keys {
		declared = append(declared, k.Name)
	}
	sort.Strings(inFile)
	sort.Strings(declared)
	assert.Equal(t, declared, inFile)
}

// TestFlagsPerBinary: the flag names are a contract; each binary registers
// exactly its own.
func TestFlagsPerBinary(t *testing.T) {
	common := []string{"config", "interval", "nats-url", "nats-subject-prefix", "nats-user", "nats-password", "nats-token",
		"nats-creds-file", "nats-tls-ca-file", "nats-tls-cert-file", "nats-tls-key-file", "nats-tls-insecure-skip-verify"}
	agent := append([]string{"nats-buffer-size", "node-name", "node-ip", "host-root", "listen", "source-timeout", "once",
		"kubelet-url", "kubelet-token-file", "kubelet-ca-file", "kubelet-insecure-skip-tls-verify", "disable-kubelet",
		"pod-resources-socket", "disable-gpu", "disk-mounts", "root-dir", "nats-token-file"}, common...)
	aggregator := append([]string{"nats-listen", "namespaces", "cache-retention", "http-addr", "kubeconfig", "stale-intervals",
		"disable-metrics-server", "disable-object-metrics", "max-snapshot-streams", "pprof", "data-dir", "nats-stream-replicas",
		"nats-auth-mode", "nats-callout-issuer-seed-file", "nats-allow-anonymous", "http-auth", "token-audience",
		"agent-service-account"}, common...)
	for _, tt := range []struct {
		name     string
		register func(*pflag.FlagSet)
		want     []string
	}{{"agent", RegisterAgentFlags, agent}, {"aggregator", RegisterAggregatorFlags, aggregator}} {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet(tt.name, pflag.ContinueOnError)
			tt.register(fs)
			var got []string
			fs.VisitAll(func(f *pflag.Flag) { got = append(got, f.Name) })
			assert.ElementsMatch(t, tt.want, got)
		})
	}
}

// TestKeysDeclaredOnce: no key, flag or field is declared twice, and every
// key has a default of its field's kind (so that the environment and the
// file are read as that kind).
func TestKeysDeclaredOnce(t *testing.T) {
	names, flags, fields := map[string]bool{}, map[string]bool{}, map[any]string{}
	c := &Config{}
	for _, k := range Keys {
		assert.False(t, names[k.Name], "key %s declared twice", k.Name)
		names[k.Name] = true
		for _, f := range []string{k.Flag, k.Disable} {
			if f != "" {
				assert.False(t, flags[f], "flag --%s declared twice", f)
				flags[f] = true
			}
		}
		p := k.Field(c)
		assert.Empty(t, fields[p], "%s fills the field of %s", k.Name, fields[p])
		fields[p] = k.Name
		assert.NotZero(t, k.For, "%s: which binaries use it", k.Name)
		if k.Flag != "" || k.Disable != "" {
			assert.NotEmpty(t, k.Help, "%s: help text", k.Name)
		}
	}
}

// TestEveryKeyFromEnvironment: each scalar key is read from its K8SMON_
// variable into its field.
func TestEveryKeyFromEnvironment(t *testing.T) {
	values := map[string]string{"*string": "x", "*bool": "true", "*int": "7", "*int64": "7", "*float64": "7", "*[]string": "a,b", "*time.Duration": "7"}
	for _, k := range Keys {
		if k.Name == "vms.custom" {
			continue // a list of objects: file only
		}
		t.Run(k.Name, func(t *testing.T) {
			typ := fmt.Sprintf("%T", k.Field(&Config{}))
			val, ok := values[typ]
			require.True(t, ok, "no test value for %s", typ)
			t.Setenv(envName(k.Name), val)
			cfg, err := Load(nil)
			require.NoError(t, err)
			got := k.Field(cfg)
			want := map[string]any{"*string": "x", "*bool": true, "*int": 7, "*int64": int64(7), "*float64": 7.0,
				"*[]string": []string{"a", "b"}, "*time.Duration": 7e9}[typ]
			assert.EqualValues(t, want, reflect.ValueOf(got).Elem().Interface())
		})
	}
}

func envName(key string) string {
	out := []byte(EnvPrefix + "_")
	for _, r := range []byte(key) {
		switch {
		case r == '.':
			out = append(out, '_')
		case r >= 'a' && r <= 'z':
			out = append(out, r-'a'+'A')
		default:
			out = append(out, r)
		}
	}
	return string(out)
}
