package api

import "net/http"

// snapshot answers GET /api/v1/metrics/snapshot with the whole snapshot:
// json.Marshal of it (map keys sorted). It is encoded once per build, by
// the first request for it, kept with the build's index and shared by
// every request of that build (see answer); it is released with the
// index, when a request finds a newer build. It is a snapshot-sized
// answer: it takes a stream slot.
func (s *server) snapshot(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	body, err := s.snapshotBody()
	if err != nil {
		return err
	}
	release, err := s.takeStream(w, true)
	if err != nil {
		return err
	}
	defer release()
	if err := body.send(w, r); err != nil {
		s.cutShort(r, err)
	}
	return nil
}

// snapshotBody returns the current build's encoded snapshot, encoding it
// on the first call for the build. Only the body is returned: a request
// that writes it must not keep the build alive.
func (s *server) snapshotBody() (*answer, error) {
	ix := s.q.current()
	if ix == nil {
		return nil, errNoSnapshot
	}
	ix.bodyOnce.Do(func() {
		ix.body, ix.bodyErr = encodeAnswer(func(st *jsonStream) { writeSnapshot(st, ix) })
		s.metrics.encodes.Inc()
	})
	return ix.body, ix.bodyErr
}

// writeSnapshot writes the whole snapshot: it equals json.Marshal of it
// (map keys sorted, no HTML escaping).
func writeSnapshot(st *jsonStream, ix *index) {
	snap := ix.snap
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
