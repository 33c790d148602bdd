// Package streams defines the JetStream streams that keep what agents and
// the aggregator publish — Reports for the history window, Events for a day
// by default — and creates or updates them at start, on the embedded server
// or on the user's NATS cluster.
package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// DedupWindow is how long a stream remembers message IDs. Agents send a
// message again when its acknowledgement was lost, after a reconnect at the
// latest, so five minutes absorbs the retries of an outage that long;
// ingest is idempotent for anything later.
const DedupWindow = 5 * time.Minute

// EventsPerSubject bounds each node's events, so one noisy agent cannot
// push every other node's events out of the Events stream: at most
// EventsPerSubject × wire.MaxEventBytes (64 MiB) of it, a quarter of the
// default bound. A node sends a few events an hour.
const EventsPerSubject = 1000

// AutoReplicas is what a stream asks for on a NATS cluster when
// nats.jetstream.replicas is 0.
const AutoReplicas = 3

// Errors returned by Ensure, matched with errors.Is.
var (
	// ErrNoJetStream means the server, or the account, has no JetStream.
	ErrNoJetStream = errors.New("streams: JetStream is not enabled")
	// ErrPermission means the account may not manage the streams.
	ErrPermission = errors.New("streams: not permitted")
	// ErrConflict means another stream holds the subjects, or the stream
	// exists with settings that cannot be changed in place.
	ErrConflict = errors.New("streams: conflicting stream")
)

// Config sizes the streams.
type Config struct {
	// Prefix is the subject prefix; "" means wire.DefaultPrefix.
	Prefix string
	// ReportsMaxAge is how long reports are kept: the history window.
	ReportsMaxAge time.Duration
	// ReportsPerSubject bounds each node's reports.
	ReportsPerSubject int64
	// ReportsMaxBytes and EventsMaxBytes bound each stream; the oldest
	// messages go first.
	ReportsMaxBytes int64
	EventsMaxAge    time.Duration
	EventsMaxBytes  int64
	// Replicas of each stream; 0 picks AutoReplicas on a NATS cluster
	// that can place them, else 1.
	Replicas int
}

// FromConfig derives the streams from the configuration. Reports are kept
// as long as the aggregator keeps a silent node's last report (the history
// window, at least stale_intervals+1 intervals), and each node's count is
// bounded by twice the reports of that window at the configured interval,
// at least aggregator.history_points.
func FromConfig(c *config.Config) Config {
	interval := max(c.Metrics.CollectInterval, time.Second)
	age := max(c.Metrics.CacheRetention, time.Duration(c.Aggregator.StaleIntervals+1)*interval)
	perSubject := max(int64(c.Aggregator.HistoryPoints), 2*int64(math.Ceil(float64(age)/float64(interval))))
	return Config{
		Prefix:            c.NATS.SubjectPrefix,
		ReportsMaxAge:     age,
		ReportsPerSubject: perSubject,
		ReportsMaxBytes:   c.NATS.JetStream.ReportsMaxBytes,
		EventsMaxAge:      c.NATS.JetStream.EventsMaxAge,
		EventsMaxBytes:    c.NATS.JetStream.EventsMaxBytes,
		Replicas:          c.NATS.JetStream.Replicas,
	}
}

// ReportsName and EventsName are the streams' names under prefix: the
// prefix in capitals with "." and other characters a stream name may not
// hold turned into "_", so installs with different prefixes share a NATS
// without sharing streams.
func ReportsName(prefix string) string { return streamName(prefix) + "_REPORTS" }

// EventsName is the Events stream's name under prefix.
func EventsName(prefix string) string { return streamName(prefix) + "_EVENTS" }

func streamName(prefix string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, prefix)
}

// Definitions returns the Reports and Events stream configurations.
func Definitions(c Config, replicas int) (reports, events jetstream.StreamConfig) {
	prefix := c.Prefix
	if prefix == "" {
		prefix = wire.DefaultPrefix
	}
	reports = jetstream.StreamConfig{
		Name:              ReportsName(prefix),
		Description:       "k8s-llm-monitor node reports, kept for the history window",
		Subjects:          []string{wire.AllNodeReports(prefix)},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            c.ReportsMaxAge,
		MaxMsgsPerSubject: c.ReportsPerSubject,
		MaxBytes:          c.ReportsMaxBytes,
		MaxMsgSize:        wire.MaxMessageBytes,
		// JSON reports shrink about tenfold (docs/benchmarks.md), so the
		// byte bound holds that much more history.
		Compression: jetstream.S2Compression,
		Duplicates:  min(DedupWindow, c.ReportsMaxAge),
		Replicas:    replicas,
	}
	events = jetstream.StreamConfig{
		Name:              EventsName(prefix),
		Description:       "k8s-llm-monitor node and cluster events",
		Subjects:          []string{wire.AllNodeEvents(prefix), wire.ClusterEventSubject(prefix)},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            c.EventsMaxAge,
		MaxMsgsPerSubject: EventsPerSubject,
		MaxBytes:          c.EventsMaxBytes,
		// An event larger than the wire allows is refused by the stream
		// itself: it is never stored, and never reaches a consumer.
		MaxMsgSize: wire.MaxEventBytes,
		Duplicates: min(DedupWindow, c.EventsMaxAge),
		Replicas:   replicas,
	}
	return reports, events
}

