package api

import (
	"net/http"
	"net/http/pprof"
)

// RoutePprof is where the Go profiles are served when Options.Pprof is on.
const RoutePprof = "/debug/pprof/"

// registerPprof serves net/http/pprof's handlers on mux. They are
// registered here by hand: the package's init also puts them on
// http.DefaultServeMux, which this binary never serves.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc(RoutePprof, pprof.Index) // heap, goroutine, allocs, ... by name
	mux.HandleFunc(RoutePprof+"cmdline", pprof.Cmdline)
	mux.HandleFunc(RoutePprof+"profile", pprof.Profile)
	mux.HandleFunc(RoutePprof+"symbol", pprof.Symbol)
	mux.HandleFunc(RoutePprof+"trace", pprof.Trace)
}
