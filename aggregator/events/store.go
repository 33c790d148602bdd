// Package events keeps a bounded, deduplicated store of what happened in
// the cluster: Kubernetes events (from an events informer), the agents'
// node events and the aggregator's own cluster events. The API server
// deletes events after an hour; the store keeps them for
// aggregator.events_retention (24 h by default), at most
// aggregator.events_max of them, and serves them over HTTP as a paginated
// list and a resumable Server-Sent Events stream.
package events

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sources of events.
const (
	SourceKubernetes = "kubernetes"
	SourceAgent      = "agent"
	SourceAggregator = "aggregator"
)

// Kubernetes event types, also used for agent and aggregator events:
// Normal for severity info, Warning otherwise.
const (
	TypeNormal  = "Normal"
	TypeWarning = "Warning"
)

// Bounds and defaults.
const (
	// DefaultRetention is how long an event is kept after it last
	// happened, when Options leave it 0.
	DefaultRetention = 24 * time.Hour
	// DefaultMaxEvents bounds the store, when Options leave it 0.
	DefaultMaxEvents = 20000
	// MaxPerObject bounds the distinct events (reasons) kept per object;
	// the least recently seen goes first.
	MaxPerObject = 32
	// MaxMessage bounds a message, in bytes.
	MaxMessage = 1024
	// maxField bounds names, reasons and types: Kubernetes names are at
	// most 253 bytes.
	maxField = 253
	// MaxLimit is the largest page List returns; DefaultLimit the page
	// when Filter.Limit is 0.
	MaxLimit     = 1000
	DefaultLimit = 100
	// sweepEvery spaces the scans for expired events.
	sweepEvery = time.Minute
)

// Errors, matched with errors.Is.
var (
	// ErrBadCursor is a cursor (an event id) that does not parse.
	ErrBadCursor = errors.New("events: malformed cursor")
	// ErrOldCursor is a cursor from an earlier run of the aggregator (or
	// another replica): its sequence means nothing here.
	ErrOldCursor = errors.New("events: cursor from another aggregator run")
)

