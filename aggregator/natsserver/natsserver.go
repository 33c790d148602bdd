// Package natsserver embeds a NATS server in the aggregator, so that one
// binary is a complete install: agents connect to it as they would to any
// NATS server, and an existing NATS cluster (nats.url) replaces it at scale.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// DefaultListen is the address used when nats.listen is empty.
const DefaultListen = config.DefaultNATSListen

// ReadyTimeout bounds how long Start waits for the server to accept clients.
const ReadyTimeout = 10 * time.Second

// Errors returned by Start, matched with errors.Is.
var (
	// ErrListen means the server could not open its client port; the
	// message says which address and why, and how to pick another.
	ErrListen = errors.New("natsserver: could not listen")
	// ErrNotReady means the server started but did not accept clients
	// within ReadyTimeout.
	ErrNotReady = errors.New("natsserver: not ready for connections")
	// ErrConfig means the nats: block asks for something the embedded
	// server cannot do.
	ErrConfig = errors.New("natsserver: unsupported configuration")
)

// listenError reads as the advice an operator needs ("embedded NATS could
// not listen on :4222: address in use; set --nats-listen or --nats-url")
// while still matching ErrListen.
type listenError struct {
	addr, reason string
}

func (e *listenError) Error() string {
	return fmt.Sprintf("embedded NATS could not listen on %s: %s; set --nats-listen or --nats-url", e.addr, e.reason)
}

func (e *listenError) Unwrap() error { return ErrListen }

// Server is a running embedded NATS server.
type Server struct {
	ns     *server.Server
	host   string // as configured, to pick a loopback family
	tls    bool
	logger *slog.Logger
	auth   *kubeAuth // kubernetes mode, else nil
	stop   context.CancelFunc
	once   sync.Once
	done   chan struct{}
}

// Start runs a NATS server on cfg.Listen ("host:port"; port 0 or -1 picks a
// free one) with the authentication the clients are configured with:
// Kubernetes identities (nats.auth_mode kubernetes, see WithKubernetes), a
// token, or a user and password. TLS is served when cfg.TLSCertFile and
// cfg.TLSKeyFile are set; JetStream when asked (see JetStream). It returns
// once the server accepts clients.
func Start(cfg config.NATSConfig, logger *slog.Logger, with ...Option) (*Server, error) {
	logger = logger.With("source", "nats-server")
	var so startOptions
	for _, o := range with {
		o(&so)
	}
	listen := cfg.Listen
	if listen == "" {
		listen = DefaultListen
	}
	opts, err := options(cfg, listen)
	if err != nil {
		return nil, err
	}
	if so.jetStream {
		if err := enableJetStream(opts, so.storeDir); err != nil {
			return nil, err
		}
	}
	metrics := newViolationMetrics()
	if so.reg != nil {
		so.reg.MustRegister(metrics.refused, metrics.violations, metrics.closed)
	}
	var auth *kubeAuth
	if cfg.AuthMode == config.AuthKubernetes {
		if so.rules == nil {
			return nil, fmt.Errorf("%w: nats.auth_mode kubernetes needs a Kubernetes API server (no cluster configured)", ErrConfig)
		}
		auth = newKubeAuth(so.rules, metrics, logger)
		opts.CustomClientAuthentication = auth
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create embedded NATS server on %s: %w", listen, err)
	}
	lg := newSlogLogger(logger)
	if auth != nil {
		lg.violation = auth.violation
	}
	// Protocol tracing logs every message, far too much even at debug.
	ns.SetLoggerV2(lg, logger.Enabled(context.Background(), slog.LevelDebug), false, false)

	// Start opens the client listener synchronously and reports a failure
	// through Fatalf, which our logger turns into a value instead of exiting.
	ns.Start()
	if msg, ok := lg.fatal(); ok {
		ns.Shutdown()
		return nil, &listenError{addr: listen, reason: listenReason(msg)}
	}
	if !ns.ReadyForConnections(ReadyTimeout) {
		ns.Shutdown()
		if msg, ok := lg.fatal(); ok {
			return nil, &listenError{addr: listen, reason: listenReason(msg)}
		}
		return nil, fmt.Errorf("start embedded NATS on %s: %w after %s", listen, ErrNotReady, ReadyTimeout)
	}
	s := &Server{ns: ns, host: opts.Host, tls: opts.TLSConfig != nil, logger: logger, done: make(chan struct{}), auth: auth, stop: func() {}}
	go func() {
		ns.WaitForShutdown()
		close(s.done)
	}()
	if auth != nil {
		auth.mu.Lock()
		auth.ns = ns
		auth.mu.Unlock()
		if so.pods != nil {
			so.pods.OnDelete(auth.podDeleted)
		}
		every := so.recheck
		if every <= 0 {
			every = DefaultRecheck
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.stop = cancel
		go auth.loop(ctx, every)
	}
	logger.Info("embedded NATS server ready", "listen", listen, "url", s.ClientURL(), "tls", s.tls, "auth", authKind(cfg), "jetstream", opts.StoreDir)
	return s, nil
}

func options(cfg config.NATSConfig, listen string) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("%w: nats.listen %q is not host:port: %v", ErrConfig, listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return nil, fmt.Errorf("%w: nats.listen %q has no valid port", ErrConfig, listen)
	}
	if port == 0 {
		// NATS reads 0 as "default 4222"; here it means "any free port",
		// as it does for net.Listen.
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		Host: host,
		Port: port,
		// The aggregator owns the process's signals and its shutdown order.
		NoSigs: true,
		// The wire contract bounds messages to this size on both sides.
		MaxPayload: wire.MaxMessageBytes,
	}
	switch {
	case cfg.AuthMode == config.AuthKubernetes:
		// Start installs the custom authentication.
	case cfg.CredsFile != "":
		// A credentials file holds a user JWT, which only an operator-mode
		// server can verify; accepting it unchecked would mean no auth.
		return nil, fmt.Errorf("%w: nats.creds_file needs an operator-configured NATS server; use nats.token or nats.user with the embedded one, or set --nats-url", ErrConfig)
	case cfg.Token != "":
		opts.Authorization = cfg.Token
	case cfg.User != "":
		opts.Username, opts.Password = cfg.User, cfg.Password
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		// Client certificates are not required: agents authenticate with
		// the token or password, and TLS protects them on the wire.
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile})
		if err != nil {
			return nil, fmt.Errorf("load embedded NATS TLS certificate %s: %w", cfg.TLSCertFile, err)
		}
		opts.TLS = true
		opts.TLSConfig = tc
		opts.TLSTimeout = 2
	}
	return opts, nil
}

