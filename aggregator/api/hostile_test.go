package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
)

const (
	seriesStreams      = "k8smon_http_snapshot_streams"
	seriesSnapshot429  = `k8smon_http_requests_total{code="429",route="/api/v1/metrics/snapshot"}`
	seriesSnapshotCuts = `k8smon_http_write_timeouts_total{route="/api/v1/metrics/snapshot"}`
)

// TestSlowReadersMemoryBounded is the slow-reader attack: 24 clients ask
// for the snapshot of a 1,000-node cluster and never read, while the
// aggregator keeps publishing new builds (one per 8 clients here, as if
// they came over 15 s; every 5 s in the binary). Each stuck client may
// hold only the compressed body of the build it started with, never the
// build itself or a copy of the JSON, so the heap grows by about builds ×
// compressed size plus each stream's own buffers; and the client beyond
// the stream limit is refused with 429.
func TestSlowReadersMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and encodes four 1,000-node snapshots")
	}
	const (
		nodes     = 1000
		clients   = 24
		perBuild  = 8
		builds    = clients / perBuild
		perClient = 256 << 10 // a stream's own buffers: gzip reader, 64 KiB write buffer, conn buffers
		slack     = 16 << 20  // collector and allocator noise
	)
	st := state.NewStore(state.StoreOptions{})
	h := New(st, Options{MaxSnapshotStreams: clients, WriteTimeout: time.Minute})
	addr := startServer(t, h, ServerOptions{}, nil)

	// One build served whole, so that the baseline holds a build, its
	// index and its body, as after the attack.
	st.Publish(benchSnapshot(nodes))
	c := sendGet(t, addr, RouteSnapshot, "Accept-Encoding: gzip")
	resp, body := readResponse(t, c, bufio.NewReader(c))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	gzipSize := compressedSize(t, resp, body)
	plain := body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		plain = gunzip(t, body)
	}
	plainSize := uint64(len(plain))

	before := heapInUse()
	for i := range clients {
		if i%perBuild == 0 {
			st.Publish(benchSnapshot(nodes))
		}
		sendGet(t, addr, RouteSnapshot) // identity: the larger answer
		// The stream has taken its slot, so it serves this build.
		waitForMetric(t, h, seriesStreams, float64(i+1))
	}
	growth := int64(heapInUse()) - int64(before)

	bound := int64(builds*gzipSize + clients*perClient + slack)
	// Beyond the baseline: the bodies of the builds before the last, held
	// by their clients, and each client's own buffers.
	perClientSeen := (growth - int64((builds-1)*gzipSize)) / clients
	t.Logf("JSON %s, gzip %s; heap growth with %d stuck clients over %d builds: %s (about %d KB per client beyond the bodies); bound %s; %d copies of the JSON: %s",
		mb(plainSize), mb(gzipSize), clients, builds, mb(uint64(max(growth, 0))), perClientSeen/1000, mb(uint64(bound)), clients, mb(clients*plainSize))
	assert.Less(t, growth, bound)

	// The next client is refused, with the usual error body.
	c = sendGet(t, addr, RouteSnapshot)
	resp, body = readResponse(t, c, bufio.NewReader(c))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, strconv.Itoa(RetryAfterSeconds), resp.Header.Get("Retry-After"))
	var eb errorBody
	require.NoError(t, json.Unmarshal(body, &eb), string(body))
	assert.Equal(t, http.StatusTooManyRequests, eb.Status)
	assert.Contains(t, eb.Error, "retry in 5 s")
	assert.Equal(t, 1.0, metricValue(t, h, seriesSnapshot429))
}

// TestSlowListReadersMemoryBounded: the same attack on the pod list, with
// and without a limit (15,000 pods, a snapshot-sized answer, and 10,000):
// each stuck client, one per build, holds its own compressed answer, not
// the build. These clients read the response header (sent once the answer
// is encoded) and then nothing.
func TestSlowListReadersMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and encodes five 500-node snapshots")
	}
	const (
		nodes     = 500
		clients   = 4
		perClient = 256 << 10
		slack     = 16 << 20
	)
	targets := []string{RoutePods, RoutePods + "?limit=10000"}
	st := state.NewStore(state.StoreOptions{})
	h := New(st, Options{MaxSnapshotStreams: clients, WriteTimeout: time.Minute})
	addr := startServer(t, h, ServerOptions{}, nil)

	st.Publish(benchSnapshot(nodes))
	c := sendGet(t, addr, targets[0], "Accept-Encoding: gzip")
	resp, body := readResponse(t, c, bufio.NewReader(c))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	gzipSize := compressedSize(t, resp, body) // of the larger answer

	before := heapInUse()
	for i := range clients {
		st.Publish(benchSnapshot(nodes))
		c := sendGet(t, addr, targets[i%len(targets)])
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Minute)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	growth := int64(heapInUse()) - int64(before)

	bound := int64(clients*(gzipSize+perClient) + slack)
	t.Logf("pod list gzip %s; heap growth with %d stuck clients over %d builds: %s; bound %s",
		mb(gzipSize), clients, clients, mb(uint64(max(growth, 0))), mb(uint64(bound)))
	assert.Less(t, growth, bound)
	assert.Equal(t, float64(clients/2), metricValue(t, h, seriesStreams), "only the larger list takes a slot")
}

