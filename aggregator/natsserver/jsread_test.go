package natsserver

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
)

// TestKubernetesModeReaderReplaysStreams: a reader replays what the Events
// stream kept before it connected, with the jetstream package's ordered
// consumer, and can change neither the streams nor what they hold.
func TestKubernetesModeReaderReplaysStreams(t *testing.T) {
	e := startKubeWith(t, authn.Options{}, time.Hour, []Option{JetStream(t.TempDir())})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The aggregator's own connection creates the streams; an event is
	// stored before the reader exists.
	own, err := nats.Connect("", e.srv.InProcessOption())
	require.NoError(t, err)
	defer own.Close()
	_, err = streams.Ensure(ctx, own, streams.Config{Prefix: "k8smon", ReportsMaxAge: time.Hour, EventsMaxAge: time.Hour, Replicas: 1},
		slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ownJS, err := jetstream.New(own)
	require.NoError(t, err)
	_, err = ownJS.Publish(ctx, "k8smon.node.node-a.event", []byte("before the reader"))
	require.NoError(t, err)
	_, err = ownJS.Publish(ctx, "k8smon.node.node-a.report", []byte("a report"))
	require.NoError(t, err)

	reader, err := e.connect(t, nats.Token(e.readerToken("reader")))
	require.NoError(t, err)
	js, err := jetstream.New(reader.nc)
	require.NoError(t, err)
	events := streams.EventsName("k8smon")

	info, err := js.Stream(ctx, events)
	require.NoError(t, err, reader.errors())
	assert.Equal(t, uint64(1), info.CachedInfo().State.Msgs)

	cons, err := js.OrderedConsumer(ctx, events, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	require.NoError(t, err, reader.errors())
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err, reader.errors())
	assert.Equal(t, "before the reader", string(msg.Data()))
	assert.Equal(t, "k8smon.node.node-a.event", msg.Subject())

	// The same with a filter: the Reports stream, one node.
	reports, err := js.OrderedConsumer(ctx, streams.ReportsName("k8smon"), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"k8smon.node.node-a.report"}})
	require.NoError(t, err, reader.errors())
	msg, err = reports.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err, reader.errors())
	assert.Equal(t, "a report", string(msg.Data()))
	require.Empty(t, reader.errors(), "replaying needs no request the reader may not make")

	// Nothing that writes or deletes: each request is refused by the
	// server's permissions, counted, and the streams stay as they were.
	refused := []struct {
		name string
		do   func(context.Context) error
	}{
		{"publish a report", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "k8smon.node.node-a.report", []byte("forged"))
			return err
		}},
		{"delete the Events stream", func(ctx context.Context) error { return js.DeleteStream(ctx, events) }},
		{"purge the Events stream", func(ctx context.Context) error {
			s, err := js.Stream(ctx, events)
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		}},
		{"delete a message", func(ctx context.Context) error {
			s, err := js.Stream(ctx, events)
			if err != nil {
				return err
			}
			return s.DeleteMsg(ctx, 1)
		}},
		{"create a stream", func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "STOLEN", Subjects: []string{"stolen.>"}})
			return err
		}},
		{"change the Events stream", func(ctx context.Context) error {
			_, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: events, Subjects: []string{"k8smon.>"}})
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := e.counter("k8smon_nats_permission_violations_total", "publish")
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			require.Error(t, tt.do(rctx))
			require.Eventually(t, func() bool { return e.counter("k8smon_nats_permission_violations_total", "publish") > before },
				5*time.Second, 10*time.Millisecond)
		})
	}
	for name, want := range map[string]uint64{events: 1, streams.ReportsName("k8smon"): 1} {
		s, err := ownJS.Stream(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, want, s.CachedInfo().State.Msgs, name)
	}
	_, err = ownJS.Stream(ctx, "STOLEN")
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}
