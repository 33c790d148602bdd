// Package kubelet is the agent's kubelet source: it reads the node's own
// kubelet /stats/summary and turns it into the report's pod, container,
// volume and filesystem stats, with CPU and network rates computed from the
// cumulative counters of two consecutive scrapes.
//
// The layers are separate so that each can be tested and swapped on its own:
// a Transport fetches the body, DecodeSummary parses it, a mapper converts it
// and keeps the counters between scrapes, and Source ties them together as a
// collector.Source.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Name is the source's name in reports, logs and metrics.
const Name = "kubelet"

// Errors of this package. ErrNoURL and ErrDisabled wrap
// collector.ErrUnavailable: a node without a reachable kubelet address is a
// source that is absent, not one that failed.
var (
	// ErrNoURL is returned by New when neither the kubelet URL nor the
	// node's IP is configured.
	ErrNoURL = fmt.Errorf("%w: kubelet url is empty: set --kubelet-url or $NODE_IP", collector.ErrUnavailable)
	// ErrDisabled is returned by New for a disabled kubelet source; the
	// agent is expected not to construct one.
	ErrDisabled = fmt.Errorf("%w: kubelet source disabled", collector.ErrUnavailable)
	// ErrBodyTooLarge is a /stats/summary answer over the client's size
	// limit.
	ErrBodyTooLarge = errors.New("kubelet: stats summary too large")
)

var _ collector.Source = (*Source)(nil)

// Source is the kubelet collector.Source. Its scrapes are serialised: the
// CPU and network rates depend on the previous scrape's counters, which a
// Collect left running from an earlier cycle (a slow kubelet) must not
// interleave with.
type Source struct {
	url       string
	transport Transport
	logger    *slog.Logger

	// sem holds the right to scrape and the mapper's state with it. A
	// channel rather than a mutex so that waiting for it honours ctx.
	sem    chan struct{}
	mapper *mapper
}

// New returns the kubelet source for cfg, reading over HTTPS with the
// ServiceAccount token. A disabled source is not constructed (ErrDisabled);
// an empty URL is ErrNoURL.
func New(cfg config.KubeletConfig, logger *slog.Logger) (*Source, error) {
	if !cfg.Enabled {
		return nil, ErrDisabled
	}
	client, err := NewHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithTransport(client.URL(), client, logger), nil
}

// NewWithTransport returns a source that reads through t; url names the
// kubelet in errors and logs. A nil logger discards logs.
func NewWithTransport(url string, t Transport, logger *slog.Logger) *Source {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		url:       url,
		transport: t,
		logger:    logger.With("source", Name),
		sem:       make(chan struct{}, 1),
		mapper:    newMapper(),
	}
}

// Name returns "kubelet".
func (s *Source) Name() string { return Name }

// Collect scrapes /stats/summary once under ctx and returns an Apply that
// sets the report's Kubelet part. On error nothing is applied: the report's
// Kubelet stays nil and the runner records the reason.
func (s *Source) Collect(ctx context.Context) (collector.Apply, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the previous kubelet scrape: %w", ctx.Err())
	}
	defer func() { <-s.sem }()

	start := time.Now()
	body, err := s.transport.FetchSummary(ctx)
	if err != nil {
		return nil, err
	}
	summary, err := DecodeSummary(body)
	if err != nil {
		return nil, fmt.Errorf("decode stats summary from %s: %w", s.url, err)
	}
	stats := s.mapper.Map(summary)
	s.logger.Debug("scraped kubelet", "node", summary.Node.NodeName, "pods", len(stats.Pods),
		"bytes", len(body), "took", time.Since(start))
	return func(r *model.NodeReport) { r.Kubelet = stats }, nil
}
