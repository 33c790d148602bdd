package api

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Limits on what one HTTP client can hold (docs/security.md, "HTTP
// clients").
const (
	// DefaultWriteTimeout is how long one write of a response may wait for
	// the client to read: a client that reads nothing for this long is
	// disconnected. Each write moves the deadline, so the time allowed
	// grows with the response and a slow client that keeps reading is
	// served to the end.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxSnapshotStreams bounds the snapshot-sized answers written
	// at once: the whole snapshot, and node or pod lists of more than
	// MaxLimit items. Each holds its compressed answer until it ends.
	DefaultMaxSnapshotStreams = 4
	// RetryAfterSeconds is the Retry-After of a 429: about one rebuild.
	RetryAfterSeconds = 5
	// MaxConcurrentScrapes bounds concurrent /metrics requests; each one
	// gathers every series anew (about 8 per pod with object metrics on).
	// More are answered 503 by promhttp.
	MaxConcurrentScrapes = 3
	// logEvery is the most one kind of client trouble is logged.
	logEvery = 10 * time.Second
)

// deadlineWriter gives every write of a response its own write deadline,
// through http.ResponseController: the deadline is set when the request
// starts and moved before each write, so it bounds the time the client
// takes to accept one write (at most streamSize bytes), not the whole
// response.
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	timedOut bool
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration) *deadlineWriter {
	dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout}
	dw.extend()
	return dw
}

// extend moves the deadline; a writer without one (a test recorder) is
// left as it is.
func (w *deadlineWriter) extend() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

// WriteHeader moves the deadline: a response without a body is sent when
// the handler returns, which may be long after the request started.
func (w *deadlineWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

// Write moves the deadline and writes, noting a write cut off by it.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.timedOut = true
	}
	return n, err
}

// FlushError moves the deadline and flushes; http.ResponseController
// calls it.
func (w *deadlineWriter) FlushError() error {
	w.extend()
	err := w.rc.Flush()
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.timedOut = true
	}
	return err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// streamLimiter bounds the snapshot-sized answers written at once.
type streamLimiter struct{ slots chan struct{} }

func newStreamLimiter(n int) *streamLimiter {
	return &streamLimiter{slots: make(chan struct{}, n)}
}

// tryAcquire takes a slot if one is free.
func (l *streamLimiter) tryAcquire() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l *streamLimiter) release() { <-l.slots }

// inUse is the number of slots taken.
func (l *streamLimiter) inUse() int { return len(l.slots) }

// takeStream takes a stream slot for a snapshot-sized answer (large) and
// returns its release; beyond the limit it sets Retry-After and returns a
// 429. A small answer needs no slot.
func (s *server) takeStream(w http.ResponseWriter, large bool) (release func(), err error) {
	if !large {
		return func() {}, nil
	}
	if s.streams.tryAcquire() {
		return s.streams.release, nil
	}
	if ok, skipped := s.logRefused.allow(); ok {
		s.log.Warn("snapshot-sized answer refused: too many in progress",
			"limit", cap(s.streams.slots), "suppressed", skipped)
	}
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	return nil, errorf(http.StatusTooManyRequests,
		"%d snapshot-sized answers are being written, the most at once: retry in %d s",
		cap(s.streams.slots), RetryAfterSeconds)
}

// cutShort logs, at a limited rate, a response that ended early: the
// client went away or stopped reading.
func (s *server) cutShort(r *http.Request, err error) {
	if ok, skipped := s.logCutShort.allow(); ok {
		s.log.Info("response cut short", "path", r.URL.Path, "err", err, "suppressed", skipped)
	}
}

// sometimes lets one event through per interval and counts the others, so
// that hostile clients cannot flood the log.
type sometimes struct {
	every time.Duration

	mu      sync.Mutex
	next    time.Time
	skipped int
}

// allow reports whether to log now and how many events were held back
// since the last one let through.
func (s *sometimes) allow() (ok bool, skipped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Before(s.next) {
		s.skipped++
		return false, 0
	}
	s.next = now.Add(s.every)
	skipped, s.skipped = s.skipped, 0
	return true, skipped
}
