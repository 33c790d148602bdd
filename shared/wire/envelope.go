package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Schema is the envelope version this build writes and reads. A reader
// accepts any message whose schema is Schema; fields it does not know are
// ignored, so additions within a version stay compatible.
const Schema = "k8smon/v1"

// MaxMessageBytes bounds a message: NATS's default max_payload, 1 MiB.
const MaxMessageBytes = 1 << 20

// Message kinds.
const (
	KindNodeReport   = "NodeReport"
	KindNodeEvent    = "NodeEvent"
	KindClusterEvent = "ClusterEvent"
)

// Errors returned by Decode*, matched with errors.Is.
var (
	ErrTooLarge  = errors.New("wire: message too large")
	ErrMalformed = errors.New("wire: malformed message")
	ErrSchema    = errors.New("wire: unsupported schema")
	ErrKind      = errors.New("wire: unexpected kind")
	ErrMismatch  = errors.New("wire: subject and payload disagree")
	ErrSubject   = errors.New("wire: bad subject")
	// ErrRange means a number, timestamp or field is outside the bounds
	// of validate.go: negative, not finite, or beyond physical sense.
	ErrRange = errors.New("wire: value out of range")
	// ErrFuture means a timestamp is further ahead of the reader's clock
	// than the allowed skew.
	ErrFuture = errors.New("wire: timestamp in the future")
	// ErrInterval means a report's intervalSeconds is outside
	// MinInterval..MaxInterval.
	ErrInterval = errors.New("wire: report interval out of range")
	// ErrCustomMetrics means a node's customMetrics are nested too deep
	// or hold too many values or bytes.
	ErrCustomMetrics = errors.New("wire: custom metrics too large")
)

// Envelope wraps every message.
type Envelope struct {
	Schema string    `json:"schema"`
	Kind   string    `json:"kind"`
	Sender string    `json:"sender"` // node name, or the aggregator's id
	SentAt time.Time `json:"sentAt"`
	// Payload is a NodeReport for KindNodeReport, an Event otherwise.
	Payload json.RawMessage `json:"payload"`
}

// Encode wraps payload in an envelope of the given kind.
func Encode(kind, sender string, sentAt time.Time, payload any) ([]byte, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", kind, err)
	}
	b, err := json.Marshal(Envelope{Schema: Schema, Kind: kind, Sender: sender, SentAt: sentAt.UTC(), Payload: p})
	if err != nil {
		return nil, fmt.Errorf("encode %s envelope: %w", kind, err)
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, kind, len(b), MaxMessageBytes)
	}
	return b, nil
}

// EncodeReport wraps a node report.
func EncodeReport(r *model.NodeReport) ([]byte, error) {
	return Encode(KindNodeReport, r.NodeName, r.Timestamp, r)
}

// EncodeEvent wraps a node event (kind KindNodeEvent) or a cluster event,
// its message and details values cut to model.MaxEventMessageBytes; e
// itself is not changed.
func EncodeEvent(kind, sender string, e *model.Event) ([]byte, error) {
	out := *e
	out.Message = model.TruncateMessage(e.Message)
	for _, v := range e.Details {
		if len(v) > model.MaxEventMessageBytes {
			out.Details = maps.Clone(e.Details)
			for k, v := range out.Details {
				out.Details[k] = model.TruncateMessage(v)
			}
			break
		}
	}
	return Encode(kind, sender, e.Timestamp, &out)
}

// DecodeEnvelope checks size, JSON shape, schema and kind.
func DecodeEnvelope(data []byte, wantKind string) (*Envelope, error) {
	if len(data) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageBytes)
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if env.Schema != Schema {
		return nil, fmt.Errorf("%w: %q, want %q", ErrSchema, env.Schema, Schema)
	}
	if env.Kind != wantKind {
		return nil, fmt.Errorf("%w: %q, want %q", ErrKind, env.Kind, wantKind)
	}
	if len(bytes.TrimSpace(env.Payload)) == 0 || bytes.Equal(bytes.TrimSpace(env.Payload), []byte("null")) {
		return nil, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	if env.SentAt.IsZero() {
		return nil, fmt.Errorf("%w: missing sentAt", ErrMalformed)
	}
	return &env, nil
}

