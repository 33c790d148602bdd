package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
)

// TestCommandHelpAndErrors: --help goes to stdout, so that `--help | less`
// shows it; a bad flag is said once on stderr with a hint, nothing on stdout.
func TestCommandHelpAndErrors(t *testing.T) {
	cmd := Command{Name: "agent", Usage: "Reads this node.\n", Register: RegisterAgentFlags, Validate: (*Config).ValidateAgent}
	tests := []struct {
		name               string
		args               []string
		wantCode           int
		wantOut, wantErr   string
		emptyOut, emptyErr bool
	}{
		{name: "long help", args: []string{"--help"}, wantOut: "--nats-url", emptyErr: true},
		{name: "short help", args: []string{"-h"}, wantOut: "Reads this node.", emptyErr: true},
		{name: "unknown flag", args: []string{"--bogus"}, wantCode: 2, wantErr: "unknown flag: --bogus", emptyOut: true},
		{name: "version", args: []string{"--version"}, wantOut: "dev", emptyErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			_, _, code, ok := cmd.Parse(tt.args, &out, &errOut)
			assert.False(t, ok)
			assert.Equal(t, tt.wantCode, code)
			assert.Contains(t, out.String(), tt.wantOut)
			assert.Contains(t, errOut.String(), tt.wantErr)
			if tt.emptyOut {
				assert.Empty(t, out.String())
			}
			if tt.emptyErr {
				assert.Empty(t, errOut.String())
			}
			if tt.wantErr != "" {
				assert.Equal(t, 1, strings.Count(errOut.String(), tt.wantErr), "said once")
			}
		})
	}
}

// TestKlogThroughSlog: after Parse, client-go's klog lines come out of the
// same JSON handler as the binary's own, at the level --log-level allows.
func TestKlogThroughSlog(t *testing.T) {
	t.Cleanup(klog.ClearLogger)
	cmd := Command{Name: "agent", Register: RegisterAgentFlags, Validate: (*Config).ValidateAgent}
	var out, errOut bytes.Buffer
	_, logger, _, ok := cmd.Parse([]string{"--node-name", "n1", "--node-ip", "10.0.0.1"}, &out, &errOut)
	require.True(t, ok, errOut.String())
	logger.Info("from slog")
	klog.InfoS("from klog", "pod", "default/web")
	klog.V(1).InfoS("verbose klog") // below info: dropped
	klog.ErrorS(errors.New("boom"), "klog error")
	klog.Flush()

	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "not JSON: %s", line)
		msgs = append(msgs, rec["msg"].(string))
		if rec["msg"] == "from klog" {
			assert.Equal(t, "INFO", rec["level"])
			assert.Equal(t, "default/web", rec["pod"])
		}
		if rec["msg"] == "klog error" {
			assert.Equal(t, "ERROR", rec["level"])
			assert.Equal(t, "boom", rec["err"])
		}
	}
	assert.Equal(t, []string{"from slog", "from klog", "klog error"}, msgs)
}
