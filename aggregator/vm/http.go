package vm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Sort keys of GET /api/vms. cpu, memory and disk sort by usage; VMs
// without that usage come last in either order.
const (
	SortName   = "name"
	SortCPU    = "cpu"
	SortMemory = "memory"
	SortDisk   = "disk"
)

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	// Namespaces (or Sources) list where an ambiguous name exists, so the
	// caller can retry with ?namespace= (or ?source=).
	Namespaces []string `json:"namespaces,omitempty"`
	Sources    []string `json:"sources,omitempty"`
}

// RegisterRoutes serves the VM endpoints on mux:
//
//	GET /api/vms          ?namespace= &status= &sort=name|cpu|memory|disk &order=asc|desc
//	GET /api/vms/stats    ?namespace=
//	GET /api/vms/{name}   ?namespace= &source=
//
// get returns the current VMs (the aggregator's latest snapshot); its
// slice is only read. The list is a bare JSON array, as the seed's
// frontend reads it. /api/vms/stats is a more specific pattern than
// /api/vms/{name}, so it wins whatever the registration order.
func RegisterRoutes(mux *http.ServeMux, get func() []*model.VMMetrics) {
	h := handler{get: get}
	handlers := map[string]http.HandlerFunc{RouteList: h.list, RouteStats: h.stats, RouteVM: h.vm}
	for _, route := range Routes() {
		mux.HandleFunc(route, handlers[route])
	}
	// Other methods on the VM paths get a JSON 405; without these the
	// aggregator's catch-all would answer them 404. Method-less patterns
	// over the paths the GET routes serve: more general, so no conflict.
	mux.HandleFunc("/api/vms", notAllowed)
	mux.HandleFunc("/api/vms/", notAllowed)
}

// notAllowed answers a request that no GET route took: 405 for another
// method on a VM path, 404 for a path deeper than /api/vms/{name}.
func notAllowed(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/vms"), "/")
	if r.Method == http.MethodGet || r.Method == http.MethodHead || strings.Contains(rest, "/") {
		writeError(w, ErrorBody{Error: "no such endpoint: " + r.URL.Path, Status: http.StatusNotFound})
		return
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, ErrorBody{Error: fmt.Sprintf("method %s not allowed: use GET", r.Method), Status: http.StatusMethodNotAllowed})
}

// The VM routes, as registered.
const (
	RouteList  = "GET /api/vms"
	RouteStats = "GET /api/vms/stats"
	RouteVM    = "GET /api/vms/{name}"
)

// Routes returns the patterns RegisterRoutes registers. The OpenAPI
// document is tested against them.
func Routes() []string { return []string{RouteList, RouteStats, RouteVM} }

type handler struct {
	get func() []*model.VMMetrics
}

func (h handler) vms() []*model.VMMetrics {
	if h.get == nil {
		return nil
	}
	return h.get()
}

func (h handler) list(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "namespace", "status", "sort", "order")
	if err != nil {
		writeError(w, ErrorBody{Error: err.Error(), Status: http.StatusBadRequest})
		return
	}
	out, err := Select(h.vms(), q["namespace"], q["status"], q["sort"], q["order"])
	if err != nil {
		writeError(w, ErrorBody{Error: err.Error(), Status: http.StatusBadRequest})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// Select returns the VMs of all that GET /api/vms?namespace=&status=
// &sort=&order= lists, in a new slice (all's order is left alone); empty
// arguments do not filter, and an unknown sort or order is an error in
// the endpoint's words.
func Select(all []*model.VMMetrics, namespace, status, sortBy, order string) ([]*model.VMMetrics, error) {
	switch sortBy {
	case "", SortName, SortCPU, SortMemory, SortDisk:
	default:
		return nil, fmt.Errorf("sort: %q is not one of name, cpu, memory, disk", sortBy)
	}
	desc := false
	switch order {
	case "", "asc":
	case "desc":
		desc = true
	default:
		return nil, fmt.Errorf("order: %q is not asc or desc", order)
	}
	out := make([]*model.VMMetrics, 0, len(all))
	for _, vm := range all {
		if vm == nil || (namespace != "" && vm.Namespace != namespace) || (status != "" && !strings.EqualFold(vm.Status, status)) {
			continue
		}
		out = append(out, vm)
	}
	if sortBy != "" || desc {
		sortVMs(out, sortBy, desc)
	}
	return out, nil
}

// sortVMs orders by name (namespace, then name) or by a usage; unknown
// usage sorts last in both orders so that "top 10 by disk" never starts
// with VMs that have no number.
func sortVMs(vms []*model.VMMetrics, by string, desc bool) {
	byName := func(a, b *model.VMMetrics) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Source, b.Source))
	}
	value := func(vm *model.VMMetrics) (float64, bool) {
		if vm.Metrics == nil {
			return 0, false
		}
		switch by {
		case SortCPU:
			return vm.Metrics.CPUUsage, true
		case SortMemory:
			return vm.Metrics.MemoryUsage, true
		case SortDisk:
			if vm.Metrics.DiskUsage == nil {
				return 0, false
			}
			return *vm.Metrics.DiskUsage, true
		}
		return 0, false
	}
	slices.SortStableFunc(vms, func(a, b *model.VMMetrics) int {
		if by == "" || by == SortName {
			if desc {
				return byName(b, a)
			}
			return byName(a, b)
		}
		va, oka := value(a)
		vb, okb := value(b)
		switch {
		case oka != okb:
			if oka {
				return -1
			}
			return 1
		case oka && va != vb:
			if desc {
				return cmp.Compare(vb, va)
			}
			return cmp.Compare(va, vb)
		}
		return byName(a, b)
	})
}

