package vm

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Objects is what Source reads VM objects from; *Watcher is one.
type Objects interface {
	Objects() []Object
	Status() map[string]model.SourceStatus
}

var _ Objects = (*Watcher)(nil)

// Source turns the watched VM objects into VM views on every snapshot and
// remembers the previous views, so each call also returns the VM events
// since the last one.
type Source struct {
	objs Objects

	mu     sync.Mutex
	prev   []*model.VMMetrics
	primed bool
}

// NewSource returns a Source over objs.
func NewSource(objs Objects) *Source { return &Source{objs: objs} }

// VMs computes the current VM views and the events since the previous call.
// The first call returns no events: every running VM would look started.
func (s *Source) VMs(pods []*corev1.Pod, podUsage map[string]state.Usage, reports map[string]state.ReportEntry, now time.Time) ([]*model.VMMetrics, []model.Event) {
	vms := Compute(s.objs.Objects(), pods, podUsage, reports, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	var events []model.Event
	if s.primed {
		events = Diff(s.prev, vms, now)
	}
	s.prev, s.primed = vms, true
	return vms, events
}

// Status is the status of every VM source.
func (s *Source) Status() map[string]model.SourceStatus { return s.objs.Status() }
