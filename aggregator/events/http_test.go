package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const waitFor = 5 * time.Second

func newServer(t *testing.T, s *Store, opts HTTPOptions) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	RegisterRoutes(mux, s, opts)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, url string, wantStatus int, into any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, wantStatus, resp.StatusCode, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(body, into), string(body))
}

func TestListHTTP(t *testing.T) {
	s := NewStore(Options{})
	now := time.Now().UTC()
	for i := range 7 {
		s.AddKube(kubeEvent(fmt.Sprint("u", i), "shop", fmt.Sprint("p", i), "BackOff", "Warning", 1, now))
	}
	s.AddKube(kubeEvent("n", "shop", "p0", "Pulled", "Normal", 1, now.Add(-2*time.Hour)))
	srv := newServer(t, s, HTTPOptions{})

	var p Page
	getJSON(t, srv.URL+RouteList+"?namespace=shop&type=warning&limit=3", http.StatusOK, &p)
	assert.Equal(t, 7, p.Total)
	assert.Equal(t, 3, p.Count)
	require.NotEmpty(t, p.Next)
	var p2 Page
	getJSON(t, srv.URL+RouteList+"?namespace=shop&type=Warning&limit=3&after="+url.QueryEscape(p.Next), http.StatusOK, &p2)
	assert.Equal(t, "p3", p2.Items[0].Pod)
	// type= also matches a reason.
	var pulled Page
	getJSON(t, srv.URL+RouteList+"?type=Pulled", http.StatusOK, &pulled)
	assert.Equal(t, 1, pulled.Total)

	var recent Page
	getJSON(t, srv.URL+RouteList+"?since=1h", http.StatusOK, &recent)
	assert.Equal(t, 7, recent.Total, "the Pulled event is two hours old")
	var at Page
	getJSON(t, srv.URL+RouteList+"?pod=p0&since="+url.QueryEscape(now.Add(-3*time.Hour).Format(time.RFC3339)), http.StatusOK, &at)
	assert.Equal(t, 2, at.Total)

	// The JSON keys are the contract.
	resp, err := http.Get(srv.URL + RouteList + "?pod=p1")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var generic map[string]any
	require.NoError(t, json.Unmarshal(raw, &generic))
	assert.ElementsMatch(t, []string{"count", "total", "items"}, keys(generic))
	item := generic["items"].([]any)[0].(map[string]any)
	assert.ElementsMatch(t, []string{"id", "time", "source", "type", "severity", "node", "namespace", "pod", "object", "reason", "message", "count"}, keys(item))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestListHTTPRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := newServer(t, NewStore(Options{}), HTTPOptions{Registerer: reg})
	for _, q := range []string{
		"foo=bar", "limit=0", "limit=1001", "limit=x", "since=yesterday", "since=-5m",
		"since=1000h", "node=a&node=b", "pod=", "after=nope", "after=abc-1", "%zz", "name=" + strings.Repeat("x", 300),
	} {
		var e errorBody
		getJSON(t, srv.URL+RouteList+"?"+q, http.StatusBadRequest, &e)
		assert.Equal(t, http.StatusBadRequest, e.Status, q)
		assert.NotEmpty(t, e.Error, q)
	}
	assert.Equal(t, 13.0, testutil.ToFloat64(refusedCounter(t, reg, "bad_query")))

	req, _ := http.NewRequest(http.MethodPost, srv.URL+RouteList, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
}

// refusedCounter finds the refusal counter of one reason on reg.
func refusedCounter(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "k8smon_events_http_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return 0 })
}

// sseClient reads a stream the way an EventSource does.
type sseClient struct {
	resp *http.Response
	r    *bufio.Reader
}

type sseMessage struct {
	id    string
	event Event
}

func openStream(t *testing.T, ctx context.Context, u, lastID string) *sseClient {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	return &sseClient{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next message, skipping comments; comments seen are
// counted in pings.
func (c *sseClient) next(t *testing.T, pings *int) (sseMessage, error) {
	t.Helper()
	var m sseMessage
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return m, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && m.id != "":
			return m, nil
		case strings.HasPrefix(line, ":"):
			if pings != nil && strings.HasPrefix(line, ": ping") {
				*pings++
			}
		case strings.HasPrefix(line, "id: "):
			m.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(line[len("data: "):]), &m.event))
		}
	}
}

