// Command aggregator merges the agents' node reports with the API server
// (informers) and metrics-server into cluster snapshots, serves them over
// HTTP and publishes cluster events. By default it embeds a NATS server, so
// one binary and its agents are a whole install.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/dynamic"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/clusterevents"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/ingest"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/kube"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/manager"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natslink"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsserver"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/vm"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is the aggregator's command line.
var command = config.Command{
	Name: "aggregator",
	Usage: `Merges agent reports (NATS), the API server and metrics-server into cluster
snapshots. HTTP: /api/v1/metrics/{cluster,nodes,pods,snapshot}, /api/vms,
/healthz, /readyz, /metrics. NATS: embedded on --nats-listen unless
--nats-url names an existing server. Without a reachable cluster it runs
standalone (agents only).

Usage:
  aggregator                                 embedded NATS, in-cluster or ~/.kube/config
  aggregator --nats-url nats://nats:4222     use an existing NATS
`,
	Register: config.RegisterAggregatorFlags,
	Validate: (*config.Config).ValidateAggregator,
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, logger, code, ok := command.Parse(args, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, logger, nil); err != nil {
		logger.Error("aggregator stopped", "error", err)
		return 1
	}
	return 0
}

// serve runs the aggregator until ctx ends. ready, when not nil, receives
// the HTTP and NATS addresses once both listen (tests use it).
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, ready chan<- [2]string) error {
	logger.Info("aggregator starting", "version", version.Version, "interval", cfg.Metrics.CollectInterval)
	id, _ := os.Hostname()
	if id == "" {
		id = "aggregator"
	}

	// NATS: embedded unless an external URL is configured.
	var embedded *natsserver.Server
	natsURL := cfg.NATS.URL
	opts := cfg.NATS.NATSOptions("k8smon-aggregator " + id)
	if natsURL == "" {
		dataDir, cleanup, err := jetStreamDir(cfg.Aggregator.DataDir, logger)
		if err != nil {
			return err
		}
		defer cleanup()
		srv, err := natsserver.Start(cfg.NATS, logger, natsserver.JetStream(dataDir))
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		embedded, natsURL = srv, srv.ClientURL()
		opts = append(opts, srv.InProcessOption())
		logger.Info("embedded NATS listening; point agents' --nats-url at this host", "listen", cfg.NATS.Listen, "url", natsURL)
	}
	extra := prometheus.NewRegistry()
	extra.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	link, err := natslink.Connect(natsURL, opts, logger.With("component", "nats"), extra)
	if err != nil {
		return err
	}
	nc := link.Conn()
	defer nc.Close()
	streamCfg, err := ensureStreams(ctx, nc, cfg, logger.With("component", "streams"))
	if err != nil {
		return err
	}

	// Kubernetes: optional; without it the aggregator runs on agents alone.
	var clusterSrc manager.ClusterSource
	cl, err := kube.Connect(cfg.Aggregator.Kubeconfig, logger.With("component", "kube"))
	switch {
	case errors.Is(err, kube.ErrStandalone):
		logger.Warn("standalone mode: nodes and pods come from agents only", "reason", err)
	case err != nil:
		return err
	default:
		defer cl.Close()
		if err := cl.Start(ctx, cfg.Metrics.Namespaces); err != nil && !errors.Is(err, kube.ErrNotSynced) {
			return fmt.Errorf("start informers: %w", err)
		} else if err != nil {
			logger.Warn("informers not synced yet; serving what they have", "error", err)
		}
		clusterSrc = cl
	}

	// Virtual machines: KubeVirt VMIs and custom VM resources, when served.
	var vmSrc *vm.Source
	if cl != nil && (cfg.VMs.KubeVirt || (cfg.Metrics.EnableCustom && len(cfg.VMs.Custom) > 0)) {
		dyn, err := dynamic.NewForConfig(cl.RESTConfig())
		if err != nil {
			return fmt.Errorf("create dynamic client for VM resources: %w", err)
		}
		w := vm.NewWatcher(dyn, cl.Client().Discovery(), cfg.VMs, cfg.Metrics.EnableCustom, logger.With("component", "vm"))
		if err := w.Start(ctx); err != nil {
			return fmt.Errorf("watch VM resources: %w", err)
		}
		vmSrc = vm.NewSource(w)
	}

	history := state.NewHistory(cfg.Metrics.CacheRetention, cfg.Aggregator.HistoryPoints)
	store := state.NewStore(state.StoreOptions{
		History:    history,
		Standalone: clusterSrc == nil,
		MaxAge:     3 * cfg.Metrics.CollectInterval,
	})

	// Reports and events from the streams; the replay of the Reports
	// stream restores every node's latest report and the history window.
	restoreOpts := state.RestoreOptions{History: history, StaleIntervals: cfg.Aggregator.StaleIntervals, Thresholds: cfg.Agent.Thresholds}
	if clusterSrc != nil {
		restoreOpts.Nodes, restoreOpts.Pods = clusterSrc.Nodes(), clusterSrc.Pods()
	}
	ing, err := ingest.New(ingest.Config{
		Prefix:     cfg.NATS.SubjectPrefix,
		Registerer: extra,
		Logger:     logger.With("component", "ingest"),
		OnEvent: func(e *model.Event) {
			logger.Info("node event", "node", e.Node, "type", e.Type, "severity", e.Severity, "message", e.Message)
		},
		OnRestore: state.NewRestorer(restoreOpts).Add,
	})
	if err != nil {
		return err
	}
	if err := ing.Start(nc); err != nil {
		return fmt.Errorf("consume agent reports: %w", err)
	}
	defer ing.Close() //nolint:errcheck // best effort on the way out

	// One replica publishes cluster events (a lease in a NATS KV bucket).
	events, err := clusterevents.New(ctx, clusterevents.Options{
		Conn: nc, Prefix: cfg.NATS.SubjectPrefix, ID: id, Replicas: streamCfg.Replicas,
		Registerer: extra, Logger: logger.With("component", "cluster-events"),
	})
	if err != nil {
		return err
	}
	events.Start()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := events.Close(cctx); err != nil {
			logger.Warn("release the cluster event lease", "error", err)
		}
	}()

	mopts := manager.Options{
		Interval:       cfg.Metrics.CollectInterval,
		StaleIntervals: cfg.Aggregator.StaleIntervals,
		ForgetAfter:    max(cfg.Metrics.CacheRetention, time.Duration(cfg.Aggregator.StaleIntervals+1)*cfg.Metrics.CollectInterval),
		// The agents' thresholds (agent.thresholds, same config file) also
		// decide pressure in the snapshot, so both sides agree.
		Thresholds:    cfg.Agent.Thresholds,
		Reports:       ing,
		Cluster:       clusterSrc,
		MetricsServer: cfg.Aggregator.MetricsServer,
		Store:         store,
		Logger:        logger.With("component", "manager"),
		OnEvents: func(evs []model.Event) {
			for i := range evs {
				e := &evs[i]
				logger.Info("cluster event", "type", e.Type, "severity", e.Severity, "message", e.Message)
			}
			events.Publish(evs)
		},
	}
	if vmSrc != nil {
		mopts.VMs = vmSrc
	}
	mgr := manager.New(mopts)
	mgrDone := make(chan error, 1)
	go func() {
		// Snapshots wait for the restore: the first one then holds every
		// node, and its history the whole window.
		select {
		case <-ing.Restored():
		case <-ctx.Done():
			mgrDone <- nil
			return
		}
		mgrDone <- mgr.Start(ctx)
	}()

	handler := api.New(readiness{Store: store, ing: ing, link: link}, api.Options{
		Logger:        logger.With("component", "api"),
		ObjectMetrics: cfg.Aggregator.ObjectMetrics,
		Thresholds:    cfg.Agent.Thresholds,
		Gatherer:      extra,
		Extra: func(mux *http.ServeMux) {
			vm.RegisterRoutes(mux, func() []*model.VMMetrics {
				if s := store.Snapshot(); s != nil {
					return s.VMs
				}
				return nil
			})
		},
	})
	ln, err := net.Listen("tcp", cfg.Aggregator.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s for the HTTP API (aggregator.http_addr): %w", cfg.Aggregator.HTTPAddr, err)
	}
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server", "error", err)
		}
	}()
	logger.Info("serving the HTTP API", "url", "http://"+localURL(ln.Addr()))
	if ready != nil {
		natsAddr := ""
		if embedded != nil {
			natsAddr = embedded.ClientURL()
		}
		ready <- [2]string{ln.Addr().String(), natsAddr}
	}

	<-ctx.Done()
	logger.Info("aggregator stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	_ = mgr.Stop()
	<-mgrDone
	if err := nc.Drain(); err != nil {
		logger.Warn("drain NATS", "error", err)
	}
	return nil
}

