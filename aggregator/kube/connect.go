package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

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

// Connect finds the cluster and checks that its API server answers. The
// configuration is, in order: the kubeconfig file given (an explicit choice
// wins, for example to watch another cluster from a pod), the in-cluster
// service account, then $KUBECONFIG or ~/.kube/config. With none of them,
// or an API server that does not answer within DiscoveryTimeout, the error
// wraps ErrStandalone and says why. A kubeconfig that was given but cannot
// be read is a plain error: that is a mistake to fix, not a mode to run in.
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
	ctx, cancel := context.WithTimeout(context.Background(), DiscoveryTimeout)
	defer cancel()
	v, err := client.Discovery().ServerVersionWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: API server %s (from %s) did not answer within %s: %v", ErrStandalone, cfg.Host, from, DiscoveryTimeout, err)
	}
	c := New(client, metrics, logger)
	c.rest = cfg
	c.logger.Info("connected to Kubernetes", "host", cfg.Host, "version", v.GitVersion, "config", from)
	return c, nil
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
