package api

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxLimit is the largest limit= a list accepts.
const MaxLimit = 10000

// MaxOffset is the largest offset= a list accepts: beyond any cluster's
// node or pod count, and small enough that offset+limit stays an int32.
const MaxOffset = 1 << 24

// Sort keys of the node list: usage rates against capacity.
const (
	SortCPU    = "cpu"
	SortMemory = "memory"
	SortDisk   = "disk"
	SortGPU    = "gpu"
)

// Further sort keys of the pod list. Pods sort by absolute usage for cpu
// and memory (a pod without limits has no rate), by rate against the limit
// for cpuRate and memoryRate.
const (
	SortRestarts   = "restarts"
	SortCPURate    = "cpuRate"
	SortMemoryRate = "memoryRate"
)

var (
	nodeSorts = []string{SortCPU, SortMemory, SortDisk, SortGPU}
	podSorts  = []string{SortCPU, SortMemory, SortRestarts, SortCPURate, SortMemoryRate}
	podPhases = []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"}

	nodeParams = []string{"sort", "order", "limit", "offset", "pressure", "healthy", "stale", "label"}
	podParams  = []string{"namespace", "node", "name", "phase", "sort", "order", "limit", "offset", "minMemoryLimitRate", "minCpuLimitRate"}
)

// labelSelector is one label= parameter: key=value, or key alone for
// existence.
type labelSelector struct {
	key, value string
	exists     bool
}

// listQuery is what node and pod lists share.
type listQuery struct {
	sort    string
	desc    bool
	ordered bool // order= given
	limit   int  // 0: all
	offset  int  // items skipped before the first returned, for paging
}

// nodeQuery is a parsed /api/v1/metrics/nodes query.
type nodeQuery struct {
	listQuery
	pressure, healthy, stale *bool
	labels                   []labelSelector
}

// podQuery is a parsed /api/v1/metrics/pods query.
type podQuery struct {
	listQuery
	namespace, node, name string
	phase                 string
	phaseCode             uint8 // phaseCode(phase)
	phaseNot              bool
	// Minimum usage rates against the limit; negative when not given.
	minMemoryLimitRate, minCPULimitRate float64
	// nodeHash and nameHash are hash32 of node and name, for the scan.
	nodeHash, nameHash uint32
}

// queryReader checks parameters against the allowed set and reads them,
// keeping the first error.
type queryReader struct {
	v   url.Values
	err error
}

func newQueryReader(raw string, allowed []string) *queryReader {
	v, err := url.ParseQuery(raw)
	q := &queryReader{v: v}
	if err != nil {
		q.err = errorf(http.StatusBadRequest, "malformed query string: %v", err)
		return q
	}
	// Sorted so the error names the same parameter every time.
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(allowed) == 0 {
			q.err = errorf(http.StatusBadRequest, "unknown query parameter %q: this endpoint takes none", k)
			return q
		}
		if !slices.Contains(allowed, k) {
			q.err = errorf(http.StatusBadRequest, "unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
			return q
		}
	}
	return q
}

// one returns a single-valued parameter, "" when absent.
func (q *queryReader) one(name string) string {
	vals := q.v[name]
	switch {
	case q.err != nil || len(vals) == 0:
		return ""
	case len(vals) > 1:
		q.err = errorf(http.StatusBadRequest, "query parameter %q given %d times, want once", name, len(vals))
	case vals[0] == "":
		q.err = errorf(http.StatusBadRequest, "query parameter %q is empty", name)
	}
	if q.err != nil {
		return ""
	}
	return vals[0]
}

func (q *queryReader) bool(name string) *bool {
	s := q.one(name)
	if s == "" {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.err = errorf(http.StatusBadRequest, "query parameter %s=%q: want true or false", name, s)
		return nil
	}
	return &b
}

func (q *queryReader) choice(name string, allowed []string) string {
	s := q.one(name)
	if s != "" && !slices.Contains(allowed, s) {
		q.err = errorf(http.StatusBadRequest, "query parameter %s=%q: want one of %s", name, s, strings.Join(allowed, ", "))
		return ""
	}
	return s
}

