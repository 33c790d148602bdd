package config

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chartCase is one render of scripts/chart-check.sh whose values all map to
// configuration keys: the chart must refuse it (expect_fail) or accept it
// (expect_ok).
type chartCase struct {
	line  string
	fail  bool
	keys  []string       // the configuration keys set
	value map[string]any // nested, as in the config file
}

// chartValueKey maps a chart value onto its configuration key; "" when the
// value is the chart's own (images, auth Secrets, probes...).
func chartValueKey(v string) string {
	switch {
	case strings.HasPrefix(v, "metrics."), strings.HasPrefix(v, "nats.jetstream."):
		return v
	case strings.HasPrefix(v, "agent.config."):
		return "agent." + strings.TrimPrefix(v, "agent.config.")
	case strings.HasPrefix(v, "aggregator.config."):
		return "aggregator." + strings.TrimPrefix(v, "aggregator.config.")
	case v == "nats.subjectPrefix":
		return "nats.subject_prefix"
	}
	return ""
}

func declared(key string) bool {
	for _, k := range Keys {
		if k.Name == key {
			return true
		}
	}
	return false
}

// shellWords splits a line as the shell would for the quoting the script
// uses (single and double quotes, no escapes).
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// chartCases reads the renders of scripts/chart-check.sh that set only
// configuration keys.
func chartCases(t *testing.T) []chartCase {
	t.Helper()
	f, err := os.Open("../../scripts/chart-check.sh")
	require.NoError(t, err)
	defer f.Close()
	var out []chartCase
	continued := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		wasContinued := continued
		continued = strings.HasSuffix(line, `\`)
		if wasContinued || continued {
			continue // multi-line renders set the chart's own values
		}
		words := shellWords(line)
		if len(words) == 0 || (words[0] != "expect_fail" && words[0] != "expect_ok") {
			continue
		}
		c := chartCase{line: line, fail: words[0] == "expect_fail", value: map[string]any{}}
		args := words[1:]
		if c.fail {
			args = args[1:] // the message
		}
		if c.ok(args) {
			out = append(out, c)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// ok fills c from --set and --set-string pairs; false when args set
// anything else.
func (c *chartCase) ok(args []string) bool {
	if len(args) == 0 || len(args)%2 != 0 {
		return false
	}
	for i := 0; i < len(args); i += 2 {
		name, val, found := strings.Cut(args[i+1], "=")
		key := chartValueKey(name)
		// An undeclared key is the schema's business: the chart refuses
		// it, the binaries ignore keys they do not know.
		if !found || !declared(key) || (args[i] != "--set" && args[i] != "--set-string") {
			return false
		}
		var typed any = val
		if args[i] == "--set" { // helm types numbers and booleans
			if n, err := strconv.ParseFloat(val, 64); err == nil {
				typed = n
			} else if b, err := strconv.ParseBool(val); err == nil {
				typed = b
			}
		}
		m := c.value
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			if _, ok := m[p].(map[string]any); !ok {
				m[p] = map[string]any{}
			}
			m = m[p].(map[string]any)
		}
		m[parts[len(parts)-1]] = typed
		c.keys = append(c.keys, key)
	}
	return true
}

// TestChartChecksAgree: every render of scripts/chart-check.sh that sets
// configuration keys gets the binaries' verdict: a render the chart refuses
// is refused by Load or by ValidateAgent/ValidateAggregator naming one of
// its keys, and one it accepts is accepted by both binaries.
func TestChartChecksAgree(t *testing.T) {
	t.Setenv("NODE_NAME", "node-1")
	t.Setenv("NODE_IP", "10.0.0.1")
	cases := chartCases(t)
	require.GreaterOrEqual(t, len(cases), 20, "renders of chart-check.sh read")
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			b, err := json.Marshal(c.value)
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "config.json")
			require.NoError(t, os.WriteFile(path, b, 0o600))
			fs := agentFlags(t, "--config", path)
			cfg, err := Load(fs)
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				errs = append(cfg.ValidateAgent(), cfg.ValidateAggregator()...)
			}
			if !c.fail {
				assert.Empty(t, errs, "the chart renders it; the binaries must start")
				return
			}
			require.NotEmpty(t, errs, "the chart refuses it; so must the binaries")
			named := false
			for _, e := range errs {
				for _, k := range c.keys {
					named = named || strings.Contains(e.Error(), k)
				}
			}
			assert.True(t, named, "an error names one of %v: %v", c.keys, errs)
		})
	}
}