// readiness adds the restore and NATS's reachability to the store's own
// readiness: not ready while the Reports stream is replayed; ready but
// degraded, still serving, while NATS is unreachable.
type readiness struct {
	*state.Store
	ing  *ingest.Ingester
	link *natslink.Link
}

// Ready implements api.Provider.
func (r readiness) Ready() (bool, string) {
	if restoring, why := r.ing.Restoring(); restoring {
		return false, why
	}
	ok, why := r.Store.Ready()
	if degraded := r.link.Degraded(); ok && degraded != "" {
		if why != "" {
			degraded += "; " + why
		}
		return true, degraded
	}
	return ok, why
}

// jetStreamDir returns the embedded server's store: dir, or a temporary
// directory removed by cleanup when dir is empty.
func jetStreamDir(dir string, logger *slog.Logger) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "k8smon-jetstream-")
	if err != nil {
		return "", nil, fmt.Errorf("create a temporary JetStream store (set aggregator.data_dir): %w", err)
	}
	logger.Warn("no aggregator.data_dir: reports and history are kept in a temporary directory and lost at exit; set --data-dir to keep them across restarts", "dir", tmp)
	return tmp, func() { _ = os.RemoveAll(tmp) }, nil
}

// ensureStreams creates or updates the streams, retrying while NATS is
// unreachable; a server without JetStream, an account without the rights
// or a conflicting stream is a configuration to fix and ends the start.
func ensureStreams(ctx context.Context, nc *nats.Conn, cfg *config.Config, logger *slog.Logger) (*streams.Result, error) {
	c := streams.FromConfig(cfg)
	wait := 500 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := streams.Ensure(actx, nc, c, logger)
		cancel()
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, streams.ErrNoJetStream), errors.Is(err, streams.ErrPermission), errors.Is(err, streams.ErrConflict):
			return nil, err
		case ctx.Err() != nil:
			return nil, fmt.Errorf("create the JetStream streams: %w", ctx.Err())
		}
		logger.Warn("cannot create the JetStream streams yet; retrying", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create the JetStream streams: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// localURL turns a wildcard listen address into one a user can paste.
func localURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}
