package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var at = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestSubjects(t *testing.T) {
	const n = "ip-10-0-1-7.ec2.internal"
	assert.Equal(t, "k8smon.node.ip-10-0-1-7_ec2_internal.report", NodeReportSubject("k8smon", n))
	assert.Equal(t, "k8smon.node.ip-10-0-1-7_ec2_internal.event", NodeEventSubject("k8smon", n))
	assert.Equal(t, "k8smon.cluster.event", ClusterEventSubject("k8smon"))
	assert.Equal(t, "k8smon.node.*.report", AllNodeReports("k8smon"))
	got, err := NodeFromSubject("k8smon", NodeReportSubject("k8smon", n))
	require.NoError(t, err)
	assert.Equal(t, n, got)

	for _, bad := range []string{"k8smon.node.x", "k8smon.node..report", "other.node.x.report", "k8smon.node.x.metrics", "k8smon.node.x.report.extra",
		"k8smon.node." + strings.Repeat("n", MaxNodeNameBytes+1) + ".report"} {
		_, err := NodeFromSubject("k8smon", bad)
		assert.ErrorIs(t, err, ErrSubject, bad)
	}
	_, err = NodeFromSubject("k8smon", "k8smon.node."+strings.Repeat("n", MaxNodeNameBytes)+".event")
	require.NoError(t, err, "the longest node name Kubernetes allows")
	require.NoError(t, ValidPrefix("acme.k8smon"))
	for _, bad := range []string{"", "a..b", "a b", "k8s*", ">"} {
		assert.Error(t, ValidPrefix(bad), bad)
	}
}

func sampleReport(node string) *model.NodeReport {
	return &model.NodeReport{NodeName: node, Timestamp: at, IntervalSeconds: 15, Node: model.NodeMetrics{NodeName: node, CPUCapacity: 4000}}
}

func TestReportRoundTrip(t *testing.T) {
	r := sampleReport("a.b")
	data, err := EncodeReport(r)
	require.NoError(t, err)
	var env map[string]any
	require.NoError(t, json.Unmarshal(data, &env))
	assert.Equal(t, Schema, env["schema"])
	assert.Equal(t, KindNodeReport, env["kind"])
	assert.Equal(t, "2026-11-23T12:00:00Z", env["sentAt"])

	got, err := DecodeReport("k8smon", NodeReportSubject("k8smon", "a.b"), data)
	require.NoError(t, err)
	assert.Equal(t, r.Node.CPUCapacity, got.Node.CPUCapacity)
}

func TestDecodeReportRejects(t *testing.T) {
	good, err := EncodeReport(sampleReport("n1"))
	require.NoError(t, err)
	other, err := EncodeReport(sampleReport("n2"))
	require.NoError(t, err)
	event, err := EncodeEvent(KindNodeEvent, "n1", &model.Event{Type: model.EventAgentStarted, Node: "n1", Timestamp: at})
	require.NoError(t, err)
	subject := NodeReportSubject("k8smon", "n1")
	tests := []struct {
		name    string
		subject string
		data    []byte
		want    error
	}{
		{"not json", subject, []byte("{"), ErrMalformed},
		{"empty", subject, nil, ErrMalformed},
		{"other schema", subject, []byte(strings.Replace(string(good), Schema, "k8smon/v9", 1)), ErrSchema},
		{"event on report subject", subject, event, ErrKind},
		{"payload of another node", subject, other, ErrMismatch},
		{"bad subject", "k8smon.nodes.n1.report", good, ErrSubject},
		{"oversized", subject, make([]byte, MaxMessageBytes+1), ErrTooLarge},
		{"null payload", subject, []byte(`{"schema":"k8smon/v1","kind":"NodeReport","sender":"n1","sentAt":"2026-11-23T12:00:00Z","payload":null}`), ErrMalformed},
		{"no timestamp", subject, []byte(`{"schema":"k8smon/v1","kind":"NodeReport","sender":"n1","sentAt":"2026-11-23T12:00:00Z","payload":{"nodeName":"n1"}}`), ErrMalformed},
		{"wrong types", subject, []byte(`{"schema":"k8smon/v1","kind":"NodeReport","sender":"n1","sentAt":"2026-11-23T12:00:00Z","payload":{"nodeName":7}}`), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeReport("k8smon", tt.subject, tt.data)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestEncodeRejectsOversized(t *testing.T) {
	r := sampleReport("n1")
	r.Node.Labels = map[string]string{"big": strings.Repeat("x", MaxMessageBytes)}
	_, err := EncodeReport(r)
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestEvents(t *testing.T) {
	e := &model.Event{Type: model.EventNodeStale, Severity: model.SeverityWarning, Node: "n1", Timestamp: at, Message: "stale"}
	data, err := EncodeEvent(KindClusterEvent, "aggregator-0", e)
	require.NoError(t, err)
	got, err := DecodeClusterEvent(data)
	require.NoError(t, err)
	assert.Equal(t, *e, *got)

	data, err = EncodeEvent(KindNodeEvent, "n1", e)
	require.NoError(t, err)
	_, err = DecodeNodeEvent("k8smon", NodeEventSubject("k8smon", "n2"), data)
	require.ErrorIs(t, err, ErrMismatch)
	_, err = DecodeClusterEvent(data)
	require.ErrorIs(t, err, ErrKind)
	_, err = DecodeClusterEvent([]byte(`{"schema":"k8smon/v1","kind":"ClusterEvent","sender":"a","sentAt":"2026-11-23T12:00:00Z","payload":{}}`))
	require.ErrorIs(t, err, ErrMalformed, "an event needs a type")
}

// FuzzDecode feeds the decoders arbitrary subjects and bytes and checks
// what any accepted message holds (see acceptedProblem).
func FuzzDecode(f *testing.F) {
	good, _ := EncodeReport(sampleReport("n1"))
	ev, _ := EncodeEvent(KindNodeEvent, "n1", &model.Event{Type: model.EventAgentStarted, Node: "n1", Timestamp: at})
	f.Add("k8smon.node.n1.report", good)
	f.Add("k8smon.node.n1.event", ev)
	f.Add("k8smon.node.n1.report", []byte(`{"schema":"k8smon/v1"}`))
	for _, seed := range propertySeeds(f) {
		f.Add("k8smon.node.n1.report", seed)
		f.Add("k8smon.node.n1.event", seed)
	}
	clock := Clock{Now: at, MaxSkew: time.Minute}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		r, err := DecodeReport("k8smon", subject, data)
		if err == nil && (r.NodeName == "" || r.Timestamp.IsZero()) {
			t.Fatalf("accepted a report without name or timestamp: %+v", r)
		}
		if err == nil {
			if p := reportProblem(r, Clock{}); p != "" {
				t.Fatal(p)
			}
		}
		if r, err := DecodeReportAt("k8smon", subject, data, clock); err == nil {
			if p := reportProblem(r, clock); p != "" {
				t.Fatal(p)
			}
		}
		if e, err := DecodeNodeEventAt("k8smon", subject, data, clock); err == nil {
			if p := eventProblem(e, clock); p != "" {
				t.Fatal(p)
			}
		}
		if e, err := DecodeClusterEvent(data); err == nil {
			if p := eventProblem(e, Clock{}); p != "" {
				t.Fatal(p)
			}
		}
	})
}
