// Package mcp serves the aggregator's picture of the cluster to LLM
// clients over the Model Context Protocol: streamable HTTP at /mcp,
// stateless and read-only, built on the official Go SDK.
//
// Every tool answers with one verdict line, then key: value facts and
// small ranked tables, plus the same in structured content, and never
// exceeds its max_tokens budget (tokens estimated as bytes ÷ 4 of the
// serialized result, see BytesPerToken). Lists put the most relevant
// items first and say how many they left out and which arguments narrow
// the question.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Route is where RegisterRoutes mounts the server.
const Route = "/mcp"

// Diagnosis is what diagnose_pod and diagnose_node answer with; the
// aggregator's *diagnose.Diagnosis satisfies it. Its JSON is the
// structured content (an "evidence" array is cut from the end to fit the
// budget), and Text renders the text within maxBytes, verdict first.
type Diagnosis interface {
	Text(maxBytes int) string
}

// Options configure the server. Provider is required; a tool whose
// dependency is nil is not offered.
type Options struct {
	// Provider serves snapshots and history (the aggregator's state.Store).
	Provider api.Provider
	// Querier answers node and pod lists with the HTTP API's filters; pass
	// the HTTP handler's so both share one index per snapshot. Nil: one of
	// the server's own, with Thresholds.
	Querier *api.Querier
	// Thresholds decide pressure, as in api.Options; zero fields take the
	// defaults. Ignored when Querier is set (its thresholds apply).
	Thresholds model.Thresholds
	// DiagnosePod and DiagnoseNode diagnose one object; an unknown one is
	// an error whose message says so. They back diagnose_pod and
	// diagnose_node.
	DiagnosePod  func(ctx context.Context, namespace, name string) (Diagnosis, error)
	DiagnoseNode func(ctx context.Context, name string) (Diagnosis, error)
	// RecentEvents lists events (backs recent_events). Its answer must
	// marshal to the events store's page JSON:
	// {"count","total","items":[event…],"next"}.
	RecentEvents func(ctx context.Context, f EventFilter) (any, error)
	// Logger receives refused calls (at most one a second) and recovered
	// panics; nil discards.
	Logger *slog.Logger
}

// Server is the MCP server. It is an http.Handler for Route.
type Server struct {
	opts    Options
	q       *api.Querier
	log     *slog.Logger
	sdk     *sdk.Server
	handler http.Handler
	tools   []string

	calls *prometheus.CounterVec
	// lastLog is when a refusal was last logged (Unix ns), for the rate limit.
	lastLog atomic.Int64
}

// Outcomes of a tool call, the outcome label of the calls counter.
const (
	outcomeOK       = "ok"
	outcomeInvalid  = "invalid"  // the caller's arguments
	outcomeNotFound = "notfound" // no such object
	outcomeError    = "error"    // no snapshot yet, a failing dependency, a bug
)

// New returns the server with its tools and prompts.
func New(opts Options) (*Server, error) {
	if opts.Provider == nil {
		return nil, errors.New("mcp server: no provider")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := opts.Querier
	if q == nil {
		q = api.NewQuerier(opts.Provider, opts.Thresholds)
	}
	s := &Server{
		opts: opts, q: q, log: log,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: api.MetricsNamespace, Subsystem: "mcp", Name: "tool_calls_total",
			Help: "MCP tool calls, by tool and outcome (ok, invalid, notfound, error).",
		}, []string{"tool", "outcome"}),
	}
	sdkLog := slog.New(warnOnly{log.Handler()})
	s.sdk = sdk.NewServer(serverInfo, &sdk.ServerOptions{Instructions: instructions, Logger: sdkLog})
	if err := s.addTools(); err != nil {
		return nil, err
	}
	s.addPrompts()
	s.handler = sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.sdk },
		&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: sdkLog})
	return s, nil
}

