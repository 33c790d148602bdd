package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
)

// apiError is an error with the HTTP status to answer it with. Handlers
// return it for everything the client caused; any other error is a bug and
// answers 500.
type apiError struct {
	status int
	msg    string
}

// Error returns the message the client gets.
func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// errNoSnapshot answers data requests before the first snapshot.
var errNoSnapshot = &apiError{status: http.StatusServiceUnavailable, msg: "no snapshot yet"}

// errorBody is every error's JSON.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// handlerFunc is a route's handler: it writes a response, or returns an
// error for the caller to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle turns a handlerFunc into an http.Handler that writes its error.
func (s *server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = &apiError{status: http.StatusInternalServerError, msg: "internal error"}
		}
		writeError(w, ae.status, ae.msg)
	})
}

// get is handle for GET (and HEAD) only.
func (s *server) get(h handlerFunc) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			return errorf(http.StatusMethodNotAllowed, "method %s not allowed: use GET", r.Method)
		}
		return h(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := marshal(errorBody{Error: msg, Status: status}) // cannot fail: two plain fields
	setJSONHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// marshal is json.Marshal without HTML escaping: issues such as
// "memory usage 93.1% >= 90.0%" stay readable to people and LLMs instead of
// turning into \u003e. Responses are application/json with nosniff, so
// nothing renders them as HTML.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil // with a trailing newline
}

func setJSONHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

// writeJSON marshals v before writing anything, so a marshalling failure
// can still answer 500 rather than a truncated 200.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T response: %w", v, err)
	}
	setJSONHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// jsonStream writes a large JSON document piece by piece through a buffer,
// so that a 150 000-pod list or snapshot is never held in memory whole as
// JSON (an answer compresses it as it comes, see answer). Each value is
// encoded as marshal does, so a streamed document equals the marshal form
// of the whole byte for byte.
type jsonStream struct {
	w   *bufio.Writer
	buf bytes.Buffer
	enc *json.Encoder
	err error
}

// streamSize is the stream's buffer and the size of each write of a large
// response, each with its own write deadline (see deadlineWriter).
const streamSize = 64 << 10

func newJSONStream(w io.Writer) *jsonStream {
	st := &jsonStream{w: bufio.NewWriterSize(w, streamSize)}
	st.enc = json.NewEncoder(&st.buf)
	st.enc.SetEscapeHTML(false)
	return st
}

// raw writes literal JSON syntax.
func (st *jsonStream) raw(s string) {
	if st.err == nil {
		_, st.err = st.w.WriteString(s)
	}
}

// value writes v's JSON.
func (st *jsonStream) value(v any) {
	if st.err != nil {
		return
	}
	st.buf.Reset()
	if st.err = st.enc.Encode(v); st.err != nil {
		st.err = fmt.Errorf("encode %T: %w", v, st.err)
		return
	}
	b := st.buf.Bytes()
	_, st.err = st.w.Write(b[:len(b)-1]) // Encode adds a newline
}

// finish ends the document, flushes and returns the first error.
func (st *jsonStream) finish() error {
	st.raw("\n")
	if st.err == nil {
		st.err = st.w.Flush()
	}
	return st.err
}

// writeList writes {"count":n,"total":total,"items":[...]} with item(i)
// for i in [0, n).
func writeList(st *jsonStream, total, n int, item func(i int) any) {
	st.raw(`{"count":` + strconv.Itoa(n) + `,"total":` + strconv.Itoa(total) + `,"items":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			st.raw(",")
		}
		st.value(item(i))
	}
	st.raw("]}")
}

// answerList answers with a list (see writeList), encoded before it is
// sent (see answer). More than MaxLimit items is a snapshot-sized answer:
// it takes a stream slot first.
func (s *server) answerList(w http.ResponseWriter, r *http.Request, total, n int, item func(i int) any) error {
	release, err := s.takeStream(w, n > MaxLimit)
	if err != nil {
		return err
	}
	defer release()
	a, err := encodeAnswer(func(st *jsonStream) { writeList(st, total, n, item) })
	if err != nil {
		return err
	}
	// Nothing below uses item: the build the items belong to may be
	// collected while the answer is written.
	if err := a.send(w, r); err != nil {
		s.cutShort(r, err)
	}
	return nil
}

// serve wraps the mux: it recovers panics (a bug: logged with its stack,
// answered 500 when nothing was written yet), gives each write a deadline
// (deadlineWriter) and records request metrics by route pattern and
// status code.
func (s *server) serve(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		dw := newDeadlineWriter(w, s.writeTimeout)
		rw := &recordingWriter{ResponseWriter: dw}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rw.wrote {
					writeError(rw, http.StatusInternalServerError, "internal error")
				}
			}
			// ServeMux sets r.Pattern on this very request when it routes.
			route := routeLabel(r.Pattern)
			s.metrics.observe(route, rw.code(), time.Since(start))
			if dw.timedOut {
				s.metrics.writeTimeouts.WithLabelValues(route).Inc()
				if ok, skipped := s.logTimeout.allow(); ok {
					s.log.Warn("client stopped reading: disconnected", "path", r.URL.Path,
						"writeTimeout", s.writeTimeout, "suppressed", skipped)
				}
			}
		}()
		mux.ServeHTTP(rw, r)
	})
}

// recordingWriter remembers the status code written.
type recordingWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// WriteHeader records the first status written.
func (w *recordingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 when nothing was written before.
func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recordingWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}