// rate reads a non-negative percentage; -1 when absent.
func (q *queryReader) rate(name string) float64 {
	s := q.one(name)
	if s == "" {
		return -1
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		q.err = errorf(http.StatusBadRequest, "query parameter %s=%q: want a percentage such as 90 (0 or more)", name, s)
		return -1
	}
	return f
}

func (q *queryReader) list(sorts []string) listQuery {
	l := listQuery{sort: q.choice("sort", sorts)}
	order := q.choice("order", []string{"asc", "desc"})
	l.ordered = order != ""
	switch order {
	case "desc":
		l.desc = true
	case "":
		// Sorting by a measure is for "the most loaded first".
		l.desc = l.sort != ""
	}
	if s := q.one("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			q.err = errorf(http.StatusBadRequest, "query parameter limit=%q: want an integer from 1 to %d", s, MaxLimit)
		}
		l.limit = n
	}
	if s := q.one("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxOffset {
			q.err = errorf(http.StatusBadRequest, "query parameter offset=%q: want an integer from 0 to %d", s, MaxOffset)
		}
		l.offset = n
	}
	return l
}

// withOffset is how many items to select so that the first offset can be
// skipped: limit+offset, or 0 (all) when limit is 0.
func withOffset(limit, offset int) int {
	if limit == 0 {
		return 0
	}
	return limit + offset
}

// skip drops the first offset items.
func skip[T any](items []T, offset int) []T { return items[min(offset, len(items)):] }

// parseNodeQuery reads sort, order, limit, pressure, healthy, stale and
// label (repeatable: key=value or key).
func parseNodeQuery(raw string) (nodeQuery, error) {
	q := newQueryReader(raw, nodeParams)
	nq := nodeQuery{listQuery: q.list(nodeSorts)}
	nq.pressure = q.bool("pressure")
	nq.healthy = q.bool("healthy")
	nq.stale = q.bool("stale")
	if q.err == nil {
		for _, s := range q.v["label"] {
			key, value, hasValue := strings.Cut(s, "=")
			if key == "" {
				q.err = errorf(http.StatusBadRequest, "query parameter label=%q: want key=value or key", s)
				break
			}
			nq.labels = append(nq.labels, labelSelector{key: key, value: value, exists: !hasValue})
		}
	}
	if q.err != nil {
		return nodeQuery{}, q.err
	}
	return nq, nil
}

// parsePodQuery reads namespace, node, name, phase (with ! to negate:
// phase=!Running), sort, order, limit, minMemoryLimitRate and
// minCpuLimitRate.
func parsePodQuery(raw string) (podQuery, error) {
	q := newQueryReader(raw, podParams)
	pq := podQuery{listQuery: q.list(podSorts)}
	pq.namespace = q.one("namespace")
	pq.node = q.one("node")
	pq.name = q.one("name")
	if phase := q.one("phase"); phase != "" {
		want, not := strings.CutPrefix(phase, "!")
		i := slices.IndexFunc(podPhases, func(p string) bool { return strings.EqualFold(p, want) })
		if i < 0 {
			q.err = errorf(http.StatusBadRequest, "query parameter phase=%q: want one of %s, or one of them after !",
				phase, strings.Join(podPhases, ", "))
		} else {
			pq.phase, pq.phaseCode, pq.phaseNot = podPhases[i], uint8(i+1), not
		}
	}
	pq.minMemoryLimitRate = q.rate("minMemoryLimitRate")
	pq.minCPULimitRate = q.rate("minCpuLimitRate")
	if q.err != nil {
		return podQuery{}, q.err
	}
	return pq, nil
}

// noQuery rejects any parameter on endpoints that take none, so a typo
// like /nodes/x?sort=cpu is not silently ignored.
func noQuery(raw string) error {
	return newQueryReader(raw, nil).err
}
