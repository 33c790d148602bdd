// Package clusterevents publishes the aggregator's cluster events on
// <prefix>.cluster.event once, however many aggregator replicas run: every
// replica derives the same events from the same reports, and only the
// holder of a lease in a NATS KV bucket publishes them. A replica that
// takes the lease over publishes what it saw during the hand-over that the
// previous holder had not stored, so the hand-over loses nothing.
package clusterevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// Defaults for Options' zero values.
const (
	// DefaultLeaseTTL is how long a lease outlives its holder's last
	// renewal: the longest a crashed holder's events wait for a successor.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultMaxPending bounds publishes awaiting their acknowledgement.
	DefaultMaxPending = 256
	// maxRecent bounds the events a replica keeps for a take-over.
	maxRecent = 1024
)

// leaseKey is the one key of the lease bucket.
const leaseKey = "cluster-events"

// Options configure a Publisher.
type Options struct {
	// Conn is the aggregator's NATS connection; the Events stream must exist.
	Conn *nats.Conn
	// Prefix is the subject prefix; "" means wire.DefaultPrefix.
	Prefix string
	// ID names this replica in the lease and as the events' sender.
	ID string
	// LeaseTTL is how long the lease lasts without renewal; it is renewed
	// every third of it. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Replicas of the lease bucket, as the streams have.
	Replicas int
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Publisher publishes cluster events while it holds the lease.
type Publisher struct {
	o       Options
	subject string
	js      jetstream.JetStream
	events  jetstream.Stream
	lease   *lease
	logger  *slog.Logger
	now     func() time.Time

	mu     sync.Mutex
	leader bool
	recent []model.Event // newest last, for a take-over

	stop chan struct{}
	done chan struct{}

	published *prometheus.CounterVec
	leading   prometheus.Gauge
}

// New opens the lease bucket (creating it when missing) and the Events
// stream; Start runs the lease.
func New(ctx context.Context, o Options) (*Publisher, error) {
	if o.Conn == nil || o.Logger == nil || o.ID == "" {
		return nil, errors.New("create cluster event publisher: Conn, Logger and ID are required")
	}
	if o.Prefix == "" {
		o.Prefix = wire.DefaultPrefix
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	js, err := jetstream.New(o.Conn, jetstream.WithPublishAsyncMaxPending(DefaultMaxPending))
	if err != nil {
		return nil, fmt.Errorf("open JetStream for cluster events: %w", err)
	}
	bucket := LeaseBucket(o.Prefix)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "k8s-llm-monitor: which aggregator replica publishes cluster events",
		TTL:         o.LeaseTTL,
		History:     1,
		Storage:     jetstream.MemoryStorage, // a lease outlives no cluster restart
		Replicas:    max(o.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create lease bucket %s: %w", bucket, err)
	}
	events, err := js.Stream(ctx, streams.EventsName(o.Prefix))
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", streams.EventsName(o.Prefix), err)
	}
	p := &Publisher{
		o:       o,
		subject: wire.ClusterEventSubject(o.Prefix),
		js:      js,
		events:  events,
		lease:   &lease{kv: kv, key: leaseKey, id: o.ID, ttl: o.LeaseTTL},
		logger:  o.Logger,
		now:     time.Now,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "cluster_events", Name: "published_total",
			Help: "Cluster events this replica published: acknowledged by the Events stream, or failed.",
		}, []string{"result"}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "k8smon", Subsystem: "cluster_events", Name: "publisher",
			Help: "1 while this replica holds the lease and publishes cluster events.",
		}),
	}
	p.published.WithLabelValues("acknowledged")
	p.published.WithLabelValues("failed")
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{p.published, p.leading} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register cluster event metrics: %w", err)
			}
		}
	}
	return p, nil
}

// LeaseBucket is the KV bucket of the lease under prefix.
func LeaseBucket(prefix string) string {
	return strings.TrimSuffix(streams.EventsName(prefix), "_EVENTS") + "_LEADER"
}

// Start tries for the lease at once and then every third of its TTL until
// Close.
func (p *Publisher) Start() {
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.o.LeaseTTL / 3)
		defer t.Stop()
		for {
			p.tick()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (p *Publisher) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), p.o.LeaseTTL/3)
	defer cancel()
	holds, err := p.lease.try(ctx, p.now())
	if err != nil {
		p.logger.Warn("cluster event lease", "error", err, "holding", holds)
	}
	p.mu.Lock()
	was := p.leader
	p.leader = holds
	p.mu.Unlock()
	switch {
	case holds && !was:
		p.leading.Set(1)
		p.logger.Info("this replica now publishes cluster events", "id", p.o.ID)
		p.takeOver(ctx)
	case !holds && was:
		p.leading.Set(0)
		p.logger.Info("another replica publishes cluster events now", "holder", p.lease.holder())
	}
}

