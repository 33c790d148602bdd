package authn

import (
	"sync"
	"time"
)

// LogLimiter lets one log line per key through per interval and counts the
// ones it held back, so that a flood of refused requests or connections
// cannot flood the log; the refusals stay counted in metrics.
type LogLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

// NewLogLimiter returns a limiter letting one line per key through every
// interval. Keys must come from a small fixed set (reasons), not from input.
func NewLogLimiter(every time.Duration) *LogLimiter {
	return &LogLimiter{every: every, last: map[string]time.Time{}, held: map[string]int{}}
}

// Allow reports whether to log for key now, and how many lines were held
// back since the last one.
func (l *LogLimiter) Allow(key string) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, seen := l.last[key]; seen && now.Sub(t) < l.every {
		l.held[key]++
		return 0, false
	}
	held = l.held[key]
	l.last[key], l.held[key] = now, 0
	return held, true
}