// Result says what Ensure set up.
type Result struct {
	Reports, Events *jetstream.StreamInfo
	// Replicas is what the streams were given.
	Replicas int
}

// Ensure creates the streams, or updates them to c, on nc's account. With
// Replicas 0 it asks for AutoReplicas when nc is connected to a NATS
// cluster, and settles for 1 when the cluster cannot place that many.
func Ensure(ctx context.Context, nc *nats.Conn, c Config, logger *slog.Logger) (*Result, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	replicas := c.Replicas
	auto := replicas == 0
	if auto {
		replicas = 1
		if nc.ConnectedClusterName() != "" {
			replicas = AutoReplicas
		}
	}
	res, err := ensure(ctx, nc, js, c, replicas)
	if err != nil && auto && replicas > 1 && tooFewPeers(err) {
		logger.Warn("the NATS cluster cannot place 3 stream replicas now; using 1 (set nats.jetstream.replicas to insist)", "cluster", nc.ConnectedClusterName(), "error", err)
		replicas = 1
		res, err = ensure(ctx, nc, js, c, replicas)
	}
	if err != nil {
		return nil, err
	}
	res.Replicas = replicas
	logger.Info("JetStream streams ready", "reports", res.Reports.Config.Name, "events", res.Events.Config.Name,
		"replicas", replicas, "reportsMaxAge", c.ReportsMaxAge, "eventsMaxAge", c.EventsMaxAge,
		"reportsStored", res.Reports.State.Msgs, "eventsStored", res.Events.State.Msgs)
	return res, nil
}

func ensure(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, c Config, replicas int) (*Result, error) {
	ctx, stop := watchPermissions(ctx, nc)
	defer stop()
	reports, events := Definitions(c, replicas)
	res := &Result{}
	for _, def := range []struct {
		cfg jetstream.StreamConfig
		out **jetstream.StreamInfo
	}{{reports, &res.Reports}, {events, &res.Events}} {
		s, err := js.CreateOrUpdateStream(ctx, def.cfg)
		if err != nil {
			return nil, explain(nc, def.cfg, err)
		}
		*def.out = s.CachedInfo()
	}
	return res, nil
}

// tooFewPeers reports whether err says the cluster has fewer JetStream
// servers (online) than the replicas asked for.
func tooFewPeers(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode {
	case 10005, // no suitable peers for placement
		10023, // insufficient resources
		10074: // replicas > 1 not supported in non-clustered mode
		return true
	}
	return false
}

// explain turns a failure to create a stream into what an operator must
// fix, keeping the cause.
func explain(nc *nats.Conn, cfg jetstream.StreamConfig, err error) error {
	where := nc.ConnectedUrlRedacted()
	var api *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders): // nothing answers the JetStream API
		return fmt.Errorf("%w on the NATS server at %s (%v): enable it (nats-server -js, or \"jetstream {}\" in its configuration; the official Helm chart: config.jetstream.enabled=true) and give the account JetStream limits",
			ErrNoJetStream, where, err)
	case isPermission(nc, err):
		return fmt.Errorf("%w: the NATS account at %s may not manage stream %s (%v): allow publishing to $JS.API.> for the aggregator's user",
			ErrPermission, where, cfg.Name, lastErrOr(nc, err))
	case errors.As(err, &api) && api.ErrorCode == 10065:
		return fmt.Errorf("%w: another stream already holds %s on %s: delete it, or set nats.subject_prefix to a prefix of your own",
			ErrConflict, strings.Join(cfg.Subjects, ", "), where)
	case errors.As(err, &api) && api.ErrorCode == 10058:
		return fmt.Errorf("%w: stream %s exists on %s with other subjects than %s: delete it or set nats.subject_prefix",
			ErrConflict, cfg.Name, where, strings.Join(cfg.Subjects, ", "))
	case errors.As(err, &api) && (api.ErrorCode == 10052 || api.ErrorCode == 10069):
		return fmt.Errorf("%w: stream %s on %s refused the configuration (%v); when it exists with settings that cannot change in place, delete it (nats stream rm %s) and restart",
			ErrConflict, cfg.Name, where, err, cfg.Name)
	}
	return fmt.Errorf("create or update stream %s on %s: %w", cfg.Name, where, err)
}

// isPermission reports whether the request failed on a permissions
// violation: the server reports it on the connection, not to the request,
// which watchPermissions then cancels.
func isPermission(nc *nats.Conn, err error) bool {
	if errors.Is(err, nats.ErrPermissionViolation) {
		return true
	}
	return (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) &&
		jsPermissionError(nc.LastError())
}

func jsPermissionError(err error) bool {
	return err != nil && errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), "$JS.API")
}

// permissionPoll is how often watchPermissions looks at the connection's
// last error.
const permissionPoll = 20 * time.Millisecond

// watchPermissions cancels the returned context as soon as the server
// refuses a JetStream API request, which the request alone would only
// notice at its deadline.
func watchPermissions(ctx context.Context, nc *nats.Conn) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	before := nc.LastError()
	go func() {
		t := time.NewTicker(permissionPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if last := nc.LastError(); last != before && jsPermissionError(last) {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}

func lastErrOr(nc *nats.Conn, err error) error {
	if last := nc.LastError(); last != nil {
		return last
	}
	return err
}
