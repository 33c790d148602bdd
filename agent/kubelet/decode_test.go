package kubelet

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// TestFixturesAreKubeletFormat decodes the hand-written fixtures strictly:
// a misspelt field name would otherwise be dropped silently and the tests
// would pass on data the kubelet never sends.
func TestFixturesAreKubeletFormat(t *testing.T) {
	for _, name := range []string{fixture1, fixture2} {
		t.Run(name, func(t *testing.T) {
			dec := json.NewDecoder(bytes.NewReader(fixture(t, name)))
			dec.DisallowUnknownFields()
			var s statsv1alpha1.Summary
			require.NoError(t, dec.Decode(&s))
			assert.Equal(t, "worker-1", s.Node.NodeName)
			assert.NotEmpty(t, s.Pods)
		})
	}
}

func TestDecodeSummary(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{name: "minimal summary", body: `{"node":{"nodeName":"n1"},"pods":[]}`},
		{name: "empty body", body: ``, wantErr: "unexpected end of JSON input"},
		{name: "html error page", body: `<html><body>502 Bad Gateway</body></html>`, wantErr: "invalid character '<'"},
		{name: "truncated", body: `{"node":{"nodeName":"n1"},"pods":[{"podRef":`, wantErr: "unexpected end of JSON input"},
		{name: "array", body: `[]`, wantErr: "cannot unmarshal array"},
		{name: "null", body: `null`, wantErr: "not a stats summary"},
		{name: "empty object", body: `{}`, wantErr: "not a stats summary"},
		{name: "api status object", body: `{"kind":"Status","apiVersion":"v1","status":"Failure"}`, wantErr: "not a stats summary"},
		{name: "wrong type", body: `{"node":{"nodeName":"n1"},"pods":[{"cpu":{"usageCoreNanoSeconds":-1}}]}`, wantErr: "cannot unmarshal number -1"},
		{name: "bad time", body: `{"node":{"nodeName":"n1","startTime":"yesterday"}}`, wantErr: "parsing time"},
		{name: "trailing garbage", body: `{"node":{"nodeName":"n1"}} x`, wantErr: "invalid character 'x' after top-level value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DecodeSummary([]byte(tt.body))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, s)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "n1", s.Node.NodeName)
		})
	}
}

// FuzzDecodeSummary feeds arbitrary bodies through decode and map: neither
// may panic, and whatever they accept must marshal into a report (no NaN or
// infinite rates, which JSON cannot carry).
//
// The seeds are the fixtures cut into one summary per pod plus one of the
// node alone: the fuzzer minimises every input that finds new coverage, and
// minimising a whole 20 KB fixture byte by byte takes longer than a short
// fuzzing run, which then executes almost nothing.
func FuzzDecodeSummary(f *testing.F) {
	for _, name := range []string{fixture1, fixture2} {
		s := decodeFixture(f, name)
		f.Add(mustMarshal(f, Summary{Node: s.Node}))
		for _, p := range s.Pods {
			f.Add(mustMarshal(f, Summary{
				Node: NodeStats{NodeName: s.Node.NodeName},
				Pods: []PodStats{p},
			}))
		}
	}
	f.Add([]byte(`{"node":{"nodeName":"n"},"pods":[{"podRef":{"uid":"u"},"startTime":"2026-01-01T00:00:00Z","cpu":{"time":"0001-01-01T00:00:00Z","usageCoreNanoSeconds":18446744073709551615}}]}`))
	f.Add([]byte(`{"node":{"nodeName":"n"},"pods":[{"network":{"rxBytes":1},"volume":[{"name":"v"}],"containers":[{}]}]}`))
	// Mapping after the first fixture takes the delta and reset paths for
	// inputs that reuse its pod UIDs (every seed cut from the second one).
	previous := decodeFixture(f, fixture1)
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := DecodeSummary(body)
		if err != nil {
			return
		}
		fresh, primed := newMapper(), newMapper()
		primed.Map(previous)
		for _, stats := range []*model.KubeletStats{fresh.Map(s), fresh.Map(s), primed.Map(s)} {
			if _, err := json.Marshal(stats); err != nil {
				t.Fatalf("mapped stats do not marshal: %v", err)
			}
		}
	})
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	require.NoError(tb, err)
	return b
}
