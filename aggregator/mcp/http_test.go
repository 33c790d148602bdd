package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
)

// recorder keeps the bodies of the responses a client receives, so the
// test can measure answers as they travel.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || res.Body == nil {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, body)
	r.mu.Unlock()
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// last returns the latest JSON-RPC result received, raw.
func (r *recorder) last(t *testing.T) json.RawMessage {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.bodies)
	var msg struct {
		Result json.RawMessage `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.bodies[len(r.bodies)-1], &msg), string(r.bodies[len(r.bodies)-1]))
	return msg.Result
}

// aggregatorServer serves the fixture as the aggregator does: the HTTP
// API with the MCP server mounted through api.Options.Extra.
func aggregatorServer(t *testing.T) *httptest.Server {
	t.Helper()
	st := fixtureStore(t)
	q := api.NewQuerier(st, api.Options{}.Thresholds)
	s, err := New(Options{Provider: st, Querier: q, DiagnosePod: fakeDiagnosePod, DiagnoseNode: fakeDiagnoseNode, RecentEvents: fixtureEvents().list})
	require.NoError(t, err)
	h := api.New(st, api.Options{Querier: q, Collectors: s.Collectors(), Extra: s.RegisterRoutes})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// TestStreamableHTTP connects a client of the same SDK to /mcp over
// streamable HTTP, lists the tools and prompts, and calls each, checking
// every answer's size as received against its budget.
func TestStreamableHTTP(t *testing.T) {
	srv := aggregatorServer(t)
	rec := &recorder{}
	ctx := context.Background()
	transport := &sdk.StreamableClientTransport{Endpoint: srv.URL + Route, HTTPClient: &http.Client{Transport: rec}}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "v0"}, nil).Connect(ctx, transport, nil)
	require.NoError(t, err)
	defer cs.Close()

	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
		assert.NotEmpty(t, tool.Description, tool.Name)
		assert.True(t, tool.Annotations.ReadOnlyHint, tool.Name)
		schema, err := json.Marshal(tool.InputSchema)
		require.NoError(t, err)
		assert.Contains(t, string(schema), `"max_tokens"`, tool.Name)
	}
	assert.ElementsMatch(t, []string{"cluster_overview", "list_nodes", "get_node", "list_pods", "get_pod", "list_vms", "get_vm",
		"gpu_overview", "metric_history", "diagnose_pod", "diagnose_node", "recent_events"}, names)

	calls := map[string]map[string]any{
		"get_node":       {"name": "node-2"},
		"get_pod":        {"namespace": "default", "name": "my-pod"},
		"get_vm":         {"name": "vm-1"},
		"metric_history": {"kind": "pod", "namespace": "default", "name": "my-pod"},
		"diagnose_pod":   {"namespace": "default", "name": "my-pod"},
		"diagnose_node":  {"name": "node-2"},
	}
	for _, name := range names {
		for _, maxTokens := range []int{MinMaxTokens, DefaultMaxTokens} {
			args := map[string]any{"max_tokens": maxTokens}
			for k, v := range calls[name] {
				args[k] = v
			}
			res := call(t, cs, name, args)
			require.False(t, res.IsError, "%s: %s", name, text(t, res))
			assert.NotEmpty(t, text(t, res))
			assert.LessOrEqual(t, len(rec.last(t)), MaxBytes(maxTokens), "%s at %d tokens, as received", name, maxTokens)
		}
	}

	var prompts []string
	for p, err := range cs.Prompts(ctx, nil) {
		require.NoError(t, err)
		prompts = append(prompts, p.Name)
	}
	assert.ElementsMatch(t, []string{"why-is-pod-restarting", "cluster-health-check", "gpu-health"}, prompts)
	got, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "why-is-pod-restarting", Arguments: map[string]string{"namespace": "default", "name": "my-pod"}})
	require.NoError(t, err)
	assert.Contains(t, got.Messages[0].Content.(*sdk.TextContent).Text, "diagnose_pod with namespace=default name=my-pod")
	_, err = cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "why-is-pod-restarting", Arguments: map[string]string{"namespace": "default"}})
	assert.ErrorContains(t, err, "argument name is required")
	got, err = cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "gpu-health", Arguments: map[string]string{"node": "gpu-1"}})
	require.NoError(t, err)
	assert.Contains(t, got.Messages[0].Content.(*sdk.TextContent).Text, "gpu_overview with node=gpu-1")
	_, err = cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "cluster-health-check"})
	require.NoError(t, err)

	// The calls are counted on the aggregator's /metrics.
	res, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	assert.Contains(t, string(body), `k8smon_mcp_tool_calls_total{outcome="ok",tool="list_pods"} 2`)
}

// TestHostileRequests: whatever a client sends, the server answers with a
// JSON-RPC or tool error or an HTTP 4xx, never a 5xx, a panic or a crash.
func TestHostileRequests(t *testing.T) {
	srv := aggregatorServer(t)
	post := func(body string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+Route, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, string(b)
	}
	callBody := func(args string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_nodes","arguments":` + args + `}}`
	}
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"arguments null", callBody("null"), http.StatusOK, `nodes match`},
		{"arguments not an object", callBody("[1,2]"), http.StatusOK, `"isError":true`},
		{"huge key", callBody(`{"` + strings.Repeat("k", 1<<20) + `":1}`), http.StatusOK, `unknown field`},
		{"deep nesting", callBody(strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)), http.StatusBadRequest, "nesting depth"},
		{"nesting under the limit", callBody(strings.Repeat(`{"a":`, 900) + "1" + strings.Repeat("}", 900)), http.StatusOK, `unknown field \"a\"`},
		{"unknown tool", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_node"}}`, http.StatusOK, `delete_node`},
		{"not JSON", `{"jsonrpc":`, http.StatusBadRequest, ""},
		{"body over 4 MiB", callBody(`{"label":["` + strings.Repeat("x", 5<<20) + `"]}`), http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(tt.body)
			assert.Equal(t, tt.status, status, "%.300s", body)
			assert.Contains(t, body, tt.want)
			assert.Less(t, len(body), 64<<10, "answers stay small")
		})
	}

	res, err := http.Get(srv.URL + Route)
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, "stateless: no GET stream")
}