// warnOnly passes on the SDK's records of level warn and above: at info
// it logs a session's start and end, which stateless mode has per request.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnOnly{h.Handler.WithAttrs(attrs)}
}

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }

// instructions tell a client what the server is for and how to use it.
const instructions = `Read-only view of a Kubernetes cluster: nodes, pods, GPUs and virtual machines, with history and diagnoses.
Start with cluster_overview; for a failing pod or node call diagnose_pod or diagnose_node, which give a verdict and its evidence.
Every tool takes max_tokens (default 2000; tokens = bytes/4) and ranks lists most relevant first; a cut answer says what it left out and which arguments narrow the question.`

// ServeHTTP serves the streamable HTTP transport.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// RegisterRoutes mounts the server on mux at Route.
func (s *Server) RegisterRoutes(mux *http.ServeMux) { mux.Handle(Route, s) }

// Collectors returns the server's metrics, for api.Options.Collectors.
func (s *Server) Collectors() []prometheus.Collector { return []prometheus.Collector{s.calls} }

// Tools returns the names of the tools offered, in registration order.
func (s *Server) Tools() []string { return append([]string(nil), s.tools...) }

// Budget is the max_tokens argument every tool takes.
type Budget struct {
	MaxTokens int `json:"max_tokens,omitempty" jsonschema:"largest answer in tokens (bytes/4), 100 to 50000; default 2000"`
}

func (b Budget) maxTokens() int { return b.MaxTokens }

// budgeted is a tool's input: its own arguments and Budget.
type budgeted interface{ maxTokens() int }

// toolSpec describes one tool.
type toolSpec struct {
	name, title, description string
	// enums lists the allowed values of string arguments, for the schema.
	enums map[string][]string
}

// addTool registers a tool whose handler builds an answer; the wrapper
// decodes and checks the arguments (strictly: unknown ones are refused),
// checks max_tokens, fits the answer to it, turns errors into tool errors
// (within the budget too), counts the outcome and recovers a panic. It
// does the SDK's usual argument handling itself so that every refusal is
// counted and its message bounded (the SDK echoes whole values).
func addTool[In budgeted](s *Server, spec toolSpec, h func(ctx context.Context, in In) (fitter, error)) error {
	schema, err := inputSchema[In](spec.enums)
	if err != nil {
		return fmt.Errorf("input schema of tool %s: %w", spec.name, err)
	}
	resolved, err := schema.Resolve(nil)
	if err != nil {
		return fmt.Errorf("resolve input schema of tool %s: %w", spec.name, err)
	}
	tool := &sdk.Tool{
		Name: spec.name, Title: spec.title, Description: spec.description, InputSchema: schema,
		Annotations: &sdk.ToolAnnotations{Title: spec.title, ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)},
	}
	s.sdk.AddTool(tool, func(ctx context.Context, req *sdk.CallToolRequest) (res *sdk.CallToolResult, _ error) {
		maxBytes := MaxBytes(DefaultMaxTokens)
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("tool panicked", "tool", spec.name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				res = s.failure(spec.name, fmt.Errorf("internal error in %s", spec.name), maxBytes)
			}
		}()
		in, err := decodeArgs[In](req.Params.Arguments, resolved)
		if err == nil {
			maxBytes, err = resolveMaxTokens(in.maxTokens())
		}
		if err != nil {
			return s.failure(spec.name, err, MaxBytes(DefaultMaxTokens)), nil
		}
		a, err := h(ctx, in)
		if err != nil {
			return s.failure(spec.name, err, maxBytes), nil
		}
		s.calls.WithLabelValues(spec.name, outcomeOK).Inc()
		return a.fit(maxBytes), nil
	})
	s.tools = append(s.tools, spec.name)
	return nil
}

// maxErrorDetail bounds the part of a refusal that comes from decoding or
// schema checks, which may quote what the caller sent.
const maxErrorDetail = 300