func authKind(cfg config.NATSConfig) string {
	switch {
	case cfg.AuthMode == config.AuthKubernetes:
		return "kubernetes"
	case cfg.Token != "":
		return "token"
	case cfg.User != "":
		return "user"
	}
	return "none"
}

// listenReason turns the server's fatal message into the plain cause.
func listenReason(msg string) string {
	switch {
	case strings.Contains(msg, "address already in use"):
		return "address in use"
	case strings.Contains(msg, "permission denied"):
		return "permission denied"
	case strings.Contains(msg, "cannot assign requested address"):
		return "no such local address"
	}
	return msg
}

// ClientURL is the URL a client in this process or on this host uses to
// reach the server: the real port even when a free one was picked, and a
// loopback address when the server listens on all interfaces.
func (s *Server) ClientURL() string {
	scheme := "nats"
	if s.tls {
		scheme = "tls"
	}
	addr, ok := s.ns.Addr().(*net.TCPAddr)
	if !ok {
		return s.ns.ClientURL()
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		// Go listens dual-stack on an empty host, so IPv4 loopback
		// answers unless an IPv6 address was asked for explicitly.
		host = "127.0.0.1"
		if ip := net.ParseIP(s.host); ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(addr.Port))}).String()
}

// InProcessOption connects a nats.go client through memory instead of TCP,
// which the aggregator's own connection uses: no port, no TLS handshake,
// and no certificate that must name 127.0.0.1.
// In kubernetes mode it also carries the in-process secret that gives the
// aggregator full rights; no other client can present it.
func (s *Server) InProcessOption() nats.Option {
	if s.auth != nil {
		return s.auth.inProcessOption(s.ns)
	}
	return nats.InProcessServer(s.ns)
}

// Done is closed once the server has stopped, by Shutdown or on its own.
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown stops the server, closing every client connection, and waits
// until it has stopped. Clients should be drained first. It is safe to call
// more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.stop()
		s.ns.Shutdown()
		<-s.done
		s.logger.Info("embedded NATS server stopped")
	})
}