// TestNonReaderCutOffAtWriteDeadline: a client that reads nothing is
// disconnected once a write has waited the write timeout, and the cut-off
// is counted; the client finds a truncated body.
func TestNonReaderCutOffAtWriteDeadline(t *testing.T) {
	st := state.NewStore(state.StoreOptions{})
	st.Publish(benchSnapshot(100)) // 2 MB of JSON: far more than the sockets hold
	h := New(st, Options{WriteTimeout: 300 * time.Millisecond})
	var closed atomic.Int32
	addr := startServer(t, h, ServerOptions{}, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, cs http.ConnState) {
			if cs == http.StateClosed {
				closed.Add(1)
			}
		}
	})

	c := sendGet(t, addr, RouteSnapshot)
	require.Eventually(t, func() bool { return closed.Load() == 1 }, 30*time.Second, 10*time.Millisecond,
		"the server never closed the connection of a client that reads nothing")
	assert.Equal(t, 1.0, metricValue(t, h, seriesSnapshotCuts))
	assert.Equal(t, 0.0, metricValue(t, h, seriesStreams), "the stream slot is released")

	br := bufio.NewReader(c)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, resp.Body)
	assert.Error(t, err, "the body ends early")
	assert.Less(t, n, resp.ContentLength)
}

// TestSlowReaderServedToTheEnd: a client that reads slowly but steadily is
// served the whole answer even though it takes many times the write
// timeout: the deadline moves with each write.
func TestSlowReaderServedToTheEnd(t *testing.T) {
	snap := benchSnapshot(100)
	st := state.NewStore(state.StoreOptions{})
	st.Publish(snap)
	const timeout = time.Second
	h := New(st, Options{WriteTimeout: timeout})
	addr := startServer(t, h, ServerOptions{}, nil)
	want, err := marshal(snap)
	require.NoError(t, err)

	c := sendGet(t, addr, RouteSnapshot)
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Minute)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	var got []byte
	buf := make([]byte, streamSize)
	for {
		n, err := io.ReadFull(resp.Body, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			break
		}
		time.Sleep(timeout / 10) // a slow reader: one write's worth per pause
	}
	assert.Greater(t, time.Since(start), 2*timeout, "the test must outlast the write timeout to mean anything")
	assert.Equal(t, len(want), len(got))
	assert.True(t, string(want) == string(got), "the body differs from the snapshot's JSON")
	assert.Equal(t, 0.0, metricValue(t, h, seriesSnapshotCuts))
}

// TestConnectionTimeouts: connections that send nothing more (idle
// keep-alive) or send a header too slowly are closed by the server.
func TestConnectionTimeouts(t *testing.T) {
	h := New(fixtureStore(t), Options{})
	opts := ServerOptions{IdleTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 200 * time.Millisecond}
	tests := []struct {
		name string
		send func(t *testing.T, addr string) net.Conn
	}{
		{"idle keep-alive", func(t *testing.T, addr string) net.Conn {
			c := sendGet(t, addr, RouteHealthz)
			resp, _ := readResponse(t, c, bufio.NewReader(c))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.False(t, resp.Close, "the connection is kept alive")
			return c
		}},
		{"header never finished", func(t *testing.T, addr string) net.Conn {
			c := dial(t, addr)
			_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: test\r\n")
			require.NoError(t, err)
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, h, opts, nil)
			c := tt.send(t, addr)
			// A read returns when the server closes; the deadline only
			// guards the test.
			require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection open")
			}
		})
	}
}

// TestOpenConnectionsGauge: k8smon_http_connections shows a kept-alive
// connection as idle while it is open, and drops it when it closes.
func TestOpenConnectionsGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := startServer(t, New(fixtureStore(t), Options{}), ServerOptions{Registerer: reg}, nil)
	idle := func() float64 {
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			for _, m := range f.GetMetric() {
				if f.GetName() == "k8smon_http_connections" && m.GetLabel()[0].GetValue() == "idle" {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	require.Equal(t, 0.0, idle())

	c := sendGet(t, addr, RouteHealthz)
	resp, _ := readResponse(t, c, bufio.NewReader(c))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return idle() == 1 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return idle() == 0 }, 30*time.Second, 10*time.Millisecond)
}

