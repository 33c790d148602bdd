package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Routes, as registered.
const (
	RouteList   = "/api/v1/events"
	RouteStream = "/api/v1/events/stream"
)

// HTTP defaults.
const (
	DefaultMaxStreams   = 64
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 30 * time.Second // as the rest of the API's
	// MaxSince bounds a relative since= (a duration back from now).
	MaxSince = 30 * 24 * time.Hour
	// streamBatch is how many events a stream writes before it looks
	// for shutdown again.
	streamBatch = 100
	// refusalLogEvery spaces the warnings about refused requests.
	refusalLogEvery = 10 * time.Second
)

var (
	listParams   = []string{"node", "namespace", "pod", "type", "reason", "kind", "name", "since", "limit", "after"}
	streamParams = []string{"node", "namespace", "pod", "type", "reason", "kind", "name", "since"}
)

// HTTPOptions configure the event routes; zero values take the defaults.
type HTTPOptions struct {
	// Done ends every open stream when it is closed: pass the server's
	// shutdown, since http.Server.Shutdown waits for streams otherwise.
	Done <-chan struct{}
	// MaxStreams bounds the streams open at once; more are answered 503.
	MaxStreams int
	// Heartbeat is how often an idle stream sends a comment, so proxies
	// and clients see the connection is alive.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a stream: a client that stops
	// reading is disconnected instead of holding a stream slot.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// Registerer receives the events metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// errorBody is the JSON of every error, as in the rest of the API.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

type handler struct {
	store   *Store
	opts    HTTPOptions
	streams atomic.Int64
	refused *prometheus.CounterVec

	logMu   sync.Mutex
	lastLog map[string]time.Time
}

// RegisterRoutes serves the events on mux:
//
//	GET /api/v1/events         ?node= &namespace= &pod= &type=Normal|Warning|<reason> &reason= &kind= &name= &since= &limit= &after=
//	GET /api/v1/events/stream  the same filters but limit and after; resumes after the Last-Event-ID header
func RegisterRoutes(mux *http.ServeMux, store *Store, opts HTTPOptions) {
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{
		store: store, opts: opts, lastLog: map[string]time.Time{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "events", Name: "http_refused_total",
			Help: "Event requests refused, by reason: bad_query, too_many_streams.",
		}, []string{"reason"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.refused, newStoreCollector(store, &h.streams))
	}
	mux.HandleFunc(RouteList, h.get(h.list))
	mux.HandleFunc(RouteStream, h.get(h.stream))
}

// get answers methods other than GET and HEAD with a JSON 405, as the
// rest of the API does.
func (h *handler) get(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
			return
		}
		next(w, r)
	}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.RawQuery, listParams, time.Now())
	if err != nil {
		h.refuse(w, r, "bad_query", http.StatusBadRequest, err.Error())
		return
	}
	page, err := h.store.List(f)
	if err != nil {
		h.refuse(w, r, "bad_query", http.StatusBadRequest, "after: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// ParseFilter reads a query strictly: a parameter not in allowed, one given
// twice or empty, or a value out of range is an error for a 400. since is
// an RFC 3339 time or a duration back from now ("30m", at most 30 days).
func ParseFilter(rawQuery string, allowed []string, now time.Time) (Filter, error) {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Filter{}, fmt.Errorf("malformed query: %w", err)
	}
	q := make(map[string]string, len(vals))
	for k, v := range vals {
		switch {
		case !slices.Contains(allowed, k):
			return Filter{}, fmt.Errorf("unknown query parameter %q (allowed: %s)", truncate(k, 64), strings.Join(allowed, ", "))
		case len(v) > 1:
			return Filter{}, fmt.Errorf("query parameter %q given %d times", k, len(v))
		case v[0] == "":
			return Filter{}, fmt.Errorf("query parameter %q is empty", k)
		case len(v[0]) > maxField:
			return Filter{}, fmt.Errorf("query parameter %q is longer than %d bytes", k, maxField)
		}
		q[k] = v[0]
	}
	f := Filter{Node: q["node"], Namespace: q["namespace"], Pod: q["pod"], Reason: q["reason"],
		ObjectKind: q["kind"], ObjectName: q["name"], After: q["after"]}
	f.Type = q["type"]
	if s := q["since"]; s != "" {
		if f.Since, err = parseSince(s, now); err != nil {
			return Filter{}, err
		}
	}
	if l := q["limit"]; l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxLimit {
			return Filter{}, fmt.Errorf("limit: %q is not a whole number from 1 to %d", truncate(l, 64), MaxLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxSince {
		return time.Time{}, fmt.Errorf("since: %q is neither an RFC 3339 time nor a duration from 1ns to %s (such as 30m)", truncate(s, 64), MaxSince)
	}
	return now.Add(-d), nil
}

// stream serves Server-Sent Events: each event as "id: <id>" and
// "data: <JSON>", comments as heartbeats. It starts after Last-Event-ID
// when given, else at since= when given, else with the next event.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.RawQuery, streamParams, time.Now())
	if err != nil {
		h.refuse(w, r, "bad_query", http.StatusBadRequest, err.Error())
		return
	}
	cursor := r.Header.Get("Last-Event-ID")
	if cursor != "" {
		if _, err := h.store.parseID(cursor); errors.Is(err, ErrBadCursor) {
			h.refuse(w, r, "bad_query", http.StatusBadRequest, "Last-Event-ID: "+err.Error())
			return
		}
	} else if f.Since.IsZero() {
		cursor = h.store.Latest()
	}
	if n := h.streams.Add(1); n > int64(h.opts.MaxStreams) {
		h.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		h.refuse(w, r, "too_many_streams", http.StatusServiceUnavailable,
			fmt.Sprintf("too many event streams open (%d); retry later", h.opts.MaxStreams))
		return
	}
	defer h.streams.Add(-1)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout)) // unsupported by test recorders
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 5000\n: connected\n\n")) {
		return
	}
	heartbeat := time.NewTicker(h.opts.Heartbeat)
	defer heartbeat.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.opts.Done:
			return
		default:
		}
		changed := h.store.Changed()
		evs, next, err := h.store.Since(cursor, f, streamBatch)
		if err != nil { // the cursor was checked above; nothing else fails
			return
		}
		cursor = next
		buf.Reset()
		for i := range evs {
			writeSSE(&buf, &evs[i])
		}
		if buf.Len() > 0 && !write(buf.Bytes()) {
			return
		}
		if len(evs) == streamBatch {
			continue
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		case <-h.opts.Done:
			return
		}
	}
}

