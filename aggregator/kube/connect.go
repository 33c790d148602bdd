package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

// Client rate limits. client-go's defaults (5 QPS) would make a
// per-namespace metrics poll of many namespaces queue behind itself.
const (
	clientQPS   = 50
	clientBurst = 100
)

// Connect finds the cluster and builds its clients; it does not contact the
// API server (Start does, and waits for it). The configuration is, in
// order: the kubeconfig file given (an explicit choice wins, for example to
// watch another cluster from a pod), the in-cluster service account, then
// $KUBECONFIG or ~/.kube/config. With none of them the error wraps
// ErrStandalone and says why: only a cluster that is not configured at all
// makes the aggregator standalone, never one that is briefly unreachable.
// A kubeconfig that was given but cannot be read is a plain error: that is
// a mistake to fix, not a mode to run in.
func Connect(kubeconfig string, logger *slog.Logger) (*Cluster, error) {
	cfg, from, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = "k8smon-aggregator/" + version.Version

	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client for %s: %w", cfg.Host, err)
	}
	metrics, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create metrics.k8s.io client for %s: %w", cfg.Host, err)
	}
	c := New(client, metrics, logger)
	c.rest = cfg
	// Nothing is asked of the API server until Start has seen it answer.
	c.connecting = true
	c.logger.Info("Kubernetes configured", "host", cfg.Host, "config", from)
	return c, nil
}

// waitForAPIServer asks the API server for its version until it answers,
// doubling the wait between attempts up to connectBackoffMax, so that an
// API server that is unreachable at start delays the informers instead of
// turning the aggregator standalone. It logs the first failure and then at
// most one line per connectLogEvery, with the attempts made meanwhile.
func (c *Cluster) waitForAPIServer(ctx context.Context) error {
	disco := discovery.ToDiscoveryInterfaceWithContext(c.client.Discovery())
	host := c.host()
	c.mu.Lock()
	c.connecting = true
	c.mu.Unlock()
	delay := c.connectBackoff
	var lastLog time.Time
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, DiscoveryTimeout)
		v, err := disco.ServerVersionWithContext(actx)
		cancel()
		if err == nil {
			c.mu.Lock()
			c.connecting, c.connectErr = false, nil
			c.mu.Unlock()
			c.logger.Info("connected to Kubernetes", "host", host, "version", v.GitVersion, "attempts", attempt)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for the API server %s: %w", host, context.Cause(ctx))
		}
		c.mu.Lock()
		c.connectErr = err
		c.mu.Unlock()
		if now := c.now(); lastLog.IsZero() || now.Sub(lastLog) >= c.connectLogEvery {
			c.logger.Warn("API server not answering; retrying", "host", host, "attempt", attempt, "next", delay, "error", err)
			lastLog = now
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for the API server %s: %w", host, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, connectBackoffMax)
	}
}

// host names the API server in logs and reasons.
func (c *Cluster) host() string {
	if c.rest != nil && c.rest.Host != "" {
		return c.rest.Host
	}
	return "(client without REST config)"
}

// LoadRESTConfig resolves the client configuration as Connect does (the
// kubeconfig given, in-cluster, then $KUBECONFIG or ~/.kube/config) and
// says where it came from, for other clients of the same cluster. Without
// any, the error wraps ErrStandalone.
func LoadRESTConfig(kubeconfig string) (*rest.Config, string, error) { return restConfig(kubeconfig) }

// restConfig resolves the client configuration and says where it came from.
func restConfig(kubeconfig string) (*rest.Config, string, error) {
	if kubeconfig != "" {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, "", fmt.Errorf("read kubeconfig %s: %w", kubeconfig, err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, "", fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, kubeconfig, nil
	}

	cfg, inClusterErr := rest.InClusterConfig()
	if inClusterErr == nil {
		return cfg, "in-cluster service account", nil
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	var present []string
	for _, p := range rules.GetLoadingPrecedence() {
		if _, err := os.Stat(p); err == nil {
			present = append(present, p)
		}
	}
	if len(present) == 0 {
		why := "not in a cluster"
		if !errors.Is(inClusterErr, rest.ErrNotInCluster) {
			why = "in-cluster config unusable (" + inClusterErr.Error() + ")"
		}
		return nil, "", fmt.Errorf("%w: %s, and no kubeconfig at %s", ErrStandalone, why, strings.Join(rules.GetLoadingPrecedence(), ", "))
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, "", fmt.Errorf("%w: kubeconfig %s names no cluster", ErrStandalone, strings.Join(present, ", "))
		}
		return nil, "", fmt.Errorf("load kubeconfig %s: %w", strings.Join(present, ", "), err)
	}
	return cfg, strings.Join(present, ", "), nil
}
