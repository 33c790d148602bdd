package mcp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// DiagnosePodInput are diagnose_pod's arguments.
type DiagnosePodInput struct {
	Namespace string `json:"namespace" jsonschema:"the pod's namespace"`
	Name      string `json:"name" jsonschema:"the pod's name"`
	Budget
}

// DiagnoseNodeInput are diagnose_node's arguments.
type DiagnoseNodeInput struct {
	Name string `json:"name" jsonschema:"the node's name"`
	Budget
}

func (s *Server) diagnosePod(ctx context.Context, in DiagnosePodInput) (fitter, error) {
	if in.Namespace == "" || in.Name == "" {
		return nil, invalidf("namespace and name: both required (list_pods name=%q finds a pod in any namespace)", in.Name)
	}
	d, err := s.opts.DiagnosePod(ctx, in.Namespace, in.Name)
	if err != nil {
		return nil, s.diagnoseError(err, "pod "+in.Namespace+"/"+in.Name)
	}
	return newDiagnosisAnswer(d)
}

func (s *Server) diagnoseNode(ctx context.Context, in DiagnoseNodeInput) (fitter, error) {
	if in.Name == "" {
		return nil, invalidf("name: required (list_nodes lists the nodes)")
	}
	d, err := s.opts.DiagnoseNode(ctx, in.Name)
	if err != nil {
		return nil, s.diagnoseError(err, "node "+in.Name)
	}
	return newDiagnosisAnswer(d)
}

// ErrNotFound is what Options.DiagnosePod and DiagnoseNode return, wrapped,
// for an object that does not exist (wrap diagnose.ErrNotFound with it), so
// that the call counts as the caller's mistake rather than a failure.
var ErrNotFound = errors.New("not found")

// diagnoseError turns the diagnoser's error into a tool error.
func (s *Server) diagnoseError(err error, what string) error {
	if errors.Is(err, ErrNotFound) {
		return notFoundf("%v", err)
	}
	return fmt.Errorf("diagnose %s: %w", what, err)
}

// diagnosisAnswer fits a diagnosis to a budget: its JSON as structured
// content, evidence cut from the end, and its own text within what is
// left.
type diagnosisAnswer struct {
	d        Diagnosis
	doc      map[string]json.RawMessage
	evidence []json.RawMessage
}

func newDiagnosisAnswer(d Diagnosis) (*diagnosisAnswer, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode diagnosis: %w", err)
	}
	da := &diagnosisAnswer{d: d}
	if err := json.Unmarshal(b, &da.doc); err != nil {
		return nil, fmt.Errorf("decode diagnosis: want a JSON object: %w", err)
	}
	if raw, ok := da.doc["evidence"]; ok {
		// Not a list: keep it whole as part of the document.
		if json.Unmarshal(raw, &da.evidence) == nil {
			delete(da.doc, "evidence")
		}
	}
	return da, nil
}

func (da *diagnosisAnswer) result(text string, k int) *sdk.CallToolResult {
	structured := make(map[string]any, len(da.doc)+2)
	for key, v := range da.doc {
		structured[key] = v
	}
	if da.evidence != nil {
		structured["evidence"] = da.evidence[:k]
		if left := len(da.evidence) - k; left > 0 {
			structured["evidenceLeftOut"] = left
		}
	}
	return newResult(text, structured)
}

// fit gives the structured evidence at most half of the budget (all of it
// when it fits there), and the text the rest.
func (da *diagnosisAnswer) fit(maxBytes int) *sdk.CallToolResult {
	k := len(da.evidence)
	for k > 0 && resultSize(da.result("", k)) > maxBytes/2 {
		k--
	}
	if resultSize(da.result("", k)) > maxBytes {
		// The document without evidence is too large: text only.
		return (&answer{verdict: da.d.Text(maxBytes / 2)}).squeeze(maxBytes)
	}
	textBytes := maxBytes - resultSize(da.result("", k))
	for textBytes > 0 {
		text := truncate(da.d.Text(textBytes), textBytes)
		res := da.result(text, k)
		over := resultSize(res) - maxBytes
		if over <= 0 {
			return res
		}
		// JSON escapes made the text longer than its bytes: ask for less.
		textBytes -= over + 8
	}
	return da.result("", k)
}

// EventFilter selects events for recent_events; the events store's filter.
type EventFilter struct {
	Node, Namespace, Pod, Type string
	// Since is the oldest time wanted; zero for all kept.
	Since time.Time
	Limit int
}