// writeSSE appends one event. JSON holds no raw newline, so one data line
// carries it whole.
func writeSSE(buf *bytes.Buffer, e *Event) {
	b, err := marshal(e)
	if err != nil {
		return
	}
	buf.WriteString("id: ")
	buf.WriteString(e.ID)
	buf.WriteString("\ndata: ")
	buf.Write(bytes.TrimRight(b, "\n"))
	buf.WriteString("\n\n")
}

// refuse answers a refused request and counts it; the warning is rate
// limited per reason, since clients choose how often they are refused.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, reason string, status int, msg string) {
	h.refused.WithLabelValues(reason).Inc()
	h.logMu.Lock()
	now := time.Now()
	log := now.Sub(h.lastLog[reason]) >= refusalLogEvery
	if log {
		h.lastLog[reason] = now
	}
	h.logMu.Unlock()
	if log {
		h.opts.Logger.Warn("event request refused", "reason", reason, "path", r.URL.Path, "error", truncate(msg, 256))
	}
	writeError(w, status, msg)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Status: status})
}

// marshal is json.Marshal without HTML escaping, as the rest of the API
// writes it: messages such as "usage >= 90%" stay readable.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = marshal(errorBody{Error: "encode answer: " + err.Error(), Status: status})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// storeCollector exports the store's size and evictions at scrape time.
type storeCollector struct {
	store   *Store
	streams *atomic.Int64
	stored  *prometheus.Desc
	evicted *prometheus.Desc
	open    *prometheus.Desc
}

func newStoreCollector(s *Store, streams *atomic.Int64) *storeCollector {
	return &storeCollector{
		store: s, streams: streams,
		stored:  prometheus.NewDesc("k8smon_events_stored", "Events held in the events store.", nil, nil),
		evicted: prometheus.NewDesc("k8smon_events_evicted_total", "Events dropped from the store, by reason: retention, max, per-object.", []string{"reason"}, nil),
		open:    prometheus.NewDesc("k8smon_events_streams", "Event streams open.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stored
	ch <- c.evicted
	ch <- c.open
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.stored, prometheus.GaugeValue, float64(c.store.Len()))
	for _, why := range []string{"retention", "max", "per-object"} {
		ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(c.store.Evicted()[why]), why)
	}
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(c.streams.Load()))
}
