// Package openapi serves the OpenAPI 3.1 document of the aggregator's HTTP
// API at /openapi.json. The document is written by hand (openapi.json,
// copied to docs/openapi.json) and tested against the handlers: every
// route is described, every described route exists, and the golden
// responses validate against their schemas.
package openapi

import (
	_ "embed"
	"net/http"
)

// Route is where the document is served.
const Route = "/openapi.json"

//go:embed openapi.json
var document []byte

// Document returns the OpenAPI document; callers must not modify it.
func Document() []byte { return document }

// RegisterRoutes serves the document on mux at Route.
func RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Route, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(document)
	})
}
