package api

import (
	"bytes"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Server defaults; requests are GETs without a body, so reading one is
// quick and small.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultMaxHeaderBytes bounds a request's header (net/http allows
	// 4 KiB more); large enough for a bearer token.
	DefaultMaxHeaderBytes = 32 << 10
)

// ServerOptions configure NewServer; zero fields take the defaults.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's header.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends nothing more.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// Logger receives the server's own errors, at a limited rate; nil
	// discards them.
	Logger *slog.Logger
	// Registerer, when set, gets k8smon_http_connections: the open
	// connections by state, which shows clients holding them idle.
	Registerer prometheus.Registerer
}

// NewServer returns the HTTP server for h (the handler New returns) with
// bounds on what each client may take: time to send a request, size of
// its header and time a connection may idle. Write deadlines are set per
// response by the handler (Options.WriteTimeout), not here: a server-wide
// WriteTimeout would cut off a large response however fast it is read.
func NewServer(h http.Handler, opts ServerOptions) *http.Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(opts.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:       orDefault(opts.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    orDefault(opts.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          newErrorLog(log),
	}
	if opts.Registerer != nil {
		ct := newConnTracker()
		opts.Registerer.MustRegister(ct.open)
		srv.ConnState = ct.observe
	}
	return srv
}

// connTracker counts open connections by state.
type connTracker struct {
	open *prometheus.GaugeVec

	mu    sync.Mutex
	state map[net.Conn]http.ConnState
}

func newConnTracker() *connTracker {
	ct := &connTracker{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: MetricsNamespace, Subsystem: "http", Name: "connections",
			Help: "Open HTTP connections by state: new (no request read yet), active, idle (kept alive between requests).",
		}, []string{"state"}),
		state: map[net.Conn]http.ConnState{},
	}
	for _, s := range []http.ConnState{http.StateNew, http.StateActive, http.StateIdle} {
		ct.open.WithLabelValues(s.String())
	}
	return ct
}

// observe is the server's ConnState hook.
func (ct *connTracker) observe(c net.Conn, s http.ConnState) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if prev, ok := ct.state[c]; ok {
		ct.open.WithLabelValues(prev.String()).Dec()
	}
	if s == http.StateClosed || s == http.StateHijacked {
		delete(ct.state, c)
		return
	}
	ct.state[c] = s
	ct.open.WithLabelValues(s.String()).Inc()
}

func orDefault[T time.Duration | int](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// newErrorLog turns net/http's error log into slog warnings at a limited
// rate: some of its lines are caused by clients (a query with a
// semicolon logs one per request).
func newErrorLog(l *slog.Logger) *log.Logger {
	return log.New(&errorLogWriter{log: l, gate: sometimes{every: logEvery}}, "", 0)
}

type errorLogWriter struct {
	log  *slog.Logger
	gate sometimes
}

// Write logs one line of net/http's error log.
func (w *errorLogWriter) Write(p []byte) (int, error) {
	if ok, skipped := w.gate.allow(); ok {
		w.log.Warn("http server", "error", string(bytes.TrimSpace(p)), "suppressed", skipped)
	}
	return len(p), nil
}
