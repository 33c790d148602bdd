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

// snapshot answers GET /api/v1/metrics/snapshot with the whole snapshot,
// streamed: it equals json.Marshal of the snapshot (map keys sorted) but
// is never held in memory whole.
func (s *server) snapshot(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	ix := s.q.current()
	if ix == nil {
		return errNoSnapshot
	}
	snap := ix.snap
	st := newJSONStream(w)
	st.raw(`{"timestamp":`)
	st.value(snap.Timestamp)
	st.raw(`,"nodeMetrics":`)
	streamMap(st, snap.NodeMetrics == nil, ix.nodes, func(e nodeEntry) (string, any) { return e.name, e.m })
	st.raw(`,"podMetrics":`)
	streamMap(st, snap.PodMetrics == nil, ix.pods, func(e podEntry) (string, any) { return e.key, e.m })
	st.raw(`,"networkMetrics":`)
	st.value(snap.NetworkMetrics)
	st.raw(`,"clusterMetrics":`)
	st.value(snap.ClusterMetrics)
	if len(snap.VMs) > 0 {
		st.raw(`,"vms":`)
		st.value(snap.VMs)
	}
	st.raw("}")
	if err := st.finish(); err != nil {
		// The status is sent; all that is left is to say so in the log.
		s.log.Warn("snapshot response cut short", "err", err)
	}
	return nil
}

// streamMap writes entries as a JSON object in their (sorted) order, or
// null for a nil map, as json.Marshal would.
func streamMap[E any](st *jsonStream, isNil bool, entries []E, kv func(E) (string, any)) {
	if isNil {
		st.raw("null")
		return
	}
	st.raw("{")
	for i, e := range entries {
		if i > 0 {
			st.raw(",")
		}
		k, v := kv(e)
		st.value(k)
		st.raw(":")
		st.value(v)
	}
	st.raw("}")
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