// Event is one event as the events store's JSON has it.
type Event struct {
	ID        string     `json:"id"`
	Time      time.Time  `json:"time"`
	Source    string     `json:"source,omitempty"`
	Type      string     `json:"type,omitempty"`
	Severity  string     `json:"severity,omitempty"`
	Node      string     `json:"node,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Pod       string     `json:"pod,omitempty"`
	Object    *ObjectRef `json:"object,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Message   string     `json:"message,omitempty"`
	Count     int        `json:"count,omitempty"`
}

// ObjectRef names the object an event is about.
type ObjectRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// eventPage is the events store's page JSON.
type eventPage struct {
	Count int     `json:"count"`
	Total int     `json:"total"`
	Items []Event `json:"items"`
	Next  string  `json:"next,omitempty"`
}

// RecentEventsInput are recent_events' arguments: GET /api/v1/events'.
type RecentEventsInput struct {
	Node      string `json:"node,omitempty" jsonschema:"only events of this node"`
	Namespace string `json:"namespace,omitempty" jsonschema:"only events in this namespace"`
	Pod       string `json:"pod,omitempty" jsonschema:"only events of this pod (with namespace)"`
	Type      string `json:"type,omitempty" jsonschema:"only events of this type or reason, e.g. BackOff, OOMKilled, FailedScheduling"`
	Since     string `json:"since,omitempty" jsonschema:"only events since this time: RFC 3339 (2026-03-01T11:00:00Z) or a duration back from now (30m, 2h)"`
	Limit     int    `json:"limit,omitempty" jsonschema:"at most this many events (default 200)"`
	Budget
}

// Events read for one answer: enough to rank, bounded whatever is asked.
const (
	defaultEventLimit = 200
	maxEventLimit     = 1000
)

// severityRank puts critical first, then warning, then the rest.
func severityRank(s string) int {
	switch s {
	case "critical":
		return 0
	case "warning":
		return 1
	}
	return 2
}

func (s *Server) recentEvents(ctx context.Context, in RecentEventsInput) (fitter, error) {
	f := EventFilter{Node: in.Node, Namespace: in.Namespace, Pod: in.Pod, Type: in.Type, Limit: defaultEventLimit}
	if in.Limit != 0 {
		if in.Limit < 1 || in.Limit > maxEventLimit {
			return nil, invalidf("limit=%d: want 1 to %d", in.Limit, maxEventLimit)
		}
		f.Limit = in.Limit
	}
	if in.Since != "" {
		since, err := parseSince(in.Since, time.Now())
		if err != nil {
			return nil, err
		}
		f.Since = since
	}
	raw, err := s.opts.RecentEvents(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encode events page: %w", err)
	}
	var page eventPage
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("decode events page: %w", err)
	}
	events := page.Items
	slices.SortStableFunc(events, func(a, b Event) int {
		return cmp.Or(cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)), b.Time.Compare(a.Time))
	})
	bySeverity := map[string]int{}
	for _, e := range events {
		bySeverity[orDash(e.Severity)]++
	}
	total := max(page.Total, len(events))
	verdict := plural(total, "event") + " match"
	if total == 1 {
		verdict = "1 event matches"
	}
	if len(events) > 0 {
		verdict += fmt.Sprintf(" (of the %d read: %d critical, %d warning), most severe then newest first",
			len(events), bySeverity["critical"], bySeverity["warning"])
	}
	a := newAnswer(verdict)
	a.data["total"] = total
	a.narrow = "node, namespace, pod, type, since"
	sec := a.section("events", "events", "time severity source object reason count message")
	sec.total = total
	for _, e := range events {
		sec.add(eventLine(e), e)
	}
	return a, nil
}

func eventLine(e Event) string {
	object := e.Node
	switch {
	case e.Pod != "":
		object = e.Namespace + "/" + e.Pod
	case e.Object != nil && e.Object.Name != "":
		object = e.Object.Kind + "/" + e.Object.Name
	}
	count := ""
	if e.Count > 1 {
		count = "x" + strconv.Itoa(e.Count)
	}
	cells := []string{timeText(e.Time), orDash(e.Severity), orDash(e.Source), orDash(object), orDash(e.Reason)}
	if count != "" {
		cells = append(cells, count)
	}
	return strings.Join(cells, " ") + " " + e.Message
}

// maxSince bounds a since duration: far longer than any store keeps.
const maxSince = 90 * 24 * time.Hour

// parseSince reads an RFC 3339 time or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > maxSince {
		return time.Time{}, invalidf("since=%q: want an RFC 3339 time (2026-03-01T11:00:00Z) or a positive duration up to %s (30m, 2h)", s, maxSince)
	}
	return now.Add(-d), nil
}