// ObjectRef names what an event is about; both fields are always set.
type ObjectRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Event is one stored event. Repeats of the same event (same source,
// object, reason and severity) are folded into one, with Count and Time
// updated: each update gives the event a new, larger ID, so that the latest
// version of every event is listed first and a stream resumes after it.
type Event struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	// Type is Normal or Warning.
	Type string `json:"type,omitempty"`
	// Severity is info, warning or critical.
	Severity  string     `json:"severity,omitempty"`
	Node      string     `json:"node,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Pod       string     `json:"pod,omitempty"`
	Object    *ObjectRef `json:"object,omitempty"`
	// Reason is one CamelCase word: BackOff, FailedScheduling, GPUXid.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Count is how many times it happened while kept.
	Count int `json:"count"`
}

// Filter selects events; empty fields match everything.
type Filter struct {
	Node, Namespace, Pod string
	// Type matches an event's type (Normal, Warning; any case) or its
	// reason (BackOff, GPUXid), so one word narrows either way.
	Type string
	// Reason, ObjectKind and ObjectName narrow further.
	Reason, ObjectKind, ObjectName string
	// Since keeps events that last happened at or after it.
	Since time.Time
	// Limit bounds the page; 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// After is a cursor: the ID of the last event of the previous page.
	After string
}

// Page is one page of events, newest first.
type Page struct {
	Count int     `json:"count"`
	Total int     `json:"total"`
	Items []Event `json:"items"`
	// Next is the cursor of the next page; empty at the end.
	Next string `json:"next,omitempty"`
}

// Options configure a Store; zero values take the defaults.
type Options struct {
	Retention time.Duration
	MaxEvents int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store holds events. It is safe for concurrent use.
type Store struct {
	opts  Options
	epoch string

	mu      sync.RWMutex
	seq     uint64
	byKey   map[string]*entry
	objects map[string][]*entry // per object, at most MaxPerObject
	// log holds entries in the order of their last change. An entry that
	// changes again is appended anew; its old slot goes stale (slot.seq
	// no longer equals entry.seq) and compaction drops it.
	log       []slot
	head      int // log[:head] is all stale
	changed   chan struct{}
	lastSweep time.Time
	evicted   map[string]uint64 // by reason: retention, max, per-object
}

type slot struct {
	seq uint64
	e   *entry
}

type entry struct {
	ev     Event
	seq    uint64 // 0 once removed
	key    string
	objKey string
	// kube remembers the latest count of each Kubernetes Event object
	// folded into this entry, so an update adds only its increase.
	kube []kubeCount
}

type kubeCount struct {
	uid   string
	count int
}

// maxKubeUIDs bounds kubeCount per entry: an event recurring for longer
// than the API server keeps it comes back as a new object.
const maxKubeUIDs = 8

// NewStore returns an empty store.
func NewStore(opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		opts:    opts,
		epoch:   strconv.FormatInt(opts.Now().UnixNano(), 36),
		byKey:   map[string]*entry{},
		objects: map[string][]*entry{},
		changed: make(chan struct{}),
		evicted: map[string]uint64{},
	}
}

// Len is the number of events held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byKey)
}

// Evicted returns how many events were dropped, by reason: "retention",
// "max" (the store was full) and "per-object".
func (s *Store) Evicted() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]uint64, len(s.evicted))
	for k, v := range s.evicted {
		out[k] = v
	}
	return out
}

// Changed returns a channel closed at the next change of the store.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// add folds ev into the store under key. kubeUID, when set, names the
// Kubernetes Event object and ev.Count is its cumulative count;
// otherwise ev.Count occurrences are added. It reports whether the store
// changed.
func (s *Store) add(ev Event, key, kubeUID string) bool {
	now := s.opts.Now()
	if now.Sub(ev.Time) > s.opts.Retention {
		return false // already past what the store keeps
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	e := s.byKey[key]
	if e == nil {
		e = &entry{key: key, objKey: objectKey(&ev)}
		e.ev = ev
		e.ev.Count = 0
		s.byKey[key] = e
		s.objects[e.objKey] = append(s.objects[e.objKey], e)
	}
	added := max(ev.Count, 1)
	if kubeUID != "" {
		added = e.kubeDelta(kubeUID, ev.Count)
		if added == 0 && e.seq != 0 {
			return false // a repeat of what is already counted
		}
	}
	count := e.ev.Count + added
	if !ev.Time.Before(e.ev.Time) {
		e.ev = ev // else an older copy arrived late: only its count is news
	}
	e.ev.Count = count
	s.seq++
	e.seq = s.seq
	e.ev.ID = s.id(e.seq)
	s.log = append(s.log, slot{seq: e.seq, e: e})
	s.boundLocked(e)
	s.compactLocked()
	close(s.changed)
	s.changed = make(chan struct{})
	return true
}

// kubeDelta returns how much count adds for the Kubernetes Event uid.
func (e *entry) kubeDelta(uid string, count int) int {
	count = max(count, 1)
	for i := range e.kube {
		if e.kube[i].uid == uid {
			d := max(count-e.kube[i].count, 0)
			e.kube[i].count = max(count, e.kube[i].count)
			return d
		}
	}
	if len(e.kube) >= maxKubeUIDs {
		e.kube = slices.Delete(e.kube, 0, 1)
	}
	e.kube = append(e.kube, kubeCount{uid: uid, count: count})
	return count
}

// boundLocked enforces MaxPerObject on e's object and MaxEvents overall.
func (s *Store) boundLocked(e *entry) {
	if objs := s.objects[e.objKey]; len(objs) > MaxPerObject {
		oldest := objs[0]
		for _, o := range objs[1:] {
			if o.seq < oldest.seq {
				oldest = o
			}
		}
		s.removeLocked(oldest, "per-object")
	}
	for len(s.byKey) > s.opts.MaxEvents && s.head < len(s.log) {
		sl := s.log[s.head]
		s.head++
		if sl.e.seq == sl.seq {
			s.removeLocked(sl.e, "max")
		}
	}
}

func (s *Store) removeLocked(e *entry, why string) {
	delete(s.byKey, e.key)
	objs := s.objects[e.objKey]
	if i := slices.Index(objs, e); i >= 0 {
		objs = slices.Delete(objs, i, i+1)
	}
	if len(objs) == 0 {
		delete(s.objects, e.objKey)
	} else {
		s.objects[e.objKey] = objs
	}
	e.seq = 0
	s.evicted[why]++
}

// compactLocked drops stale slots once they are the larger part of the log.
func (s *Store) compactLocked() {
	if len(s.log)-s.head <= 2*len(s.byKey)+64 && s.head <= len(s.log)/2 {
		return
	}
	live := make([]slot, 0, len(s.byKey)+len(s.byKey)/2)
	for _, sl := range s.log[s.head:] {
		if sl.e.seq == sl.seq {
			live = append(live, sl)
		}
	}
	s.log, s.head = live, 0
}

// sweepLocked drops events older than the retention, at most once per
// sweepEvery.
func (s *Store) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	cutoff := now.Add(-s.opts.Retention)
	for _, e := range s.byKey {
		if e.ev.Time.Before(cutoff) {
			s.removeLocked(e, "retention")
		}
	}
	s.compactLocked()
}

// List returns one page of the events that match f, newest change first.
func (s *Store) List(f Filter) (Page, error) {
	after := uint64(0)
	if f.After != "" {
		var err error
		if after, err = s.parseID(f.After); err != nil {
			return Page{}, err
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	cutoff := s.opts.Now().Add(-s.opts.Retention)
	s.mu.RLock()
	defer s.mu.RUnlock()
	page := Page{Items: make([]Event, 0, min(limit, len(s.byKey)))}
	var last uint64
	for i := len(s.log) - 1; i >= s.head; i-- {
		sl := s.log[i]
		if sl.e.seq != sl.seq || sl.e.ev.Time.Before(cutoff) || !f.match(&sl.e.ev) {
			continue
		}
		page.Total++
		if after != 0 && sl.seq >= after {
			continue
		}
		if len(page.Items) < limit {
			page.Items = append(page.Items, sl.e.ev)
			last = sl.seq
		} else if page.Next == "" {
			page.Next = s.id(last)
		}
	}
	page.Count = len(page.Items)
	return page, nil
}

// Since returns up to limit events that changed after the event with ID
// cursor, oldest change first, and the cursor to continue from. An empty
// cursor, or one from another run, starts from the oldest event held.
func (s *Store) Since(cursor string, f Filter, limit int) ([]Event, string, error) {
	after, err := s.parseID(cursor)
	switch {
	case cursor == "", errors.Is(err, ErrOldCursor):
		after = 0
	case err != nil:
		return nil, "", err
	}
	cutoff := s.opts.Now().Add(-s.opts.Retention)
	s.mu.RLock()
	defer s.mu.RUnlock()
	start, _ := slices.BinarySearchFunc(s.log[s.head:], after+1, func(sl slot, seq uint64) int {
		return cmpUint(sl.seq, seq)
	})
	var out []Event
	next := after
	for _, sl := range s.log[s.head+start:] {
		if len(out) >= limit {
			break
		}
		next = sl.seq
		if sl.e.seq == sl.seq && !sl.e.ev.Time.Before(cutoff) && f.match(&sl.e.ev) {
			out = append(out, sl.e.ev)
		}
	}
	if next == 0 {
		return out, "", nil
	}
	return out, s.id(next), nil
}

// Latest is the ID of the newest change, "" when the store is empty; a
// stream that starts now resumes from it.
func (s *Store) Latest() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.seq == 0 {
		return ""
	}
	return s.id(s.seq)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Store) id(seq uint64) string {
	return s.epoch + "-" + strconv.FormatUint(seq, 10)
}

// parseID reads "<epoch>-<seq>".
func (s *Store) parseID(id string) (uint64, error) {
	if id == "" {
		return 0, nil
	}
	epoch, seqStr, ok := strings.Cut(id, "-")
	if !ok || epoch == "" || len(id) > 64 {
		return 0, fmt.Errorf("%w: %q is not an event id", ErrBadCursor, truncate(id, 64))
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%w: %q is not an event id", ErrBadCursor, truncate(id, 64))
	}
	if epoch != s.epoch {
		return 0, fmt.Errorf("%w: %q", ErrOldCursor, truncate(id, 64))
	}
	return seq, nil
}

func (f *Filter) match(e *Event) bool {
	switch {
	case f.Node != "" && e.Node != f.Node,
		f.Namespace != "" && e.Namespace != f.Namespace,
		f.Pod != "" && e.Pod != f.Pod,
		f.Type != "" && !strings.EqualFold(e.Type, f.Type) && e.Reason != f.Type,
		f.Reason != "" && e.Reason != f.Reason,
		!f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	}
	if f.ObjectKind != "" || f.ObjectName != "" {
		if e.Object == nil || (f.ObjectKind != "" && e.Object.Kind != f.ObjectKind) || (f.ObjectName != "" && e.Object.Name != f.ObjectName) {
			return false
		}
	}
	return true
}

// objectKey identifies the object an event is about, for MaxPerObject.
func objectKey(e *Event) string {
	kind, name := "", ""
	if e.Object != nil {
		kind, name = e.Object.Kind, e.Object.Name
	}
	return e.Source + "\x00" + kind + "\x00" + e.Namespace + "\x00" + name + "\x00" + e.Node
}