// reportEnvelope is an Envelope whose payload decodes straight into a
// report, so the common case parses the message once instead of twice.
type reportEnvelope struct {
	Schema  string            `json:"schema"`
	Kind    string            `json:"kind"`
	Sender  string            `json:"sender"`
	SentAt  time.Time         `json:"sentAt"`
	Payload *model.NodeReport `json:"payload"`
}

// DecodeReport decodes a node report received on subject under prefix,
// checks that the subject's node, the envelope's sender and the report's
// node name agree, and validates the report with a zero Clock (no check
// against the present).
func DecodeReport(prefix, subject string, data []byte) (*model.NodeReport, error) {
	return DecodeReportAt(prefix, subject, data, Clock{})
}

// DecodeReportAt is DecodeReport that also refuses timestamps further
// ahead of c.Now than c.MaxSkew.
func DecodeReportAt(prefix, subject string, data []byte, c Clock) (*model.NodeReport, error) {
	node, err := NodeFromSubject(prefix, subject)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageBytes)
	}
	var env reportEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		// Decode again in two steps for the precise reason: another
		// kind's payload does not fit a report, and that is ErrKind.
		if _, eerr := DecodeEnvelope(data, KindNodeReport); eerr != nil {
			return nil, eerr
		}
		return nil, fmt.Errorf("%w: node report: %v", ErrMalformed, err)
	}
	switch {
	case env.Schema != Schema:
		return nil, fmt.Errorf("%w: %q, want %q", ErrSchema, env.Schema, Schema)
	case env.Kind != KindNodeReport:
		return nil, fmt.Errorf("%w: %q, want %q", ErrKind, env.Kind, KindNodeReport)
	case env.SentAt.IsZero():
		return nil, fmt.Errorf("%w: missing sentAt", ErrMalformed)
	case env.Payload == nil:
		return nil, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	r := env.Payload
	if r.NodeName == "" {
		return nil, fmt.Errorf("%w: node report without nodeName", ErrMalformed)
	}
	if r.NodeName != node || env.Sender != node {
		return nil, fmt.Errorf("%w: subject node %q, sender %q, report nodeName %q", ErrMismatch, node, env.Sender, r.NodeName)
	}
	if r.Timestamp.IsZero() {
		return nil, fmt.Errorf("%w: node report without timestamp", ErrMalformed)
	}
	if err := c.check("sentAt", env.SentAt); err != nil {
		return nil, err
	}
	if err := ValidateReport(r, c); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeNodeEvent decodes a node event received on subject under prefix
// and validates it with a zero Clock.
func DecodeNodeEvent(prefix, subject string, data []byte) (*model.Event, error) {
	return DecodeNodeEventAt(prefix, subject, data, Clock{})
}

// DecodeNodeEventAt is DecodeNodeEvent that also refuses timestamps
// further ahead of c.Now than c.MaxSkew.
func DecodeNodeEventAt(prefix, subject string, data []byte, c Clock) (*model.Event, error) {
	node, err := NodeFromSubject(prefix, subject)
	if err != nil {
		return nil, err
	}
	e, err := decodeEvent(data, KindNodeEvent, c)
	if err != nil {
		return nil, err
	}
	if e.Node != node {
		return nil, fmt.Errorf("%w: subject node %q, event node %q", ErrMismatch, node, e.Node)
	}
	return e, nil
}

// DecodeClusterEvent decodes and validates a cluster event.
func DecodeClusterEvent(data []byte) (*model.Event, error) {
	return decodeEvent(data, KindClusterEvent, Clock{})
}

func decodeEvent(data []byte, kind string, c Clock) (*model.Event, error) {
	if len(data) > MaxEventBytes {
		return nil, fmt.Errorf("%w: event of %d bytes, limit %d", ErrTooLarge, len(data), MaxEventBytes)
	}
	env, err := DecodeEnvelope(data, kind)
	if err != nil {
		return nil, err
	}
	var e model.Event
	if err := json.Unmarshal(env.Payload, &e); err != nil {
		return nil, fmt.Errorf("%w: event: %v", ErrMalformed, err)
	}
	if e.Type == "" {
		return nil, fmt.Errorf("%w: event without type", ErrMalformed)
	}
	if err := c.check("sentAt", env.SentAt); err != nil {
		return nil, err
	}
	if err := ValidateEvent(&e, c); err != nil {
		return nil, err
	}
	return &e, nil
}
