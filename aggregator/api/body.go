package api

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Answers that are not single objects (the snapshot, lists) are encoded
// whole before their status is sent, and written from those bytes. A
// handler that waits on a slow client therefore holds its encoded answer,
// never the build the answer was made from. An answer of up to one write
// (spillSize) is kept as it is; a larger one is compressed as it is
// encoded, so that it costs a small fraction of its JSON (a sixteenth for
// the benchmark cluster), and written as it is to clients that accept
// gzip, inflated on the way out through a buffer of their own to the
// others.

// spillSize is the largest answer kept uncompressed: one write.
const spillSize = streamSize

// answer is an encoded JSON answer. It is read-only once encoded:
// requests may share it.
type answer struct {
	plain     []byte   // the JSON, when it is at most spillSize bytes
	parts     [][]byte // else its gzip stream, in pieces of streamSize bytes
	size      int64    // bytes in parts
	plainSize int64    // length of the JSON
}

// compressed reports whether the answer is held as gzip.
func (a *answer) compressed() bool { return a.parts != nil }

// Write appends compressed bytes; the gzip writer calls it while encoding.
// Fixed-size pieces grow without the copies and the doubling of one
// growing slice.
func (a *answer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		last := len(a.parts) - 1
		if last < 0 || len(a.parts[last]) == cap(a.parts[last]) {
			a.parts = append(a.parts, make([]byte, 0, streamSize))
			last++
		}
		k := min(cap(a.parts[last])-len(a.parts[last]), len(p))
		a.parts[last] = append(a.parts[last], p[:k]...)
		p = p[k:]
	}
	a.size += int64(n)
	return n, nil
}

// reader returns a reader of the compressed bytes.
func (a *answer) reader() io.Reader { return &partsReader{parts: a.parts} }

type partsReader struct {
	parts [][]byte
	off   int
}

func (r *partsReader) Read(p []byte) (int, error) {
	for len(r.parts) > 0 && r.off == len(r.parts[0]) {
		r.parts, r.off = r.parts[1:], 0
	}
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[0][r.off:])
	r.off += n
	return n, nil
}

// answerEncoder fills an answer with the JSON written to it: plain up to
// spillSize bytes, then compressed, including what was kept plain.
type answerEncoder struct {
	a  *answer
	zw *gzip.Writer
}

// Write adds JSON to the answer.
func (e *answerEncoder) Write(p []byte) (int, error) {
	e.a.plainSize += int64(len(p))
	if e.zw == nil {
		if len(e.a.plain)+len(p) <= spillSize {
			e.a.plain = append(e.a.plain, p...)
			return len(p), nil
		}
		e.zw = gzipWriters.Get().(*gzip.Writer)
		e.zw.Reset(e.a)
		kept := e.a.plain
		e.a.plain = nil
		if _, err := e.zw.Write(kept); err != nil {
			return 0, err
		}
	}
	return e.zw.Write(p)
}

// close ends the gzip stream, if there is one, and gives the writer back.
func (e *answerEncoder) close() error {
	if e.zw == nil {
		return nil
	}
	err := e.zw.Close()
	e.zw.Reset(io.Discard) // so that the pool does not keep the answer
	gzipWriters.Put(e.zw)
	e.zw = nil
	return err
}

// gzipWriters recycles gzip writers: each holds about 1 MB of compressor
// state, more than most answers it compresses. BestSpeed: at this level
// compressing costs a fraction of encoding (docs/benchmarks.md).
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // cannot fail: a valid level
	return zw
}}

// encodeAnswer encodes the JSON that write streams.
func encodeAnswer(write func(st *jsonStream)) (*answer, error) {
	e := &answerEncoder{a: &answer{}}
	st := newJSONStream(e)
	write(st)
	if err := st.finish(); err != nil {
		_ = e.close()
		return nil, fmt.Errorf("encode answer: %w", err)
	}
	if err := e.close(); err != nil {
		return nil, fmt.Errorf("compress answer: %w", err)
	}
	return e.a, nil
}

// send answers r with a 200 and the answer: compressed when it is and the
// client accepts gzip, else as JSON, at most streamSize bytes per write.
// The status is sent before the body, so an error can only be logged; it
// is returned for that.
func (a *answer) send(w http.ResponseWriter, r *http.Request) error {
	setJSONHeaders(w)
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	gz := a.compressed() && acceptsGzip(r.Header)
	if gz {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.FormatInt(a.size, 10))
	} else {
		h.Set("Content-Length", strconv.FormatInt(a.plainSize, 10))
	}
	w.WriteHeader(http.StatusOK)
	switch {
	case r.Method == http.MethodHead:
		return nil
	case !a.compressed():
		_, err := w.Write(a.plain)
		return err
	case gz:
		for _, p := range a.parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
	zr, err := gzip.NewReader(a.reader())
	if err != nil {
		return fmt.Errorf("inflate answer: %w", err)
	}
	// Through a bufio.Writer, which fills whole pieces, so that each
	// write, and its deadline, covers streamSize bytes.
	bw := bufio.NewWriterSize(w, streamSize)
	if _, err := io.Copy(bw, zr); err != nil {
		return err
	}
	return bw.Flush()
}

// acceptsGzip reports whether the request's Accept-Encoding admits gzip
// (RFC 9110, section 12.5.3): gzip (or x-gzip) with a q above 0, or * with
// a q above 0 when gzip is not named. A malformed q counts as 0: identity
// is always a safe answer.
func acceptsGzip(h http.Header) bool {
	gzipQ, anyQ := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			switch {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				gzipQ = max(gzipQ, qValue(params))
			case coding == "*":
				anyQ = max(anyQ, qValue(params))
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return anyQ > 0
}

// qValue is the weight in an Accept-Encoding element's parameters: 1
// when absent, 0 when malformed.
func qValue(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || !(q >= 0 && q <= 1) {
			return 0
		}
		return q
	}
	return 1
}
