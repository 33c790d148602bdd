package diagnose

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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/mcp"
)

// Routes, as registered.
const (
	RoutePod  = "/api/v1/diagnose/pods/{namespace}/{name}"
	RouteNode = "/api/v1/diagnose/nodes/{name}"
)

// Token budgets of text answers are the MCP tools' (mcp.DefaultMaxTokens,
// from mcp.MinMaxTokens to mcp.MaxMaxTokens), counted the same way
// (mcp.MaxBytes: 4 bytes a token).
const (
	// maxName bounds a namespace or name in a path: Kubernetes names are
	// at most 253 bytes.
	maxName = 253
	// refusalLogEvery spaces the warnings about refused requests.
	refusalLogEvery = 10 * time.Second
)

var diagnoseParams = []string{"format", "max_tokens"}

// HTTPOptions configure the diagnosis routes.
type HTTPOptions struct {
	Logger *slog.Logger
	// Registerer receives the refusal counter; nil leaves it unregistered.
	Registerer prometheus.Registerer
}

type handler struct {
	d       *Diagnoser
	log     *slog.Logger
	refused *prometheus.CounterVec

	logMu   sync.Mutex
	lastLog time.Time
}

// RegisterRoutes serves the diagnoses on mux:
//
//	GET /api/v1/diagnose/pods/{namespace}/{name}   ?format=json|text &max_tokens=N (text only)
//	GET /api/v1/diagnose/nodes/{name}              the same
//
// JSON is the Diagnosis; text is Diagnosis.Text within mcp.MaxBytes of
// max_tokens (default 2,000 tokens).
func RegisterRoutes(mux *http.ServeMux, d *Diagnoser, opts HTTPOptions) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{d: d, log: opts.Logger, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "k8smon", Subsystem: "diagnose", Name: "http_refused_total",
		Help: "Diagnosis requests refused, by reason: bad_request.",
	}, []string{"reason"})}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.refused)
	}
	mux.HandleFunc(RoutePod, h.serve(func(r *http.Request) (*Diagnosis, error) {
		return h.d.Pod(r.PathValue("namespace"), r.PathValue("name"))
	}))
	mux.HandleFunc(RouteNode, h.serve(func(r *http.Request) (*Diagnosis, error) {
		return h.d.Node(r.PathValue("name"))
	}))
}

// answerFormat is a parsed query.
type answerFormat struct {
	text      bool
	maxTokens int
}

// parseFormat reads format= and max_tokens= strictly.
func parseFormat(rawQuery string) (answerFormat, error) {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return answerFormat{}, fmt.Errorf("malformed query: %w", err)
	}
	for k, v := range vals {
		switch {
		case !slices.Contains(diagnoseParams, k):
			return answerFormat{}, fmt.Errorf("unknown query parameter %q (allowed: %s)", clip(k), strings.Join(diagnoseParams, ", "))
		case len(v) > 1:
			return answerFormat{}, fmt.Errorf("query parameter %q given %d times", k, len(v))
		case v[0] == "":
			return answerFormat{}, fmt.Errorf("query parameter %q is empty", k)
		}
	}
	f := answerFormat{maxTokens: mcp.DefaultMaxTokens}
	switch vals.Get("format") {
	case "", "json":
	case "text":
		f.text = true
	default:
		return answerFormat{}, fmt.Errorf("format: %q is not json or text", clip(vals.Get("format")))
	}
	if s := vals.Get("max_tokens"); s != "" {
		if !f.text {
			return answerFormat{}, errors.New("max_tokens applies to format=text only")
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < mcp.MinMaxTokens || n > mcp.MaxMaxTokens {
			return answerFormat{}, fmt.Errorf("max_tokens: %q is not a whole number from %d to %d", clip(s), mcp.MinMaxTokens, mcp.MaxMaxTokens)
		}
		f.maxTokens = n
	}
	return f, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (h *handler) serve(diagnose func(*http.Request) (*Diagnosis, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
			return
		}
		format, err := parseFormat(r.URL.RawQuery)
		if err != nil {
			h.refuse(w, r, err.Error())
			return
		}
		for _, v := range []string{r.PathValue("namespace"), r.PathValue("name")} {
			if len(v) > maxName {
				h.refuse(w, r, fmt.Sprintf("a name or namespace is longer than %d bytes", maxName))
				return
			}
		}
		dg, err := diagnose(r)
		switch {
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, err.Error())
			return
		case errors.Is(err, ErrNoSnapshot):
			writeError(w, http.StatusServiceUnavailable, "no snapshot yet")
			return
		case err != nil:
			h.log.Error("diagnose", "path", r.URL.Path, "error", err)
			writeError(w, http.StatusInternalServerError, "internal error")
			return
		}
		if format.text {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(dg.Text(mcp.MaxBytes(format.maxTokens))))
			return
		}
		writeJSON(w, http.StatusOK, dg)
	}
}

// refuse answers 400, counts it and warns at a limited rate.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, msg string) {
	h.refused.WithLabelValues("bad_request").Inc()
	h.logMu.Lock()
	now := time.Now()
	log := now.Sub(h.lastLog) >= refusalLogEvery
	if log {
		h.lastLog = now
	}
	h.logMu.Unlock()
	if log {
		h.log.Warn("diagnosis request refused", "path", clip(r.URL.Path), "error", clip(msg))
	}
	writeError(w, http.StatusBadRequest, msg)
}

type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Status: status})
}

// writeJSON writes v without HTML escaping, as the rest of the API does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(errorBody{Error: "encode answer: " + err.Error(), Status: status})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
