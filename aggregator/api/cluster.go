package api

import (
	"net/http"
)

// cluster answers GET /api/v1/metrics/cluster with ClusterMetrics.
func (s *server) cluster(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	snap := s.p.Snapshot()
	if snap == nil || snap.ClusterMetrics == nil {
		return errNoSnapshot
	}
	return writeJSON(w, http.StatusOK, snap.ClusterMetrics)
}

// probeBody is the body of a passing probe.
type probeBody struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// healthz answers GET /healthz: 200 while the process works, 503 with the
// reason otherwise.
func (s *server) healthz(w http.ResponseWriter, _ *http.Request) error {
	if ok, reason := s.p.Healthy(); !ok {
		if reason == "" {
			reason = "not healthy"
		}
		return errorf(http.StatusServiceUnavailable, "%s", reason)
	}
	return writeJSON(w, http.StatusOK, probeBody{Status: "ok"})
}

// readyz answers GET /readyz: 503 with the reason until there is a
// snapshot, then 200, with the reason when it qualifies readiness
// (standalone mode).
func (s *server) readyz(w http.ResponseWriter, _ *http.Request) error {
	ok, reason := s.p.Ready()
	if !ok {
		if reason == "" {
			reason = "not ready"
		}
		return errorf(http.StatusServiceUnavailable, "%s", reason)
	}
	return writeJSON(w, http.StatusOK, probeBody{Status: "ready", Reason: reason})
}
