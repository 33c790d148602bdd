package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://host:4222", "nats://host:4222"},
		{"nats://user:secret@host:4222", "nats://user:xxxxx@host:4222"},
		{"nats://s3cr3t-token@host:4222", "nats://xxxxx@host:4222"},
		{"nats://a:pw1@h1:4222, nats://tok@h2:4222,nats://h3:4222", "nats://a:xxxxx@h1:4222,nats://xxxxx@h2:4222,nats://h3:4222"},
		{"https://10.0.0.1:10250", "https://10.0.0.1:10250"},
		{"::bad url tok@host", "xxxxx@host"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := RedactURLs(tt.in)
			assert.Equal(t, tt.want, got)
			for _, secret := range []string{"secret", "s3cr3t", "pw1", "tok@"} {
				assert.NotContains(t, got, secret)
			}
		})
	}
}

func aggregatorFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse(args))
	return fs
}

// An embedded NATS server beyond loopback needs authentication or an
// explicit flag; loopback (the default) needs neither.
func TestEmbeddedNATSBeyondLoopbackNeedsAuth(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" = valid
	}{
		{"default loopback", nil, ""},
		{"localhost", []string{"--nats-listen", "localhost:4222"}, ""},
		{"ipv6 loopback", []string{"--nats-listen", "[::1]:4222"}, ""},
		{"all interfaces open", []string{"--nats-listen", ":4222"}, "nats.listen"},
		{"an interface open", []string{"--nats-listen", "10.0.0.5:4222"}, "nats.listen"},
		{"all interfaces, explicitly anonymous", []string{"--nats-listen", ":4222", "--nats-allow-anonymous"}, ""},
		{"all interfaces with a token", []string{"--nats-listen", ":4222", "--nats-token", "t"}, ""},
		{"all interfaces with a user", []string{"--nats-listen", ":4222", "--nats-user", "u", "--nats-password", "p"}, ""},
		{"all interfaces, kubernetes", []string{"--nats-listen", ":4222", "--nats-auth-mode", "kubernetes", "--agent-service-account", "mon/agent"}, ""},
		{"external NATS", []string{"--nats-url", "nats://nats:4222", "--nats-listen", ":4222"}, ""},
		{"external NATS, kubernetes, callout", []string{"--nats-url", "nats://nats:4222", "--nats-auth-mode", "kubernetes",
			"--nats-user", "aggregator", "--nats-password", "pw", "--nats-callout-issuer-seed-file", "/seed"}, ""},
		{"external NATS, kubernetes, no seed", []string{"--nats-url", "nats://nats:4222", "--nats-auth-mode", "kubernetes",
			"--nats-user", "aggregator", "--nats-password", "pw"}, "nats.callout_issuer_seed_file"},
		{"external NATS, kubernetes, no auth user", []string{"--nats-url", "nats://nats:4222", "--nats-auth-mode", "kubernetes",
			"--nats-callout-issuer-seed-file", "/seed"}, "nats.user"},
		{"kubernetes and a token", []string{"--nats-auth-mode", "kubernetes", "--nats-token", "t"}, "nats.auth_mode"},
		{"unknown NATS mode", []string{"--nats-auth-mode", "oidc"}, "nats.auth_mode"},
		{"unknown HTTP mode", []string{"--http-auth", "basic"}, "aggregator.http_auth"},
		{"bad service account", []string{"--agent-service-account", "agent"}, "aggregator.agent_service_account"},
		{"empty audience", []string{"--http-auth", "kubernetes", "--token-audience", ""}, "aggregator.token_audience"},
		{"authz prefix of the API server", []string{"--http-auth", "kubernetes", "--config", writeConfig(t, "aggregator:\n  authz_prefix: /api\n")}, "aggregator.authz_prefix"},
		{"authz prefix not a segment", []string{"--http-auth", "kubernetes", "--config", writeConfig(t, "aggregator:\n  authz_prefix: /a/*\n")}, "aggregator.authz_prefix"},
		{"release authz prefix", []string{"--http-auth", "kubernetes", "--config", writeConfig(t, "aggregator:\n  authz_prefix: /mon-k8s-llm-monitor\n")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(aggregatorFlags(t, tt.args...))
			require.NoError(t, err)
			errs := cfg.ValidateAggregator()
			if tt.want == "" {
				assert.Empty(t, errs)
				return
			}
			require.Len(t, errs, 1, "%v", errs)
			assert.True(t, strings.HasPrefix(errs[0].Error(), tt.want+":"), errs[0].Error())
		})
	}
}

func TestParseServiceAccount(t *testing.T) {
	ns, name, err := ParseServiceAccount("k8s-llm-monitor/k8s-llm-monitor-agent")
	require.NoError(t, err)
	assert.Equal(t, "k8s-llm-monitor", ns)
	assert.Equal(t, "k8s-llm-monitor-agent", name)
	for _, bad := range []string{"", "agent", "/agent", "ns/", "NS/agent", "ns/a/b"} {
		_, _, err := ParseServiceAccount(bad)
		assert.Error(t, err, bad)
	}
}

// The token file is read on every connect: a rotated token is what the
// next connection presents.
func TestTokenFileReadOnEveryConnect(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("first\n"), 0o600))
	var mu sync.Mutex
	var seen []string
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true,
		CustomClientAuthentication: tokenRecorder(func(tok string) {
			mu.Lock()
			seen = append(seen, tok)
			mu.Unlock()
		})})
	require.NoError(t, err)
	ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(5e9))

	cfg := NATSConfig{TokenFile: file}
	assert.Equal(t, "token file "+file, cfg.CredentialKind())
	var o nats.Options
	for _, opt := range cfg.NATSOptions("test") {
		require.NoError(t, opt(&o))
	}
	assert.True(t, o.IgnoreAuthErrorAbort, "a refused token is retried: the next read may be valid")
	for _, want := range []string{"first", "second"} {
		nc, err := nats.Connect(ns.ClientURL(), cfg.NATSOptions("test")...)
		require.NoError(t, err)
		nc.Close()
		assert.Equal(t, want, last())
		require.NoError(t, os.WriteFile(file, []byte("second"), 0o600))
	}

	// Absent at the default path and no mode asking for it: no token.
	cfg = NATSConfig{TokenFile: filepath.Join(t.TempDir(), "absent")}
	assert.Equal(t, "none", cfg.CredentialKind())
	nc, err := nats.Connect(ns.ClientURL(), cfg.NATSOptions("test")...)
	require.NoError(t, err)
	nc.Close()
	assert.Equal(t, "", last())
}

type tokenRecorder func(string)

func (r tokenRecorder) Check(c server.ClientAuthentication) bool {
	r(c.GetOpts().Token)
	return true
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