// TestHeaderTooLarge: a header beyond MaxHeaderBytes is refused with 431.
func TestHeaderTooLarge(t *testing.T) {
	addr := startServer(t, New(fixtureStore(t), Options{}), ServerOptions{MaxHeaderBytes: 4 << 10}, nil)
	c := sendGet(t, addr, RouteHealthz, "X-Padding: "+strings.Repeat("a", 16<<10))
	resp, _ := readResponse(t, c, bufio.NewReader(c))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}

// TestStreamLimit: with one stream slot held by a client that does not
// read, snapshot-sized answers (the snapshot, a list of more than
// MaxLimit items) are refused with 429 and Retry-After, smaller ones are
// served, and the slot comes back when the client leaves.
func TestStreamLimit(t *testing.T) {
	st := state.NewStore(state.StoreOptions{})
	st.Publish(benchSnapshot(400)) // 12,000 pods
	h := New(st, Options{MaxSnapshotStreams: 1})
	addr := startServer(t, h, ServerOptions{}, nil)

	stuck := sendGet(t, addr, RouteSnapshot)
	waitForMetric(t, h, seriesStreams, 1)

	tests := []struct {
		target string
		status int
	}{
		{RouteSnapshot, http.StatusTooManyRequests},
		{RoutePods, http.StatusTooManyRequests},
		{RoutePods + "?phase=Running", http.StatusTooManyRequests},
		{RoutePods + "?limit=10000", http.StatusOK},
		{RoutePods + "?namespace=ns-3", http.StatusOK},
		{RouteNodes, http.StatusOK},
		{RouteCluster, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(h, tt.target)
			require.Equal(t, tt.status, rec.Code)
			if tt.status != http.StatusTooManyRequests {
				return
			}
			assert.Equal(t, "5", rec.Header().Get("Retry-After"))
			assert.JSONEq(t, `{"error":"1 snapshot-sized answers are being written, the most at once: retry in 5 s","status":429}`, rec.Body.String())
		})
	}

	require.NoError(t, stuck.Close())
	waitForMetric(t, h, seriesStreams, 0)
	resp, err := http.Get("http://" + addr + RouteSnapshot)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestPprof: the profiles are served only when switched on.
func TestPprof(t *testing.T) {
	off := New(fixtureStore(t), Options{})
	rec := get(off, "/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.JSONEq(t, `{"error":"no such endpoint: /debug/pprof/","status":404}`, rec.Body.String())

	on := New(fixtureStore(t), Options{Pprof: true})
	for _, target := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		t.Run(target, func(t *testing.T) {
			rec := get(on, target)
			assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.NotEmpty(t, rec.Body.String())
		})
	}
	assert.Contains(t, get(on, "/metrics").Body.String(), `k8smon_http_requests_total{code="200",route="/debug/pprof/"} 3`)
}

// TestNewServerDefaults: zero options take the documented defaults; set
// ones are kept.
func TestNewServerDefaults(t *testing.T) {
	s := NewServer(http.NotFoundHandler(), ServerOptions{})
	assert.Equal(t, DefaultReadHeaderTimeout, s.ReadHeaderTimeout)
	assert.Equal(t, DefaultReadTimeout, s.ReadTimeout)
	assert.Equal(t, DefaultIdleTimeout, s.IdleTimeout)
	assert.Equal(t, DefaultMaxHeaderBytes, s.MaxHeaderBytes)
	assert.Zero(t, s.WriteTimeout, "write deadlines are per write, set by the handler")
	assert.NotNil(t, s.ErrorLog)

	s = NewServer(http.NotFoundHandler(), ServerOptions{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second, MaxHeaderBytes: 1024})
	assert.Equal(t, []any{time.Second, 2 * time.Second, 3 * time.Second, 1024}, []any{s.ReadHeaderTimeout, s.ReadTimeout, s.IdleTimeout, s.MaxHeaderBytes})
}

// TestServerErrorLogIsLimited: net/http's own error lines, some of which
// any client can cause, reach the log at a limited rate.
func TestServerErrorLogIsLimited(t *testing.T) {
	var buf bytes.Buffer
	l := newErrorLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 100 {
		l.Print("http: URL query contains semicolon")
	}
	assert.Equal(t, 1, strings.Count(buf.String(), "semicolon"), buf.String())
}
