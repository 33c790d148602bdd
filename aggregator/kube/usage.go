package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// metricsGroupVersion is the API metrics-server serves.
var metricsGroupVersion = metricsv1beta1.SchemeGroupVersion.String()

// Plain-words reasons for an unavailable metrics-server.
const (
	reasonNotInstalled = "metrics-server not installed: metrics.k8s.io/v1beta1 is not served"
	reasonNotAnswering = "metrics-server not answering: metrics.k8s.io/v1beta1 is registered but unavailable (503); is its pod running?"
	reasonDisabled     = "metrics-server reading is disabled"
	reasonNoAPIServer  = "waiting for the API server to answer"
)

// usageState remembers what the previous poll learned about metrics-server.
type usageState struct {
	mu       sync.Mutex
	served   bool // discovery said metrics.k8s.io/v1beta1 is served
	lastOK   time.Time
	status   model.SourceStatus
	polledAt time.Time
}

func (u *usageState) last() (model.SourceStatus, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status, !u.polledAt.IsZero()
}

// PollUsage reads metrics-server once, under UsageTimeout: PodMetricses of
// the watched namespaces (or all) keyed "namespace/name", and NodeMetricses
// keyed by node name. CPU is in millicores (rounded up, as kubectl top
// does), memory is the working set in bytes.
//
// When metrics.k8s.io is not served (not installed, or registered but its
// backend down) the status is unavailable with a plain reason and both maps
// are nil, so pods fall back to the agents' kubelet stats. Any other error
// makes the status failed, also with nil maps: half a poll would mix
// sources within one snapshot.
func (c *Cluster) PollUsage(ctx context.Context) (pods, nodes map[string]state.Usage, status model.SourceStatus) {
	start := c.now()
	defer func() {
		status.Name = SourceMetricsServer
		status.DurationMs = float64(c.now().Sub(start)) / float64(time.Millisecond)
		c.usage.mu.Lock()
		if status.Status == model.SourceOK {
			c.usage.lastOK = start
		}
		status.LastSuccess = c.usage.lastOK
		c.usage.status, c.usage.polledAt = status, start
		c.usage.mu.Unlock()
	}()
	if c.metrics == nil {
		return nil, nil, model.SourceStatus{Status: model.SourceUnavailable, Reason: reasonDisabled}
	}
	c.mu.Lock()
	connecting := c.connecting
	c.mu.Unlock()
	if connecting {
		// Not the API server's timeout on every poll until it answered.
		return nil, nil, model.SourceStatus{Status: model.SourceUnavailable, Reason: reasonNoAPIServer}
	}
	ctx, cancel := context.WithTimeout(ctx, c.usageTimeout)
	defer cancel()

	// Discovery is asked first, and again after every unavailable poll,
	// so that an absent metrics-server costs one cheap request per interval
	// and its arrival is noticed.
	c.usage.mu.Lock()
	served := c.usage.served
	c.usage.mu.Unlock()
	if !served {
		if st, ok := c.discoverMetrics(ctx); !ok {
			return nil, nil, st
		}
	}

	pods, err := c.listPodUsage(ctx)
	if err == nil {
		nodes, err = c.listNodeUsage(ctx)
	}
	if err != nil {
		st := c.classify(err)
		if st.Status == model.SourceUnavailable {
			c.usage.mu.Lock()
			c.usage.served = false
			c.usage.mu.Unlock()
		}
		return nil, nil, st
	}
	return pods, nodes, model.SourceStatus{Status: model.SourceOK}
}

