package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
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
