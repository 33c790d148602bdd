package natslink

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func run(t *testing.T, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(s.Shutdown)
	return s
}

func TestOutageIsLoggedCountedAndSaid(t *testing.T) {
	s := run(t, -1)
	port := s.Addr().(*net.TCPAddr).Port
	logs := &syncBuffer{}
	l, err := Connect(s.ClientURL(), []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)},
		slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	defer l.Conn().Close()
	assert.Equal(t, 1.0, testutil.ToFloat64(l.connected))
	assert.Empty(t, l.Degraded())

	s.Shutdown()
	s.WaitForShutdown()
	require.Eventually(t, func() bool { down, _ := l.Down(); return down }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 0.0, testutil.ToFloat64(l.connected))
	assert.Contains(t, l.Degraded(), "degraded: NATS unreachable for")
	assert.Contains(t, logs.String(), "disconnected from NATS")

	run(t, port)
	require.Eventually(t, func() bool { down, _ := l.Down(); return !down }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1.0, testutil.ToFloat64(l.connected))
	assert.Equal(t, 1.0, testutil.ToFloat64(l.changes.WithLabelValues("disconnected")))
	assert.Equal(t, 1.0, testutil.ToFloat64(l.changes.WithLabelValues("reconnected")))
	assert.Contains(t, logs.String(), "reconnected to NATS")
	assert.Empty(t, l.Degraded())
}

func TestNotYetConnectedIsDown(t *testing.T) {
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()
	l, err := Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), []nats.Option{nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)},
		slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	defer l.Conn().Close()
	down, _ := l.Down()
	assert.True(t, down)
	run(t, port)
	require.Eventually(t, func() bool { down, _ := l.Down(); return !down }, 5*time.Second, 5*time.Millisecond)
}