func (h handler) stats(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "namespace")
	if err != nil {
		writeError(w, ErrorBody{Error: err.Error(), Status: http.StatusBadRequest})
		return
	}
	all := h.vms()
	if ns := q["namespace"]; ns != "" {
		sel := make([]*model.VMMetrics, 0, len(all))
		for _, vm := range all {
			if vm != nil && vm.Namespace == ns {
				sel = append(sel, vm)
			}
		}
		all = sel
	}
	writeJSON(w, http.StatusOK, Stats(all))
}

func (h handler) vm(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "namespace", "source")
	if err != nil {
		writeError(w, ErrorBody{Error: err.Error(), Status: http.StatusBadRequest})
		return
	}
	name, ns, src := r.PathValue("name"), q["namespace"], q["source"]
	found := Find(h.vms(), name, ns, src)
	switch len(found) {
	case 1:
		writeJSON(w, http.StatusOK, found[0])
		return
	case 0:
		msg := fmt.Sprintf("vm %q not found", name)
		if ns != "" {
			msg = fmt.Sprintf("vm %q not found in namespace %q", name, ns)
		}
		if src != "" {
			msg += fmt.Sprintf(" from source %q", src)
		}
		writeError(w, ErrorBody{Error: msg, Status: http.StatusNotFound})
		return
	}
	body := ErrorBody{Status: http.StatusConflict}
	for _, vm := range found {
		if !slices.Contains(body.Namespaces, vm.Namespace) {
			body.Namespaces = append(body.Namespaces, vm.Namespace)
		}
		if !slices.Contains(body.Sources, vm.Source) {
			body.Sources = append(body.Sources, vm.Source)
		}
	}
	slices.Sort(body.Namespaces)
	slices.Sort(body.Sources)
	if len(body.Namespaces) > 1 {
		body.Sources = nil
		body.Error = fmt.Sprintf("vm %q exists in namespaces %s: add ?namespace=", name, strings.Join(body.Namespaces, ", "))
	} else {
		body.Namespaces = nil
		body.Error = fmt.Sprintf("vm %q exists in sources %s: add ?source=", name, strings.Join(body.Sources, ", "))
	}
	writeError(w, body)
}

// Find returns the VMs of all named name, in namespace and from source
// when those are not empty: one when the name is unambiguous, several
// when the caller must add a namespace or source, as GET /api/vms/{name}
// asks.
func Find(all []*model.VMMetrics, name, namespace, source string) []*model.VMMetrics {
	var found []*model.VMMetrics
	for _, vm := range all {
		if vm != nil && vm.Name == name && (namespace == "" || vm.Namespace == namespace) && (source == "" || vm.Source == source) {
			found = append(found, vm)
		}
	}
	return found
}

// query parses the query strictly: a parameter the endpoint does not know,
// one given twice or given empty is a mistake the caller should hear about,
// not a filter silently ignored.
func query(r *http.Request, allowed ...string) (map[string]string, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query: %w", err)
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		switch {
		case !slices.Contains(allowed, k):
			return nil, fmt.Errorf("unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		case len(v) > 1:
			return nil, fmt.Errorf("query parameter %q given %d times", k, len(v))
		case v[0] == "":
			return nil, fmt.Errorf("query parameter %q is empty", k)
		}
		out[k] = v[0]
	}
	return out, nil
}

func writeError(w http.ResponseWriter, body ErrorBody) {
	writeJSON(w, body.Status, body)
}

// writeJSON encodes before writing the header, so an encoding failure
// can still be answered with a JSON error rather than a torn body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: fmt.Sprintf("encode answer: %v", err), Status: status})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
