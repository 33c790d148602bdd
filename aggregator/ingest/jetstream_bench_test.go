package ingest

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// BenchmarkIngestPath measures the whole way of one 30-pod report from the
// agent's publish to the aggregator's store, with the NATS server in the
// same process so that its work is counted too: "core" is the plain
// publish and subscription this product used before JetStream; "jetstream"
// is the agent's acknowledged publish (one round trip per report, with its
// message ID), the Reports stream's file store, and the ingester's ordered
// consumer. cpu-ns/report is the process's CPU time (user + system) per
// report; disk-B/report is what the stream's directory grew by, and
// disk-MB/node/h the same for one node reporting every 15 s for an hour.
func BenchmarkIngestPath(b *testing.B) {
	b.Run("core", benchCorePath)
	b.Run("jetstream", benchJetStreamPath)
}

func benchReports(b *testing.B, n int) [][]byte {
	b.Helper()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([][]byte, n)
	for i := range out {
		var err error
		out[i], err = wire.EncodeReport(realisticReport("ip-10-0-1-7.ec2.internal", 30, base.Add(time.Duration(i)*time.Second)))
		require.NoError(b, err)
	}
	return out
}

func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchCorePath(b *testing.B) {
	url := startNATS(b)
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	sub := connect(b, url)
	_, err = sub.Subscribe(wire.AllNodeReports(prefix), func(m *nats.Msg) { in.handle(m.Subject, m.Data) })
	require.NoError(b, err)
	require.NoError(b, sub.Flush())
	pub := connect(b, url)
	msgs := benchReports(b, b.N)
	subject := wire.NodeReportSubject(prefix, "ip-10-0-1-7.ec2.internal")
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	cpu := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		require.NoError(b, pub.Publish(subject, msgs[i]))
	}
	require.Eventually(b, func() bool { return testutil.ToFloat64(in.reports.WithLabelValues("accepted")) == float64(b.N) }, time.Minute, time.Millisecond)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/report")
}

func benchJetStreamPath(b *testing.B) {
	dir := b.TempDir()
	s := runServer(b, -1, dir)
	// The aggregator's defaults, with room for every report of the run.
	_, err := streams.Ensure(context.Background(), connect(b, s.ClientURL()), streams.Config{
		Prefix: prefix, ReportsMaxAge: time.Hour, ReportsPerSubject: int64(b.N), ReportsMaxBytes: 1 << 30,
		EventsMaxAge: time.Hour, EventsMaxBytes: 16 << 20,
	}, slog.New(slog.DiscardHandler))
	require.NoError(b, err)
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	require.NoError(b, in.Start(connect(b, s.ClientURL())))
	defer in.Close()
	pub := connect(b, s.ClientURL())
	js, err := jetstream.New(pub)
	require.NoError(b, err)
	msgs := benchReports(b, b.N)
	subject := wire.NodeReportSubject(prefix, "ip-10-0-1-7.ec2.internal")
	disk0 := dirBytes(b, dir)
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	cpu := cpuTime(b)
	b.ResetTimer()
	ctx := context.Background()
	for i := range b.N {
		// As the agent publishes: one at a time, acknowledged, with an ID.
		_, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: msgs[i]}, jetstream.WithMsgID(subject+"/"+time.Duration(i).String()))
		require.NoError(b, err)
	}
	require.Eventually(b, func() bool { return testutil.ToFloat64(in.reports.WithLabelValues("accepted")) == float64(b.N) }, time.Minute, time.Millisecond)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/report")
	stream, err := js.Stream(ctx, streams.ReportsName(prefix))
	require.NoError(b, err)
	info, err := stream.Info(ctx)
	require.NoError(b, err)
	require.EqualValues(b, b.N, info.State.Msgs)
	perReport := float64(dirBytes(b, dir)-disk0) / float64(b.N)
	b.ReportMetric(perReport, "disk-B/report")
	b.ReportMetric(perReport*float64(time.Hour/(15*time.Second))/1e6, "disk-MB/node/h")
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(b *testing.B, dir string) int64 {
	b.Helper()
	var n int64
	require.NoError(b, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	}))
	return n
}
