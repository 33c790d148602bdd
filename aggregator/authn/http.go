package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// VerbGet is the verb of every HTTP request's access review: the API is
// read-only, so one permission per path is all there is to grant.
const VerbGet = "get"

// OpenPaths answer without a token: probes must work before anyone has
// one, and the web view's page ("/") holds no data (every figure it shows
// comes from API requests, which carry the token the page asks for), so a
// browser can open it and be asked for a token.
var OpenPaths = []string{"/healthz", "/readyz", "/"}

// DefaultPathPrefix is put before every path the access reviews ask about.
// Kubernetes' default RBAC lets every authenticated identity get the
// non-resource URLs /api and /api/* (system:discovery, for the API
// server's discovery), so asking about /api/v1/metrics/cluster as it is
// would let anyone with a token read everything. Under the prefix, only
// roles written for this product grant anything.
const DefaultPathPrefix = "/k8s-llm-monitor"

// HTTPOptions configure Reviewer.HTTP.
type HTTPOptions struct {
	// PathPrefix is put before the request path in access reviews
	// (aggregator.authz_prefix); empty: DefaultPathPrefix.
	PathPrefix string
	// Audience is accepted besides the API server's own audiences, so a
	// token minted for this product (kubectl create token --audience) works.
	Audience string
	Logger   *slog.Logger
	// Registerer receives the refusal counter; nil skips it.
	Registerer prometheus.Registerer
}

// refusal reasons, the label of k8smon_http_auth_refused_total.
const (
	reasonUnauthenticated = "unauthenticated"
	reasonForbidden       = "forbidden"
	reasonUnavailable     = "unavailable"
)

// HTTP wraps next so that every request but OpenPaths carries a bearer
// token the API server authenticates, and that identity may get the
// request's path, under the path prefix, as a non-resource URL (the way
// kube-rbac-proxy and metrics-server delegate). It answers 401 without a valid token, 403 when
// the review denies, 503 when the API server cannot be asked, in the API's
// JSON error shape ({"error": ..., "status": ...}).
func (r *Reviewer) HTTP(next http.Handler, o HTTPOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "k8smon", Subsystem: "http", Name: "auth_refused_total",
		Help: "HTTP requests refused by authentication or authorization, by reason.",
	}, []string{"reason"})
	for _, reason := range []string{reasonUnauthenticated, reasonForbidden, reasonUnavailable} {
		refused.WithLabelValues(reason)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(refused)
	}
	audiences := [][]string{nil}
	if o.Audience != "" {
		audiences = append(audiences, []string{o.Audience})
	}
	prefix := o.PathPrefix
	if prefix == "" {
		prefix = DefaultPathPrefix
	}
	limit := NewLogLimiter(time.Minute)
	refuse := func(w http.ResponseWriter, req *http.Request, status int, reason, msg string, attrs ...any) {
		refused.WithLabelValues(reason).Inc()
		if n, ok := limit.Allow(reason); ok {
			log.Warn("HTTP request refused", append([]any{"reason", reason, "path", req.URL.Path,
				"remote", req.RemoteAddr, "suppressedSinceLast", n}, attrs...)...)
		}
		switch status {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="k8s-llm-monitor"`)
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "5")
		}
		writeError(w, status, msg)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for _, p := range OpenPaths {
			if req.URL.Path == p {
				next.ServeHTTP(w, req)
				return
			}
		}
		token, ok := bearer(req.Header.Get("Authorization"))
		if !ok {
			refuse(w, req, http.StatusUnauthorized, reasonUnauthenticated,
				"authentication required: send Authorization: Bearer <token> (kubectl create token <serviceaccount>)")
			return
		}
		var id *Identity
		var err error
		for _, aud := range audiences {
			if id, err = r.Authenticate(req.Context(), token, aud); err == nil || !errors.Is(err, ErrUnauthenticated) {
				break
			}
		}
		switch {
		case errors.Is(err, ErrUnavailable):
			refuse(w, req, http.StatusServiceUnavailable, reasonUnavailable,
				"cannot check the token now: the Kubernetes API server did not answer; retry", "error", err)
			return
		case err != nil:
			refuse(w, req, http.StatusUnauthorized, reasonUnauthenticated, "invalid bearer token", "error", err)
			return
		}
		path := prefix + req.URL.Path
		allowed, reason, err := r.Authorize(req.Context(), id, VerbGet, path)
		switch {
		case err != nil:
			refuse(w, req, http.StatusServiceUnavailable, reasonUnavailable,
				"cannot check access now: the Kubernetes API server did not answer; retry", "user", id.Username, "error", err)
			return
		case !allowed:
			refuse(w, req, http.StatusForbidden, reasonForbidden,
				"forbidden: "+id.Username+` may not get non-resource URL "`+path+`"`, "user", id.Username, "why", reason)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// errorBody is the API's error JSON.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// writeError writes as the API does: no HTML escaping (the messages show
// <token> to people), a trailing newline.
func writeError(w http.ResponseWriter, status int, msg string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(errorBody{Error: msg, Status: status}) // two plain fields: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