// Publish sends events when this replica holds the lease; otherwise it
// keeps them for a take-over. It never blocks on NATS: acknowledgements
// are awaited in the background.
func (p *Publisher) Publish(events []model.Event) {
	p.mu.Lock()
	leader := p.leader
	p.remember(events)
	p.mu.Unlock()
	if !leader {
		return
	}
	for i := range events {
		p.send(&events[i])
	}
}

// remember keeps the events of the last lease TTL and a bit, bounded.
func (p *Publisher) remember(events []model.Event) {
	cutoff := p.now().Add(-p.window())
	kept := p.recent[:0]
	for _, e := range p.recent {
		if e.Timestamp.After(cutoff) {
			kept = append(kept, e)
		}
	}
	kept = append(kept, events...)
	if n := len(kept) - maxRecent; n > 0 {
		kept = kept[n:]
	}
	p.recent = kept
}

// window is how far back a take-over looks: a crashed holder's lease runs
// out after the TTL, and the successor notices within a third more.
func (p *Publisher) window() time.Duration { return p.o.LeaseTTL + p.o.LeaseTTL/3 + time.Second }

func (p *Publisher) send(e *model.Event) {
	data, err := wire.EncodeEvent(wire.KindClusterEvent, p.o.ID, e)
	if err == nil {
		var f jetstream.PubAckFuture
		f, err = p.js.PublishMsgAsync(&nats.Msg{Subject: p.subject, Data: data})
		if err == nil {
			go p.await(f, e.Type)
			return
		}
	}
	p.published.WithLabelValues("failed").Inc()
	p.logger.Warn("cluster event not published", "type", e.Type, "error", err)
}

func (p *Publisher) await(f jetstream.PubAckFuture, typ model.EventType) {
	select {
	case <-f.Ok():
		p.published.WithLabelValues("acknowledged").Inc()
	case err := <-f.Err():
		p.published.WithLabelValues("failed").Inc()
		p.logger.Warn("cluster event not acknowledged", "type", typ, "error", err)
	}
}

// takeOver publishes the events this replica saw in the last window that
// the Events stream does not hold: those the previous holder derived too
// are there already, under the same key.
func (p *Publisher) takeOver(ctx context.Context) {
	since := p.now().Add(-p.window())
	var pending []model.Event
	p.mu.Lock()
	for _, e := range p.recent {
		if e.Timestamp.After(since) {
			pending = append(pending, e)
		}
	}
	p.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	stored, err := p.storedSince(ctx, since)
	if err != nil {
		p.logger.Warn("cannot read the Events stream; publishing the hand-over's events again", "error", err)
	}
	n := 0
	for i := range pending {
		if !stored[key(&pending[i])] {
			p.send(&pending[i])
			n++
		}
	}
	if n > 0 {
		p.logger.Info("published cluster events of the hand-over the previous holder had not", "events", n)
	}
}

// storedSince returns the keys of the cluster events stored since t.
func (p *Publisher) storedSince(ctx context.Context, t time.Time) (map[string]bool, error) {
	c, err := p.events.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{p.subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &t,
	})
	if err != nil {
		return nil, fmt.Errorf("read stored cluster events: %w", err)
	}
	keys := map[string]bool{}
	for range maxRecent / 64 {
		batch, err := c.Fetch(64, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return keys, fmt.Errorf("read stored cluster events: %w", err)
		}
		last := true
		for m := range batch.Messages() {
			if e, err := wire.DecodeClusterEvent(m.Data()); err == nil {
				keys[key(e)] = true
			}
			if md, err := m.Metadata(); err == nil {
				last = md.NumPending == 0
			}
		}
		if batch.Error() != nil || last {
			break
		}
	}
	return keys, nil
}

// key identifies an event by what it is about, not by when a replica
// noticed it: two replicas derive the same change at different instants.
func key(e *model.Event) string {
	return strings.Join([]string{string(e.Type), e.Severity, e.Node, e.Namespace, e.Name, e.Source,
		e.Details["new"], e.Details["restarts"]}, "\x00")
}

// Leader reports whether this replica publishes cluster events now.
func (p *Publisher) Leader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader
}

// Close stops renewing and releases the lease, so another replica takes
// over at once, and waits for pending acknowledgements up to ctx.
func (p *Publisher) Close(ctx context.Context) error {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	p.leader = false
	p.mu.Unlock()
	p.leading.Set(0)
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	return p.lease.release(ctx)
}
