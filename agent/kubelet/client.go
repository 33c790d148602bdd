package kubelet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// DefaultMaxBodyBytes bounds a /stats/summary answer. A node at the default
// limit of 110 pods answers a few hundred KiB; 32 MiB leaves room for nodes
// with far more pods and volumes while keeping a broken or hostile endpoint
// from exhausting the agent's memory.
const DefaultMaxBodyBytes int64 = 32 << 20

// snippetBytes is how much of a non-200 answer is read, and snippetChars how
// much of it goes into the error: enough for the kubelet's "Forbidden
// (user=..., verb=get, resource=nodes, subresource=stats)" line, short
// enough for a status reason in a report.
const (
	snippetBytes = 1024
	snippetChars = 300
)

// userAgent names the agent in the kubelet's and the API server's audit
// logs (the kubelet checks authorisation with a SubjectAccessReview).
const userAgent = "k8s-llm-monitor-agent"

// Transport fetches the raw /stats/summary body of the node's kubelet. It is
// an interface so that tests and other deployments (a kubelet reached
// through the API server proxy, a recorded file) can swap the HTTP client.
type Transport interface {
	// FetchSummary returns the body of one /stats/summary answer, read
	// under ctx's deadline.
	FetchSummary(ctx context.Context) ([]byte, error)
}

var _ Transport = (*HTTPClient)(nil)

// StatusError is a kubelet answer other than 200 OK.
type StatusError struct {
	// URL is the address that was requested.
	URL string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Snippet is the start of the answer's body, on one line.
	Snippet string
	// Hint says what to check; set for 401 and 403.
	Hint string
}

// Error says what the kubelet answered and, for 401 and 403, what to fix.
func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubelet %s answered %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Snippet != "" {
		fmt.Fprintf(&b, ": %s", e.Snippet)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

// HTTPClient reads /stats/summary from the kubelet over HTTPS with the
// agent's ServiceAccount token, the way metrics-server does, but only from
// its own node.
type HTTPClient struct {
	summaryURL string
	client     *http.Client
	token      *tokenFile // nil when no token file is configured
	maxBody    int64
}

// NewHTTPClient returns a client for cfg.URL (https://<node-ip>:10250, or
// http:// for a read-only port, which gets no token). The token file is
// re-read whenever it changed, so a rotated projected token is picked up
// without a restart; a missing token file means no Authorization header.
func NewHTTPClient(cfg config.KubeletConfig) (*HTTPClient, error) {
	base := strings.TrimSpace(cfg.URL)
	if base == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse kubelet url %q: %w", base, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("kubelet url %q: want https://host:port or http://host:port", base)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipTLSVerify} //nolint:gosec // opt-in for kubelets with self-signed serving certificates
	if cfg.CAFile != "" && !cfg.InsecureSkipTLSVerify {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read kubelet ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read kubelet ca file %s: no PEM certificate in it", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		// The kubelet is on this node: an HTTPS_PROXY in the agent's
		// environment must not route node-local traffic elsewhere.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c := &HTTPClient{
		summaryURL: strings.TrimRight(u.String(), "/") + "/stats/summary",
		// No client-wide timeout: every request runs under the caller's
		// ctx, which the runner bounds per source.
		client:  &http.Client{Transport: tr},
		maxBody: DefaultMaxBodyBytes,
	}
	// The token is a credential of the whole ServiceAccount: never send it
	// in clear text, even to a node-local read-only port.
	if cfg.TokenFile != "" && u.Scheme == "https" {
		c.token = &tokenFile{path: cfg.TokenFile}
	}
	return c, nil
}

// URL is the /stats/summary address the client reads.
func (c *HTTPClient) URL() string { return c.summaryURL }

// FetchSummary GETs /stats/summary under ctx and returns its body.
func (c *HTTPClient) FetchSummary(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.summaryURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build stats summary request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	var tokenMissing bool
	if c.token != nil {
		tok, err := c.token.get()
		if err != nil {
			return nil, err
		}
		tokenMissing = tok == ""
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch stats summary: %w%s", err, tlsHint(err))
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		snip, _ := io.ReadAll(io.LimitReader(resp.Body, snippetBytes))
		return nil, &StatusError{
			URL:        c.summaryURL,
			StatusCode: resp.StatusCode,
			Snippet:    oneLine(snip),
			Hint:       c.authHint(resp.StatusCode, tokenMissing),
		}
	}
	if resp.ContentLength > c.maxBody {
		return nil, fmt.Errorf("read stats summary from %s: %w: answer is %d bytes, limit %d", c.summaryURL, ErrBodyTooLarge, resp.ContentLength, c.maxBody)
	}
	// Read one byte past the limit to tell "exactly at the limit" from
	// "over it" without trusting Content-Length (absent when chunked or
	// gzipped).
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read stats summary from %s: %w", c.summaryURL, err)
	}
	if int64(len(body)) > c.maxBody {
		return nil, fmt.Errorf("read stats summary from %s: %w: more than %d bytes", c.summaryURL, ErrBodyTooLarge, c.maxBody)
	}
	return body, nil
}

// authHint tells an operator what a 401 or 403 from the kubelet usually
// means, since the kubelet's own answer ("Unauthorized") does not say.
func (c *HTTPClient) authHint(code int, tokenMissing bool) string {
	var hint string
	switch code {
	case http.StatusUnauthorized:
		hint = "the kubelet rejected the bearer token: check the token file, that the kubelet authenticates ServiceAccount tokens (authentication.webhook.enabled), and that the agent's ServiceAccount may get nodes/stats"
	case http.StatusForbidden:
		hint = "the agent's ServiceAccount needs get on nodes/stats: bind it to a ClusterRole that grants it"
	default:
		return ""
	}
	switch {
	case c.token == nil:
		hint += "; no token file is configured (--kubelet-token-file)"
	case tokenMissing:
		hint += "; token file " + c.token.path + " is missing or empty"
	}
	return hint
}

// tlsHint adds what to configure when the kubelet's certificate could not
// be verified: kubelet serving certificates are often self-signed.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	switch {
	case errors.As(err, &host):
		return " (the kubelet's serving certificate does not name this address: use the address it was issued for, or --kubelet-insecure-skip-tls-verify)"
	case errors.As(err, &unknown), errors.As(err, &verify):
		return " (verify the kubelet with --kubelet-ca-file set to the CA that signed its serving certificate, or set --kubelet-insecure-skip-tls-verify)"
	}
	return ""
}

// oneLine makes a body snippet safe for a one-line status reason.
func oneLine(b []byte) string {
	s := strings.ToValidUTF8(string(bytes.TrimSpace(b)), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > snippetChars {
		s = string(r[:snippetChars]) + "..."
	}
	return s
}

// tokenFile caches a bearer token file and re-reads it when its
// modification time or size changes: projected ServiceAccount tokens are
// rotated in place (the kubelet swaps a symlink), and an expired token would
// otherwise fail every scrape until the agent restarts.
type tokenFile struct {
	path string

	mu      sync.Mutex
	token   string
	modTime time.Time
	size    int64
	loaded  bool
}

// get returns the current token, "" when the file does not exist.
func (t *tokenFile) get() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if errors.Is(err, os.ErrNotExist) {
		t.token, t.loaded = "", false
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("stat kubelet token file: %w", err)
	}
	if t.loaded && fi.ModTime().Equal(t.modTime) && fi.Size() == t.size {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("read kubelet token file: %w", err)
	}
	t.token = strings.TrimSpace(string(b))
	t.modTime, t.size, t.loaded = fi.ModTime(), fi.Size(), true
	return t.token, nil
}
