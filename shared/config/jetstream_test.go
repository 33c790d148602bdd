package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJetStreamDefaults(t *testing.T) {
	cfg, err := Load(aggregatorFlags(t))
	require.NoError(t, err)
	assert.Equal(t, JetStreamConfig{
		Replicas: 0, ReportsMaxBytes: DefaultReportsMaxBytes, EventsMaxAge: 24 * time.Hour, EventsMaxBytes: DefaultEventsMaxBytes,
	}, cfg.NATS.JetStream)
	assert.Empty(t, cfg.Aggregator.DataDir)
	assert.Empty(t, cfg.ValidateAggregator())
}

func TestJetStreamKeysFromFileEnvAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
nats:
  url: nats://nats:4222
  jetstream:
    replicas: 1
    reports_max_bytes: 536870912
    events_max_age: 48h
aggregator:
  data_dir: /from-file
`), 0o600))
	t.Setenv("K8SMON_NATS_JETSTREAM_EVENTS_MAX_BYTES", "67108864")
	cfg, err := Load(aggregatorFlags(t, "--config", path, "--data-dir", "/from-flag", "--nats-stream-replicas", "3"))
	require.NoError(t, err)
	assert.Equal(t, JetStreamConfig{Replicas: 3, ReportsMaxBytes: 512 << 20, EventsMaxAge: 48 * time.Hour, EventsMaxBytes: 64 << 20}, cfg.NATS.JetStream)
	assert.Equal(t, "/from-flag", cfg.Aggregator.DataDir)
	assert.Empty(t, cfg.ValidateAggregator())
}

func TestJetStreamValidation(t *testing.T) {
	tests := []struct {
		name, url string
		js        JetStreamConfig
		want      string
	}{
		{"replicas beyond NATS's maximum", "nats://nats:4222", JetStreamConfig{Replicas: 7}, "nats.jetstream.replicas: 7 is outside 0..5"},
		{"replicas on the embedded server", "", JetStreamConfig{Replicas: 3}, "needs a NATS cluster"},
		{"tiny reports stream", "", JetStreamConfig{ReportsMaxBytes: 1000}, "nats.jetstream.reports_max_bytes: 1000 is below"},
		{"tiny events stream", "", JetStreamConfig{EventsMaxBytes: 1000}, "nats.jetstream.events_max_bytes: 1000 is below"},
		{"events kept for seconds", "", JetStreamConfig{EventsMaxAge: time.Second}, "nats.jetstream.events_max_age: 1s is outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(aggregatorFlags(t))
			require.NoError(t, err)
			cfg.NATS.URL = tt.url
			js := &cfg.NATS.JetStream
			if tt.js.Replicas != 0 {
				js.Replicas = tt.js.Replicas
			}
			if tt.js.ReportsMaxBytes != 0 {
				js.ReportsMaxBytes = tt.js.ReportsMaxBytes
			}
			if tt.js.EventsMaxBytes != 0 {
				js.EventsMaxBytes = tt.js.EventsMaxBytes
			}
			if tt.js.EventsMaxAge != 0 {
				js.EventsMaxAge = tt.js.EventsMaxAge
			}
			errs := cfg.ValidateAggregator()
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), tt.want)
		})
	}
}
