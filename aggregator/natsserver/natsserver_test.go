package natsserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// syncBuffer lets the server's goroutines and the test share a log buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func startServer(t *testing.T, cfg config.NATSConfig) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	logger, _ := testLogger(t)
	s, err := Start(cfg, logger)
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	return s
}

// roundTrip proves a connection can publish and receive through the server.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.SubscribeSync("t.echo")
	require.NoError(t, err)
	require.NoError(t, nc.Publish("t.echo", []byte("hi")))
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hi", string(msg.Data))
}

func TestStartAndConnect(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "127.0.0.1:-1", ":0"} {
		t.Run(listen, func(t *testing.T) {
			s := startServer(t, config.NATSConfig{Listen: listen})
			u := s.ClientURL()
			assert.True(t, strings.HasPrefix(u, "nats://127.0.0.1:"), u)
			assert.NotContains(t, u, ":0", "the picked port is reported, not the asked one")
			nc, err := nats.Connect(u)
			require.NoError(t, err)
			defer nc.Close()
			roundTrip(t, nc)
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name   string
		server config.NATSConfig
		good   []nats.Option
		bad    []nats.Option
	}{
		{
			name:   "token",
			server: config.NATSConfig{Token: "s3cret"},
			good:   []nats.Option{nats.Token("s3cret")},
			bad:    []nats.Option{nats.Token("wrong")},
		},
		{
			name:   "user and password",
			server: config.NATSConfig{User: "agent", Password: "pw"},
			good:   []nats.Option{nats.UserInfo("agent", "pw")},
			bad:    []nats.Option{nats.UserInfo("agent", "nope")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.server)

			// The clients' own options, built from the same config block,
			// must get in.
			clientCfg := tt.server
			opts := append(clientCfg.NATSOptions("test"), nats.RetryOnFailedConnect(false))
			nc, err := nats.Connect(s.ClientURL(), opts...)
			require.NoError(t, err)
			roundTrip(t, nc)
			nc.Close()

			nc, err = nats.Connect(s.ClientURL(), tt.good...)
			require.NoError(t, err)
			nc.Close()

			_, err = nats.Connect(s.ClientURL(), tt.bad...)
			require.Error(t, err)
			_, err = nats.Connect(s.ClientURL())
			require.Error(t, err, "no credentials")
		})
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	tests := []struct {
		name    string
		cfg     config.NATSConfig
		target  error
		message string
	}{
		{
			name:    "address in use",
			cfg:     config.NATSConfig{Listen: busy.Addr().String()},
			target:  ErrListen,
			message: "embedded NATS could not listen on " + busy.Addr().String() + ": address in use; set --nats-listen or --nats-url",
		},
		{name: "not host:port", cfg: config.NATSConfig{Listen: "4222"}, target: ErrConfig},
		{name: "bad port", cfg: config.NATSConfig{Listen: ":http"}, target: ErrConfig},
		{name: "creds file", cfg: config.NATSConfig{Listen: "127.0.0.1:0", CredsFile: "/x.creds"}, target: ErrConfig},
		{name: "missing certificate", cfg: config.NATSConfig{Listen: "127.0.0.1:0", TLSCertFile: "/nonexistent.crt", TLSKeyFile: "/nonexistent.key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := testLogger(t)
			s, err := Start(tt.cfg, logger)
			require.Error(t, err)
			assert.Nil(t, s)
			if tt.target != nil {
				assert.ErrorIs(t, err, tt.target)
			}
			if tt.message != "" {
				assert.Equal(t, tt.message, err.Error())
			}
		})
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	s := startServer(t, config.NATSConfig{TLSCertFile: certFile, TLSKeyFile: keyFile, Token: "tok"})
	require.True(t, strings.HasPrefix(s.ClientURL(), "tls://"), s.ClientURL())

	client := config.NATSConfig{TLSCAFile: certFile, Token: "tok"}
	nc, err := nats.Connect(s.ClientURL(), append(client.NATSOptions("test"), nats.RetryOnFailedConnect(false))...)
	require.NoError(t, err)
	defer nc.Close()
	assert.True(t, nc.TLSRequired())
	roundTrip(t, nc)

	_, err = nats.Connect(s.ClientURL(), nats.Token("tok"), nats.RetryOnFailedConnect(false))
	require.Error(t, err, "an unknown CA is refused")
}

func TestInProcess(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	// Even with TLS and a token, the in-process connection needs no CA.
	s := startServer(t, config.NATSConfig{TLSCertFile: certFile, TLSKeyFile: keyFile, Token: "tok"})
	nc, err := nats.Connect("", s.InProcessOption(), nats.Token("tok"))
	require.NoError(t, err)
	defer nc.Close()
	roundTrip(t, nc)
}

func TestShutdownClosesClientsAndIsIdempotent(t *testing.T) {
	logger, buf := testLogger(t)
	s, err := Start(config.NATSConfig{Listen: "127.0.0.1:0"}, logger)
	require.NoError(t, err)
	closed := make(chan struct{})
	nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	require.NoError(t, err)
	select {
	case <-s.Done():
		t.Fatal("Done closed while the server runs")
	default:
	}

	s.Shutdown()
	s.Shutdown()
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Shutdown")
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("client not closed by Shutdown")
	}
	assert.True(t, nc.IsClosed())

	logs := buf.String()
	assert.Contains(t, logs, "source=nats-server")
	assert.Contains(t, logs, "level=INFO msg=\"Server is ready\"")
	assert.Contains(t, logs, "embedded NATS server stopped")
}

func TestFatalfDoesNotExit(t *testing.T) {
	logger, buf := testLogger(t)
	l := newSlogLogger(logger)
	l.Fatalf("first %d", 1)
	l.Fatalf("second")
	msg, ok := l.fatal()
	require.True(t, ok)
	assert.Equal(t, "first 1", msg)
	assert.Contains(t, buf.String(), "level=ERROR")
}

// writeSelfSigned writes a certificate for 127.0.0.1 and localhost that
// serves as its own CA.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "k8smon-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

func TestJetStreamKeepsStreamsAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by Start
	logger, _ := testLogger(t)
	s, err := Start(config.NATSConfig{Listen: "127.0.0.1:0"}, logger, JetStream(dir))
	require.NoError(t, err)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEPT", Subjects: []string{"kept"}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "kept", []byte("hello"))
	require.NoError(t, err)
	nc.Close()
	s.Shutdown()

	s, err = Start(config.NATSConfig{Listen: "127.0.0.1:0"}, logger, JetStream(dir))
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	nc, err = nats.Connect("", s.InProcessOption())
	require.NoError(t, err)
	defer nc.Close()
	js, err = jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, "KEPT")
	require.NoError(t, err)
	m, err := stream.GetLastMsgForSubject(ctx, "kept")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(m.Data))
}

func TestJetStreamNeedsADirectory(t *testing.T) {
	logger, _ := testLogger(t)
	_, err := Start(config.NATSConfig{Listen: "127.0.0.1:0"}, logger, JetStream(""))
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "aggregator.data_dir")
}
