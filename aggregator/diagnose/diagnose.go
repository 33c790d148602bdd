// Package diagnose answers "what is wrong with this pod or node?" in one
// call: a verdict in plain words, decided by documented rules (see
// docs/llm.md, "Diagnosis"), and the evidence it rests on — termination
// history, OOM counters from the pod's cgroups, memory against the limit
// over the last minutes, Kubernetes and agent events, scheduling, node
// conditions and GPUs. No model decides anything here: the same inputs give
// the same verdict.
package diagnose

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/events"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/terminations"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Errors, matched with errors.Is.
var (
	// ErrNotFound is returned for a pod or node the aggregator does not know.
	ErrNotFound = errors.New("diagnose: not found")
	// ErrNoSnapshot is returned before the aggregator built its first
	// snapshot: there is nothing to judge by yet.
	ErrNoSnapshot = errors.New("diagnose: no snapshot yet")
)

// Diagnosis kinds.
const (
	KindPod  = "pod"
	KindNode = "node"
)

// Severities of a diagnosis.
const (
	SeverityOK       = "ok"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Evidence kinds.
const (
	EvidenceTermination = "termination"
	EvidenceEvent       = "event"
	EvidenceMetric      = "metric"
	EvidenceCondition   = "condition"
	EvidenceScheduling  = "scheduling"
	EvidenceGPU         = "gpu"
	EvidenceOOM         = "oom"
	EvidenceVM          = "vm"
	EvidencePod         = "pod"
)

// Diagnosis is a verdict on one pod or node and the evidence for it,
// most important first.
type Diagnosis struct {
	Kind        string     `json:"kind"`
	Namespace   string     `json:"namespace,omitempty"`
	Name        string     `json:"name"`
	Verdict     string     `json:"verdict"`
	Severity    string     `json:"severity"`
	Rule        string     `json:"rule"`
	Evidence    []Evidence `json:"evidence"`
	GeneratedAt time.Time  `json:"generatedAt"`
}

// Evidence is one fact a verdict rests on.
type Evidence struct {
	Kind    string    `json:"kind"`
	Summary string    `json:"summary"`
	Time    time.Time `json:"time,omitzero"`
	// Data holds the fact's numbers as an object.
	Data any `json:"data,omitempty"`

	// rank orders evidence: the facts behind the verdict first.
	rank int
}

// Evidence ranks.
const (
	rankCause   = iota // the facts the verdict names
	rankSupport        // facts that back it up
	rankContext        // the object's state, for orientation
)

// maxSummary bounds one evidence line, in bytes.
const maxSummary = 320

// State is the aggregator's current picture; state.Store implements it.
type State interface {
	Snapshot() *model.MetricsSnapshot
	PodHistory(namespace, name string) ([]state.PodPoint, bool)
	NodeHistory(name string) ([]state.NodePoint, bool)
}

// Objects are the API server's objects; kube.Cluster implements it. Nil
// in standalone mode, where only agents' data is there.
type Objects interface {
	Pod(namespace, name string) *corev1.Pod
	Node(name string) *corev1.Node
}

// Terminations is the termination history; terminations.Store implements it.
type Terminations interface {
	Pod(namespace, name string) []terminations.ContainerHistory
}

// Events is the events store; events.Store implements it.
type Events interface {
	List(f events.Filter) (events.Page, error)
}

// Options are a Diagnoser's inputs. Only State is required: each missing
// input leaves out its evidence.
type Options struct {
	State        State
	Objects      Objects
	Terminations Terminations
	Events       Events
	// Reports returns a node's latest agent report (for its cgroup OOM
	// counters); nil when there is none.
	Reports func(node string) *model.NodeReport
	// Thresholds decide node pressure, as the snapshots do.
	Thresholds model.Thresholds
	// MemoryWindow is how far back memory is compared with the limit;
	// 0 means DefaultMemoryWindow.
	MemoryWindow time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultMemoryWindow is the span of history memory is read over.
const DefaultMemoryWindow = 15 * time.Minute

// Diagnoser applies the rules. It is safe for concurrent use.
type Diagnoser struct {
	opts Options
}

// New returns a Diagnoser over opts.
func New(opts Options) *Diagnoser {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MemoryWindow <= 0 {
		opts.MemoryWindow = DefaultMemoryWindow
	}
	opts.Thresholds = state.ResolveThresholds(opts.Thresholds)
	return &Diagnoser{opts: opts}
}

// finish orders the evidence and stamps the diagnosis.
func (d *Diagnoser) finish(dg *Diagnosis) *Diagnosis {
	slices.SortStableFunc(dg.Evidence, func(a, b Evidence) int { return cmp.Compare(a.rank, b.rank) })
	if dg.Evidence == nil {
		dg.Evidence = []Evidence{}
	}
	dg.GeneratedAt = d.opts.Now().UTC()
	return dg
}

func (dg *Diagnosis) add(rank int, kind, summary string, at time.Time, data any) {
	dg.Evidence = append(dg.Evidence, Evidence{Kind: kind, Summary: terminations.Truncate(summary, maxSummary), Time: at, Data: data, rank: rank})
}

func (dg *Diagnosis) verdict(severity, rule, format string, args ...any) {
	dg.Severity, dg.Rule, dg.Verdict = severity, rule, fmt.Sprintf(format, args...)
}

// Text renders the diagnosis compactly: the verdict line first, then one
// line per evidence item, most important first, never longer than maxBytes.
// When evidence is left out, the last line says how many items.
func (dg *Diagnosis) Text(maxBytes int) string {
	if maxBytes <= 0 {
		return ""
	}
	subject := dg.Name
	if dg.Namespace != "" {
		subject = dg.Namespace + "/" + dg.Name
	}
	head := fmt.Sprintf("%s %s %s: %s [rule %s]\n", strings.ToUpper(dg.Severity), dg.Kind, subject, dg.Verdict, dg.Rule)
	lines := make([]string, 0, len(dg.Evidence))
	for _, e := range dg.Evidence {
		l := "- " + e.Kind + ": " + e.Summary
		if !e.Time.IsZero() {
			l += " (" + e.Time.UTC().Format(time.RFC3339) + ")"
		}
		lines = append(lines, l+"\n")
	}
	trailer := func(left int) string {
		return "(" + strconv.Itoa(left) + " more evidence items left out; ask with a larger max_tokens)\n"
	}
	var b strings.Builder
	if len(head)+len(trailer(len(lines))) > maxBytes && len(head) > maxBytes {
		// Not even the verdict fits: cut it, and say nothing else.
		return terminations.Truncate(head, maxBytes)
	}
	b.WriteString(head)
	for i, l := range lines {
		left := len(lines) - i - 1
		need := len(l)
		if left > 0 {
			need += len(trailer(left))
		}
		if b.Len()+need > maxBytes {
			if t := trailer(len(lines) - i); b.Len()+len(t) <= maxBytes {
				b.WriteString(t)
			}
			return b.String()
		}
		b.WriteString(l)
	}
	return b.String()
}