func TestStreamResumes(t *testing.T) {
	s := NewStore(Options{})
	now := time.Now().UTC()
	s.AddKube(kubeEvent("before", "shop", "old", "BackOff", "Warning", 1, now))
	srv := newServer(t, s, HTTPOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	// A new stream starts with the next event, not the history.
	c := openStream(t, ctx, srv.URL+RouteStream+"?namespace=shop", "")
	s.AddKube(kubeEvent("a", "other", "x", "BackOff", "Warning", 1, now)) // filtered out
	s.AddKube(kubeEvent("b", "shop", "p1", "BackOff", "Warning", 1, now))
	m1, err := c.next(t, nil)
	require.NoError(t, err)
	assert.Equal(t, "p1", m1.event.Pod)
	assert.Equal(t, m1.event.ID, m1.id)

	// The client drops; meanwhile two events happen, one a recurrence.
	c.resp.Body.Close()
	s.AddKube(kubeEvent("c", "shop", "p2", "BackOff", "Warning", 1, now))
	s.AddKube(kubeEvent("b", "shop", "p1", "BackOff", "Warning", 5, now))

	c2 := openStream(t, ctx, srv.URL+RouteStream+"?namespace=shop", m1.id)
	m2, err := c2.next(t, nil)
	require.NoError(t, err)
	m3, err := c2.next(t, nil)
	require.NoError(t, err)
	assert.Equal(t, "p2", m2.event.Pod)
	assert.Equal(t, "p1", m3.event.Pod)
	assert.Equal(t, 5, m3.event.Count)

	// since= replays history on a first connection.
	c3 := openStream(t, ctx, srv.URL+RouteStream+"?pod=old&since=1h", "")
	m4, err := c3.next(t, nil)
	require.NoError(t, err)
	assert.Equal(t, "old", m4.event.Pod)
}

func TestStreamHeartbeatAndShutdown(t *testing.T) {
	s := NewStore(Options{})
	done := make(chan struct{})
	srv := newServer(t, s, HTTPOptions{Heartbeat: 10 * time.Millisecond, Done: done})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c := openStream(t, ctx, srv.URL+RouteStream, "")
	pings := 0
	for pings < 2 {
		line, err := c.r.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, ": ping") {
			pings++
		}
	}
	close(done)
	_, err := io.Copy(io.Discard, c.r)
	require.NoError(t, err, "the server ends the stream cleanly")
	assert.NoError(t, ctx.Err(), "ended by shutdown, not by the test's deadline")
}

func TestStreamLimitAndBadCursor(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStore(Options{})
	srv := newServer(t, s, HTTPOptions{MaxStreams: 2, Registerer: reg})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	a := openStream(t, ctx, srv.URL+RouteStream, "")
	openStream(t, ctx, srv.URL+RouteStream, "")
	var e errorBody
	getJSON(t, srv.URL+RouteStream, http.StatusServiceUnavailable, &e)
	assert.Contains(t, e.Error, "too many event streams")

	// A closed stream frees its slot.
	a.resp.Body.Close()
	require.Eventually(t, func() bool {
		resp, err := http.Get(srv.URL + RouteStream + "?limit=1") // a 400 costs no slot
		if err != nil {
			return false
		}
		resp.Body.Close()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+RouteStream, nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, waitFor, 10*time.Millisecond)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+RouteStream, nil)
	req.Header.Set("Last-Event-ID", "not-an-id")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, 1.0, testutil.ToFloat64(refusedCounter(t, reg, "too_many_streams")))
}
