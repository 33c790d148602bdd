// Package terminations keeps the last terminations of every container, fed
// by the pod informer. The API server keeps only the latest one
// (lastState.terminated), so without this the crash before last, and its
// reason, is gone as soon as the container restarts again.
package terminations

import (
	"cmp"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Bounds.
const (
	// PerContainer is how many terminations are kept per container.
	PerContainer = 10
	// MaxContainers bounds the containers tracked per pod.
	MaxContainers = 64
	// MaxMessage bounds a termination message, in bytes; the kubelet
	// allows 4 KiB (12 KiB across a pod), far more than a verdict needs.
	MaxMessage = 512
	// maxReason bounds a reason, which is one word in practice.
	maxReason = 128
	// DefaultMaxPods bounds the pods with a history, when Options leave
	// it 0. Only pods that had a termination take a place.
	DefaultMaxPods = 100000
	// DefaultForgetAfter is how long a deleted pod's history is kept,
	// when Options leave it 0: long enough to diagnose a pod that was
	// just replaced.
	DefaultForgetAfter = time.Hour
	// sweepEvery spaces the scans for deleted pods to forget.
	sweepEvery = time.Minute
)

// Termination is one end of a container's run.
type Termination struct {
	Container   string `json:"container"`
	Init        bool   `json:"init,omitempty"`
	ContainerID string `json:"containerId,omitempty"`
	// Reason is the runtime's or kubelet's word: OOMKilled, Error,
	// Completed, ContainerStatusUnknown.
	Reason   string `json:"reason,omitempty"`
	ExitCode int32  `json:"exitCode"`
	// Signal is the signal the runtime reported, else exit code − 128
	// for codes 129–192 (the shell's convention: 137 is SIGKILL). A
	// SIGKILL alone does not say who sent it: only reason OOMKilled or
	// the cgroup's oom_kill counter make it an OOM kill.
	Signal     int32     `json:"signal,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Message is the termination message, cut to MaxMessage bytes.
	Message string `json:"message,omitempty"`
}

// ContainerHistory is one container's terminations, newest first.
type ContainerHistory struct {
	Container    string        `json:"container"`
	Init         bool          `json:"init,omitempty"`
	Terminations []Termination `json:"terminations"`
}

// Options configure a Store; zero values take the defaults.
type Options struct {
	MaxPods     int
	ForgetAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store holds the terminations of every pod that had one. It is safe for
// concurrent use: the informer writes, API handlers read.
type Store struct {
	opts Options

	mu        sync.RWMutex
	pods      map[string]*podHistory // "namespace/name"
	lastSweep time.Time
	refused   uint64
}

type podHistory struct {
	uid        string
	containers map[string]*containerHistory
	deletedAt  time.Time
}

type containerHistory struct {
	init bool
	list []Termination // newest first, at most PerContainer
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.MaxPods <= 0 {
		opts.MaxPods = DefaultMaxPods
	}
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = DefaultForgetAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{opts: opts, pods: map[string]*podHistory{}}
}

// Handler returns the informer event handler that feeds the store: adds and
// updates record terminations, deletes start the countdown to forgetting.
func (s *Store) Handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observeObj(obj) },
		UpdateFunc: func(_, obj any) { s.observeObj(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				s.Delete(p)
			}
		},
	}
}

func (s *Store) observeObj(obj any) {
	if p, ok := obj.(*corev1.Pod); ok {
		s.Observe(p)
	}
}

// Observe records the terminations that p's status shows (the current state
// and the last state of every container), each once.
func (s *Store) Observe(p *corev1.Pod) {
	if p == nil || !hasTermination(p) {
		return
	}
	key := model.PodKey(p.Namespace, p.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	h := s.pods[key]
	if h == nil || h.uid != string(p.UID) {
		// A pod recreated under the same name is another pod.
		if h == nil && len(s.pods) >= s.opts.MaxPods {
			s.refused++
			return
		}
		h = &podHistory{uid: string(p.UID), containers: map[string]*containerHistory{}}
		s.pods[key] = h
	}
	h.deletedAt = time.Time{}
	for i := range p.Status.InitContainerStatuses {
		h.observe(&p.Status.InitContainerStatuses[i], true)
	}
	for i := range p.Status.ContainerStatuses {
		h.observe(&p.Status.ContainerStatuses[i], false)
	}
}

// Delete marks p's history to be forgotten after ForgetAfter.
func (s *Store) Delete(p *corev1.Pod) {
	if p == nil {
		return
	}
	key := model.PodKey(p.Namespace, p.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.pods[key]; h != nil && (p.UID == "" || h.uid == string(p.UID)) {
		h.deletedAt = s.opts.Now()
	}
	s.sweepLocked()
}

// Pod returns the pod's container histories, sorted by container name
// (init containers first), each newest first; nil when none is known. The
// result is the caller's.
func (s *Store) Pod(namespace, name string) []ContainerHistory {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h := s.pods[model.PodKey(namespace, name)]
	if h == nil {
		return nil
	}
	out := make([]ContainerHistory, 0, len(h.containers))
	for cname, c := range h.containers {
		out = append(out, ContainerHistory{Container: cname, Init: c.init, Terminations: slices.Clone(c.list)})
	}
	slices.SortFunc(out, func(a, b ContainerHistory) int {
		if a.Init != b.Init {
			if a.Init {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Container, b.Container)
	})
	return out
}

// Len is the number of pods with a history.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pods)
}

// Refused counts pods not tracked because MaxPods was reached.
func (s *Store) Refused() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.refused
}

// sweepLocked forgets pods deleted more than ForgetAfter ago, at most once
// per sweepEvery.
func (s *Store) sweepLocked() {
	now := s.opts.Now()
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for k, h := range s.pods {
		if !h.deletedAt.IsZero() && now.Sub(h.deletedAt) >= s.opts.ForgetAfter {
			delete(s.pods, k)
		}
	}
}

func hasTermination(p *corev1.Pod) bool {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].LastTerminationState.Terminated != nil || list[i].State.Terminated != nil {
				return true
			}
		}
	}
	return false
}

func (h *podHistory) observe(st *corev1.ContainerStatus, init bool) {
	for _, t := range []*corev1.ContainerStateTerminated{st.LastTerminationState.Terminated, st.State.Terminated} {
		if t == nil {
			continue
		}
		c := h.containers[st.Name]
		if c == nil {
			if len(h.containers) >= MaxContainers {
				return
			}
			c = &containerHistory{init: init}
			h.containers[st.Name] = c
		}
		c.add(newTermination(st.Name, init, t))
	}
}

// add inserts t unless it is already there, keeping the newest
// PerContainer by finish time.
func (c *containerHistory) add(t Termination) {
	for _, old := range c.list {
		if same(old, t) {
			return
		}
	}
	i, _ := slices.BinarySearchFunc(c.list, t, func(e, t Termination) int {
		return t.FinishedAt.Compare(e.FinishedAt) // newest first
	})
	if i >= PerContainer {
		return // older than everything kept
	}
	c.list = slices.Insert(c.list, i, t)
	if len(c.list) > PerContainer {
		c.list = c.list[:PerContainer]
	}
}

// same tells whether two records are one termination: the same container
// instance, or, when the runtime gave no ID, the same times and exit.
func same(a, b Termination) bool {
	if a.ContainerID != "" || b.ContainerID != "" {
		return a.ContainerID == b.ContainerID
	}
	return a.FinishedAt.Equal(b.FinishedAt) && a.StartedAt.Equal(b.StartedAt) && a.ExitCode == b.ExitCode && a.Reason == b.Reason
}

func newTermination(container string, init bool, t *corev1.ContainerStateTerminated) Termination {
	out := Termination{
		Container:   container,
		Init:        init,
		ContainerID: t.ContainerID,
		Reason:      Truncate(t.Reason, maxReason),
		ExitCode:    t.ExitCode,
		Signal:      t.Signal,
		StartedAt:   t.StartedAt.UTC(),
		FinishedAt:  t.FinishedAt.UTC(),
		Message:     Truncate(t.Message, MaxMessage),
	}
	if out.Signal == 0 && t.ExitCode > 128 && t.ExitCode <= 128+64 {
		out.Signal = t.ExitCode - 128
	}
	return out
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with "…" (counted in n).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n < len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// SignalName names the signals a container's exit commonly carries.
func SignalName(sig int32) string {
	switch sig {
	case 1:
		return "SIGHUP"
	case 2:
		return "SIGINT"
	case 6:
		return "SIGABRT"
	case 9:
		return "SIGKILL"
	case 11:
		return "SIGSEGV"
	case 15:
		return "SIGTERM"
	}
	return ""
}