// decodeArgs decodes a call's arguments into In, refusing unknown ones and
// wrong types, then checks them against the tool's schema (enums, ranges,
// lengths).
func decodeArgs[In any](raw json.RawMessage, schema *jsonschema.Resolved) (In, error) {
	var in In
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, invalidf("arguments: %s", truncate(err.Error(), maxErrorDetail))
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return in, invalidf("arguments: want a JSON object: %s", truncate(err.Error(), maxErrorDetail))
	}
	if err := schema.Validate(doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "validating root: ")
		return in, invalidf("arguments: %s", truncate(msg, maxErrorDetail))
	}
	return in, nil
}

// failure answers a refused or failed call as a tool error, so the model
// reads the reason and can retry, and counts and logs it.
func (s *Server) failure(tool string, err error, maxBytes int) *sdk.CallToolResult {
	outcome := outcomeError
	var te *toolError
	if errors.As(err, &te) {
		outcome = te.outcome
	}
	s.calls.WithLabelValues(tool, outcome).Inc()
	now := time.Now().UnixNano()
	if last := s.lastLog.Load(); now-last >= int64(time.Second) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("tool call refused", "tool", tool, "outcome", outcome, "error", err)
	}
	msg := err.Error()
	// The message echoes bounded arguments; cut it anyway to the budget.
	for {
		res := newResult(msg, nil)
		res.IsError = true
		if resultSize(res) <= maxBytes || msg == "" {
			return res
		}
		msg = truncate(msg, len(msg)*3/4)
	}
}

// toolError is an error the caller caused.
type toolError struct {
	outcome string
	msg     string
}

func (e *toolError) Error() string { return e.msg }

// invalidf reports a bad argument, saying what is wrong and what is allowed.
func invalidf(format string, args ...any) error {
	return &toolError{outcome: outcomeInvalid, msg: fmt.Sprintf(format, args...)}
}

// notFoundf reports an object that does not exist.
func notFoundf(format string, args ...any) error {
	return &toolError{outcome: outcomeNotFound, msg: fmt.Sprintf(format, args...)}
}

// errNoSnapshot answers before the aggregator has built its first snapshot.
var errNoSnapshot = errors.New("no snapshot yet: the aggregator is starting; retry in a few seconds")

// snapshot returns the current snapshot or errNoSnapshot.
func (s *Server) snapshot() (*model.MetricsSnapshot, error) {
	snap := s.opts.Provider.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot
	}
	return snap, nil
}

// Limits of the arguments, in the schema and checked again by handlers.
const (
	maxNameLen   = 253 // a DNS subdomain, the longest Kubernetes name
	maxLabels    = 20
	maxLabelLen  = 317 // a qualified key, =, a value
	maxHistoryPt = 200
)

// inputSchema infers In's schema and adds the bounds the handlers check,
// so that clients see them and the SDK refuses what breaks them.
func inputSchema[In any](enums map[string][]string) (*jsonschema.Schema, error) {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		return nil, err
	}
	for name, p := range schema.Properties {
		switch {
		case name == "max_tokens":
			// No "default" keyword: the SDK (v1.8.0) panics applying
			// defaults to "arguments": null. The description gives it.
			p.Minimum, p.Maximum = new(float64(MinMaxTokens)), new(float64(MaxMaxTokens))
		case name == "limit":
			p.Minimum, p.Maximum = new(1.0), new(float64(api.MaxLimit))
		case name == "points":
			p.Minimum, p.Maximum = new(2.0), new(float64(maxHistoryPt))
		case name == "label":
			p.MaxItems = new(maxLabels)
			if p.Items != nil {
				p.Items.MaxLength = new(maxLabelLen)
			}
		case p.Type == "string":
			p.MaxLength = new(maxNameLen)
		}
		if values, ok := enums[name]; ok {
			p.Enum = make([]any, len(values))
			for i, v := range values {
				p.Enum[i] = v
			}
		}
	}
	return schema, nil
}
