package ingest

import (
	"sync"
	"time"
)

// pruneEvery bounds how often the event limiter sweeps idle buckets, so a
// flood cannot make every message pay for a sweep.
const pruneEvery = time.Second

// eventLimiter is a token bucket per node for node events. Only trusted
// names (a stored report or a Node object) get a bucket of their own; all
// other names share one, so invented names cannot grow the map or spend a
// real node's allowance. Buckets that have refilled are dropped: a new
// bucket starts full, so forgetting a full one changes nothing.
type eventLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu        sync.Mutex
	buckets   map[string]*bucket
	untrusted bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newEventLimiter(rate float64, burst int) *eventLimiter {
	return &eventLimiter{
		rate:      rate,
		burst:     float64(burst),
		buckets:   map[string]*bucket{},
		untrusted: bucket{tokens: float64(burst)},
	}
}

// allow spends one of node's tokens, and reports false when none is left.
func (l *eventLimiter) allow(node string, trusted bool, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	b := &l.untrusted
	if trusted {
		if b = l.buckets[node]; b == nil {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[node] = b
		}
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune drops the buckets that are full again. The caller holds l.mu.
func (l *eventLimiter) prune(now time.Time) {
	if now.Sub(l.lastPrune) < pruneEvery {
		return
	}
	l.lastPrune = now
	refill := time.Duration(l.burst / l.rate * float64(time.Second))
	for name, b := range l.buckets {
		if now.Sub(b.last) >= refill {
			delete(l.buckets, name)
		}
	}
}

// forget drops node's bucket, for a node whose report was forgotten.
func (l *eventLimiter) forget(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, node)
}

// size returns how many buckets are held.
func (l *eventLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
