// Package web serves the aggregator's web view at "/": one page, embedded
// in the binary, that reads the HTTP API (cluster health, paged and
// filtered node and pod lists, GPUs, VMs, events, history) from the
// browser. Nothing is fetched from elsewhere, so it works air-gapped.
package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Route is the page's pattern: exactly "/", so every other unknown path
// stays the API's JSON 404.
const Route = "GET /{$}"

var (
	//go:embed static/index.html
	indexHTML string
	//go:embed static/app.css
	appCSS string
	//go:embed static/app.js
	appJS string
)

// page is the assembled page, its ETag and its Content-Security-Policy.
type page struct {
	body []byte
	etag string
	csp  string
}

// build inlines the style and the script into the HTML, so the view is a
// single request, and allows exactly those two by hash in the CSP: no
// other script or style can run, whatever a node or pod name contains.
func build() page {
	body := strings.NewReplacer("/*STYLE*/", appCSS, "/*SCRIPT*/", appJS).Replace(indexHTML)
	sum := sha256.Sum256([]byte(body))
	return page{
		body: []byte(body),
		etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
		csp: "default-src 'none'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
			"style-src '" + hash(appCSS) + "'; script-src '" + hash(appJS) + "'",
	}
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// RegisterRoutes serves the page on mux at Route.
func RegisterRoutes(mux *http.ServeMux) {
	p := build()
	mux.HandleFunc(Route, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", p.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", p.etag) // ServeContent answers If-None-Match with 304
		h.Set("Content-Type", "text/html; charset=utf-8")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(p.body))
	})
}
