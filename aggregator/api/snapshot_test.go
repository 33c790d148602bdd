package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
)

const seriesEncodes = "k8smon_http_snapshot_encodes_total"

func getWith(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

// TestSnapshotEncodings: the snapshot is the same JSON whether the client
// takes gzip or not, with Content-Length and Vary set, and HEAD sends the
// headers only. A snapshot of up to one write is never compressed.
func TestSnapshotEncodings(t *testing.T) {
	small := fixtureStore(t)
	large := state.NewStore(state.StoreOptions{})
	large.Publish(benchSnapshot(20)) // 600 pods, 0.4 MB

	tests := []struct {
		name           string
		st             *state.Store
		method         string
		acceptEncoding string
		gzipped        bool
	}{
		{"identity", large, http.MethodGet, "", false},
		{"gzip", large, http.MethodGet, "gzip, deflate, br", true},
		{"gzip refused", large, http.MethodGet, "gzip;q=0, *", false},
		{"HEAD identity", large, http.MethodHead, "", false},
		{"HEAD gzip", large, http.MethodHead, "gzip", true},
		{"small, identity", small, http.MethodGet, "", false},
		{"small, gzip accepted", small, http.MethodGet, "gzip", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(tt.st, Options{})
			want, err := marshal(tt.st.Snapshot())
			require.NoError(t, err)
			rec := getWith(h, tt.method, RouteSnapshot, "Accept-Encoding", tt.acceptEncoding)
			require.Equal(t, http.StatusOK, rec.Code)
			hdr := rec.Header()
			assert.Equal(t, "application/json", hdr.Get("Content-Type"))
			assert.Equal(t, "Accept-Encoding", hdr.Get("Vary"))
			body := rec.Body.Bytes()
			if tt.method == http.MethodHead {
				assert.Empty(t, body)
				body = getWith(h, http.MethodGet, RouteSnapshot, "Accept-Encoding", tt.acceptEncoding).Body.Bytes()
			}
			assert.Equal(t, strconv.Itoa(len(body)), hdr.Get("Content-Length"))
			if tt.gzipped {
				assert.Equal(t, "gzip", hdr.Get("Content-Encoding"))
				body = gunzip(t, body)
			} else {
				assert.Empty(t, hdr.Get("Content-Encoding"))
			}
			assert.Equal(t, string(want), string(body))
		})
	}
}

// TestListEncodings: a list past one write is compressed for a client
// that accepts gzip and equals the identity answer.
func TestListEncodings(t *testing.T) {
	st := state.NewStore(state.StoreOptions{})
	st.Publish(benchSnapshot(20))
	h := New(st, Options{})
	for _, target := range []string{RoutePods, RouteNodes, RoutePods + "?limit=5"} {
		t.Run(target, func(t *testing.T) {
			plain := getWith(h, http.MethodGet, target)
			zipped := getWith(h, http.MethodGet, target, "Accept-Encoding", "gzip")
			require.Equal(t, http.StatusOK, plain.Code)
			require.Equal(t, http.StatusOK, zipped.Code)
			body := zipped.Body.Bytes()
			if plain.Body.Len() > spillSize {
				assert.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
				body = gunzip(t, body)
			}
			assert.Equal(t, plain.Body.String(), string(body))
			assert.Equal(t, strconv.Itoa(plain.Body.Len()), plain.Header().Get("Content-Length"))
		})
	}
}

// TestSnapshotEncodedOncePerBuild: concurrent first requests of a build
// share one encoding, later ones reuse it, and a new build is encoded
// anew.
func TestSnapshotEncodedOncePerBuild(t *testing.T) {
	st := state.NewStore(state.StoreOptions{})
	st.Publish(benchSnapshot(20))
	h := New(st, Options{MaxSnapshotStreams: 16})

	bodies := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			rec := getWith(h, http.MethodGet, RouteSnapshot, "Accept-Encoding", "gzip")
			bodies[i] = rec.Body.Bytes()
		})
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		assert.Equal(t, bodies[0], b)
	}
	assert.Equal(t, 1.0, metricValue(t, h, seriesEncodes))

	get(h, RouteSnapshot)
	assert.Equal(t, 1.0, metricValue(t, h, seriesEncodes), "identity shares the encoding")

	next := benchSnapshot(21)
	st.Publish(next)
	rec := get(h, RouteSnapshot)
	want, err := marshal(next)
	require.NoError(t, err)
	assert.Equal(t, string(want), rec.Body.String(), "the new build is served")
	assert.Equal(t, 2.0, metricValue(t, h, seriesEncodes))
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"deflate, gzip;q=0.5"}, true},
		{[]string{"br", "gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=nope"}, false},
		{[]string{"gzip;q=NaN"}, false},
		{[]string{"gzip;q=2"}, false},
		{[]string{"gzipx"}, false},
		{[]string{",,;;=,gzip;;q=1;"}, true},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.header {
			h.Add("Accept-Encoding", v)
		}
		assert.Equal(t, tt.want, acceptsGzip(h), "%q", tt.header)
	}
}

// TestAnswerEncoder: an answer holds exactly the JSON written to it,
// plain up to spillSize bytes and compressed beyond, across piece
// boundaries.
func TestAnswerEncoder(t *testing.T) {
	tests := []struct {
		name   string
		writes []int
	}{
		{"empty", nil},
		{"one byte", []int{1}},
		{"exactly one write", []int{spillSize - 10, 10}},
		{"one byte more", []int{spillSize, 1}},
		{"many pieces", []int{1, streamSize - 1, streamSize, 3*streamSize + 7, 0, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			e := &answerEncoder{a: &answer{}}
			for i, n := range tt.writes {
				p := bytes.Repeat([]byte{byte('a' + i)}, n)
				_, err := e.Write(p)
				require.NoError(t, err)
				want.Write(p)
			}
			require.NoError(t, e.close())
			a := e.a
			assert.Equal(t, int64(want.Len()), a.plainSize)
			assert.Equal(t, want.Len() > spillSize, a.compressed())
			got := a.plain
			if a.compressed() {
				var n int64
				for _, p := range a.parts {
					assert.LessOrEqual(t, len(p), streamSize)
					n += int64(len(p))
				}
				assert.Equal(t, a.size, n)
				compressed, err := io.ReadAll(a.reader())
				require.NoError(t, err)
				got = gunzip(t, compressed)
			}
			assert.Equal(t, want.String(), string(got))
		})
	}
}