// discoverMetrics asks the API server whether metrics.k8s.io/v1beta1 is
// served. ok is false when the poll should stop with st.
func (c *Cluster) discoverMetrics(ctx context.Context) (st model.SourceStatus, ok bool) {
	list, err := c.metrics.Discovery().ServerResourcesForGroupVersionWithContext(ctx, metricsGroupVersion)
	if err != nil {
		st = c.classify(err)
		if st.Status == model.SourceUnavailable {
			return st, false
		}
		// Discovery can fail where the lists would not (a proxy, RBAC on
		// /apis); let the lists decide.
		c.logger.Debug("metrics.k8s.io discovery failed; trying the lists", "error", err)
		return st, true
	}
	have := map[string]bool{}
	for _, r := range list.APIResources {
		have[r.Name] = true
	}
	if !have["pods"] || !have["nodes"] {
		return model.SourceStatus{Status: model.SourceUnavailable, Reason: reasonNotInstalled}, false
	}
	c.usage.mu.Lock()
	c.usage.served = true
	c.usage.mu.Unlock()
	return st, true
}

func (c *Cluster) classify(err error) model.SourceStatus {
	switch {
	case apierrors.IsNotFound(err):
		return model.SourceStatus{Status: model.SourceUnavailable, Reason: reasonNotInstalled}
	case apierrors.IsServiceUnavailable(err):
		return model.SourceStatus{Status: model.SourceUnavailable, Reason: reasonNotAnswering}
	case errors.Is(err, context.DeadlineExceeded), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return model.SourceStatus{Status: model.SourceFailed, Reason: fmt.Sprintf("metrics-server did not answer within %s: %v", c.usageTimeout, err)}
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return model.SourceStatus{Status: model.SourceFailed, Reason: fmt.Sprintf("not allowed to read metrics.k8s.io (check the aggregator's RBAC): %v", err)}
	}
	return model.SourceStatus{Status: model.SourceFailed, Reason: err.Error()}
}

func (c *Cluster) listPodUsage(ctx context.Context) (map[string]state.Usage, error) {
	c.mu.Lock()
	namespaces := c.namespaces
	c.mu.Unlock()
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var out map[string]state.Usage
	for _, ns := range namespaces {
		list, err := c.metrics.MetricsV1beta1().PodMetricses(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			if ns == "" {
				return nil, fmt.Errorf("list pod metrics: %w", err)
			}
			return nil, fmt.Errorf("list pod metrics in namespace %s: %w", ns, err)
		}
		if out == nil {
			out = make(map[string]state.Usage, len(list.Items))
		}
		for i := range list.Items {
			pm := &list.Items[i]
			out[model.PodKey(pm.Namespace, pm.Name)] = podUsage(pm)
		}
	}
	return out, nil
}

func (c *Cluster) listNodeUsage(ctx context.Context) (map[string]state.Usage, error) {
	list, err := c.metrics.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list node metrics: %w", err)
	}
	out := make(map[string]state.Usage, len(list.Items))
	for i := range list.Items {
		nm := &list.Items[i]
		cpu, mem := cpuMemory(nm.Usage)
		out[nm.Name] = state.Usage{CPU: cpu, Memory: mem, Timestamp: nm.Timestamp.UTC()}
	}
	return out, nil
}

func podUsage(pm *metricsv1beta1.PodMetrics) state.Usage {
	u := state.Usage{Timestamp: pm.Timestamp.UTC(), Containers: make(map[string]state.ContainerUsage, len(pm.Containers))}
	// Sum the exact quantities, then round once: per-container rounding
	// would add up to a millicore per container.
	var cpu, mem resource.Quantity
	for _, ct := range pm.Containers {
		c, m := cpuMemory(ct.Usage)
		u.Containers[ct.Name] = state.ContainerUsage{CPU: c, Memory: m}
		cpu.Add(ct.Usage[corev1.ResourceCPU])
		mem.Add(ct.Usage[corev1.ResourceMemory])
	}
	u.CPU, u.Memory = cpu.MilliValue(), mem.Value()
	return u
}

// cpuMemory converts a usage list: CPU to millicores, memory to bytes.
func cpuMemory(rl corev1.ResourceList) (cpu, memory int64) {
	if q, ok := rl[corev1.ResourceCPU]; ok {
		cpu = q.MilliValue()
	}
	if q, ok := rl[corev1.ResourceMemory]; ok {
		memory = q.Value()
	}
	return cpu, memory
}
