package config

import "time"

// JetStreamConfig is "nats.jetstream:": the streams the aggregator creates
// (or updates) at start, on its embedded server or on the user's NATS.
type JetStreamConfig struct {
	// Replicas of each stream (nats.jetstream.replicas); 0 picks 3 on a
	// NATS cluster that can place them, else 1.
	Replicas int
	// ReportsMaxBytes bounds the Reports stream (nats.jetstream.reports_max_bytes).
	ReportsMaxBytes int64
	// EventsMaxAge is how long events are kept (nats.jetstream.events_max_age).
	EventsMaxAge time.Duration
	// EventsMaxBytes bounds the Events stream (nats.jetstream.events_max_bytes).
	EventsMaxBytes int64
}

// Defaults of the JetStream keys, also documented in configs/config.yaml.
const (
	DefaultReportsMaxBytes = 1 << 30
	DefaultEventsMaxAge    = 24 * time.Hour
	DefaultEventsMaxBytes  = 256 << 20
	// MaxStreamReplicas is the most replicas NATS allows a stream.
	MaxStreamReplicas = 5
	// minStreamBytes keeps a stream able to hold at least a few of the
	// largest messages (wire.MaxMessageBytes each).
	minStreamBytes = 16 << 20
)
