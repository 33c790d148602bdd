package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers for tests against a real server on loopback, with clients that
// speak HTTP/1.1 over raw TCP so they can misbehave.

// sockBuf is the socket buffer size of test connections, on both sides:
// small, so that a client that stops reading blocks the server's writes
// after a few tens of KB rather than after the kernel's megabytes.
const sockBuf = 16 << 10

// smallBufListener gives accepted connections a small send buffer.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(sockBuf)
	}
	return c, err
}

// startServer serves h with NewServer(h, opts) on 127.0.0.1, after tweak
// (which may set hooks such as ConnState), and returns its address.
func startServer(t testing.TB, h http.Handler, opts ServerOptions, tweak func(*http.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := NewServer(h, opts)
	if tweak != nil {
		tweak(srv)
	}
	go func() { _ = srv.Serve(smallBufListener{ln}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// dial opens a client connection with a small receive buffer.
func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	tc := c.(*net.TCPConn)
	require.NoError(t, tc.SetReadBuffer(sockBuf))
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// sendGet writes a GET request for target with extra header lines
// ("Name: value") and reads nothing.
func sendGet(t testing.TB, addr, target string, header ...string) *net.TCPConn {
	t.Helper()
	c := dial(t, addr)
	req := "GET " + target + " HTTP/1.1\r\nHost: test\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	_, err := io.WriteString(c, req+"\r\n")
	require.NoError(t, err)
	return c
}

// readResponse reads one response from c, with its whole body.
func readResponse(t testing.TB, c net.Conn, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	// Generous: the first answer encodes a large snapshot, slow under -race
	// on a loaded machine; the deadline only keeps a broken server from
	// hanging the test.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Minute)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// metricValue reads one series from h's /metrics, e.g.
// `k8smon_http_snapshot_streams`; 0 when absent.
func metricValue(t testing.TB, h http.Handler, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(get(h, "/metrics").Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// waitForMetric polls h's /metrics until series has value want.
func waitForMetric(t testing.TB, h http.Handler, series string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return metricValue(t, h, series) == want },
		30*time.Second, 10*time.Millisecond, "%s never reached %v", series, want)
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // the first may leave finalizer-held objects for the second
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mb(n uint64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// compressedSize is the size of body compressed as the server compresses
// answers: its size if the server sent it compressed, else measured here,
// so that a bound derived from it does not depend on the server doing so.
func compressedSize(t testing.TB, resp *http.Response, body []byte) uint64 {
	t.Helper()
	if resp.Header.Get("Content-Encoding") == "gzip" {
		return uint64(len(body))
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	require.NoError(t, err)
	_, err = zw.Write(body)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return uint64(buf.Len())
}
