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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/dynamic"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/clusterevents"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/ingest"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/kube"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/manager"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/mcp"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natslink"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsserver"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/openapi"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/vm"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/web"
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
/api/v1/diagnose/{pods,nodes}/..., /api/v1/events[/stream], /healthz,
/readyz, /metrics, /mcp (Model Context Protocol), /openapi.json.
NATS: embedded on --nats-listen unless --nats-url names an existing server.
Without a configured cluster (no in-cluster service account, no kubeconfig)
it runs standalone (agents only); a configured API server that does not
answer is waited for.

Usage:
  aggregator                                 embedded NATS, in-cluster or ~/.kube/config
  aggregator --nats-url nats://nats:4222     use an existing NATS
`,
	Register: config.RegisterAggregatorFlags,
	Validate: (*config.Config).ValidateAggregator,
}

// Shutdown bounds.
const (
	// httpShutdownTimeout is how long requests in flight may take to
	// finish once the listener is closed.
	httpShutdownTimeout = 5 * time.Second
	// drainTimeout bounds the NATS drain: handling the messages already
	// received and flushing the last published events.
	drainTimeout = 5 * time.Second
	// streamsTimeout bounds one attempt at creating the streams.
	streamsTimeout = 10 * time.Second
)

func run(args []string, stdout, stderr io.Writer) int {
	cfg, logger, code, ok := command.Parse(args, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The listener comes first, so that probes answer from the start
	// however long NATS, the API server or the informers take.
	ln, err := net.Listen("tcp", cfg.Aggregator.HTTPAddr)
	if err != nil {
		logger.Error("aggregator not started", "error", fmt.Errorf("listen on %s for the HTTP API (aggregator.http_addr): %w", cfg.Aggregator.HTTPAddr, err))
		return 1
	}
	if err := serve(ctx, cfg, logger, ln, nil); err != nil {
		logger.Error("aggregator stopped", "error", err)
		return 1
	}
	return 0
}

// serve runs the aggregator on ln until ctx ends or one of its servers
// fails, then stops it in order. It returns nil after a stop asked for by
// ctx, and what failed otherwise. ready, when not nil, receives the HTTP
// and NATS addresses once everything is started (tests use it).
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, ln net.Listener, ready chan<- [2]string) error {
	logger.Info("aggregator starting", "version", version.Version, "interval", cfg.Metrics.CollectInterval)
	// Shutdown closes it once it is served; this covers a failed start.
	defer ln.Close() //nolint:errcheck // a second close only says it is closed
	g, gctx := errgroup.WithContext(ctx)
	runCtx, cancel := context.WithCancel(gctx)
	defer cancel()
	a := &aggregator{cfg: cfg, logger: logger, id: hostID()}
	err := a.start(runCtx, g, ln)
	if err == nil {
		if ready != nil {
			ready <- [2]string{ln.Addr().String(), a.natsURL}
		}
		<-runCtx.Done()
	}
	switch {
	case err != nil:
		// Returned below, and logged by run.
	case ctx.Err() != nil:
		logger.Info("aggregator stopping")
	default:
		logger.Error("a server failed; stopping", "error", context.Cause(gctx))
	}
	cancel()
	a.stop()
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

// hostID names this aggregator as the sender of its cluster events.
func hostID() string {
	if id, _ := os.Hostname(); id != "" {
		return id
	}
	return "aggregator"
}

// aggregator holds the running parts, so that stop can end them in order
// whatever point start reached.
type aggregator struct {
	cfg    *config.Config
	logger *slog.Logger
	id     string
	ident  *identity

	httpSrv  *http.Server
	embedded *natsserver.Server
	// tmpStore is the embedded server's temporary JetStream store, removed
	// at stop; "" with aggregator.data_dir set.
	tmpStore string
	natsURL  string
	nc       *nats.Conn
	ncClosed chan struct{}
	link     *natslink.Link
	streams  *streams.Result
	ing      *ingest.Ingester
	events   *clusterevents.Publisher
	// startup is what start-up awaits, for /readyz, until ing is set.
	startup  atomic.Pointer[string]
	ingReady atomic.Pointer[ingest.Ingester]
	mgr      *manager.Manager
	mgrDone  chan struct{}
	cluster  *kube.Cluster
	vms      *vm.Watcher
	evid     *evidence
	// clusterDone is closed when startCluster has returned.
	clusterDone chan struct{}
}

// start starts the parts in the order that keeps the process observable:
// the HTTP API (probes answer at once; /readyz says what is awaited), NATS
// and the agents' reports, the snapshot builds, and then, in the
// background, the API server, the informers and the VM watcher, which may
// take minutes. Long-running parts run in g, whose failure ends ctx.
func (a *aggregator) start(ctx context.Context, g *errgroup.Group, ln net.Listener) error {
	// Kubernetes: only the configuration here, which contacts nothing;
	// without one the aggregator runs on agents alone.
	cl, err := kube.Connect(a.cfg.Aggregator.Kubeconfig, a.logger.With("component", "kube"))
	switch {
	case errors.Is(err, kube.ErrStandalone):
		a.logger.Warn("standalone mode: nodes and pods come from agents only", "reason", err)
	case err != nil:
		return err
	default:
		a.cluster = cl
	}
	a.evid = newEvidence(a.cfg, a.logger, ctx.Done())
	if a.cluster != nil {
		if err := a.evid.watchPods(a.cluster); err != nil {
			return err
		}
	}

	// Virtual machines: KubeVirt VMIs and custom VM resources, when served.
	var vmSrc *vm.Source
	if a.cluster != nil && (a.cfg.VMs.KubeVirt || (a.cfg.Metrics.EnableCustom && len(a.cfg.VMs.Custom) > 0)) {
		dyn, err := dynamic.NewForConfig(a.cluster.RESTConfig())
		if err != nil {
			return fmt.Errorf("create dynamic client for VM resources: %w", err)
		}
		a.vms = vm.NewWatcher(dyn, a.cluster.Client().Discovery(), a.cfg.VMs, a.cfg.Metrics.EnableCustom, a.logger.With("component", "vm"))
		vmSrc = vm.NewSource(a.vms)
	}

	extra := prometheus.NewRegistry()
	extra.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Identity (kubernetes modes of NATS and HTTP) before either serves.
	if a.ident, err = newIdentity(ctx, a.cfg, a.logger, extra); err != nil {
		return err
	}
	history := state.NewHistory(a.cfg.Metrics.CacheRetention, a.cfg.Aggregator.HistoryPoints)
	store := state.NewStore(state.StoreOptions{
		History:    history,
		Standalone: a.cluster == nil,
		MaxAge:     3 * a.cfg.Metrics.CollectInterval,
	})
	a.awaiting("connecting to NATS and creating the JetStream streams")
	if err := a.startHTTP(g, ln, store, extra); err != nil {
		return err
	}

	if err := a.startNATS(ctx, g, extra); err != nil {
		return err
	}
	if err := a.startStreams(ctx, extra); err != nil {
		return err
	}
	if err := a.startIngest(extra, history); err != nil {
		return err
	}
	a.startManager(ctx, g, store, vmSrc)
	if a.cluster != nil {
		a.clusterDone = make(chan struct{})
		g.Go(func() error {
			defer close(a.clusterDone)
			return a.startCluster(ctx)
		})
	}
	return nil
}

// startHTTP serves the API, /mcp and /openapi.json on ln. A Serve failure
// fails g.
func (a *aggregator) startHTTP(g *errgroup.Group, ln net.Listener, store *state.Store, extra *prometheus.Registry) error {
	querier := api.NewQuerier(store, a.cfg.Agent.Thresholds)
	diag := a.evid.diagnoser(store, a.cluster, a.cfg.Agent.Thresholds)
	mopts := mcp.Options{Provider: store, Querier: querier, Logger: a.logger.With("component", "mcp")}
	a.evid.mcpOptions(&mopts, diag)
	mcpSrv, err := mcp.New(mopts)
	if err != nil {
		return err
	}
	handler := api.New(readiness{Store: store, a: a}, api.Options{
		Logger:        a.logger.With("component", "api"),
		ObjectMetrics: a.cfg.Aggregator.ObjectMetrics,
		Thresholds:    a.cfg.Agent.Thresholds,
		Gatherer:      extra,
		Querier:       querier,
		Collectors:    mcpSrv.Collectors(),
		Pprof:         a.cfg.Aggregator.Pprof,
		// Snapshot-sized answers written at once; more are refused (429).
		MaxSnapshotStreams: a.cfg.Aggregator.MaxSnapshotStreams,
		Extra: func(mux *http.ServeMux) {
			vm.RegisterRoutes(mux, func() []*model.VMMetrics {
				if s := store.Snapshot(); s != nil {
					return s.VMs
				}
				return nil
			})
			mcpSrv.RegisterRoutes(mux)
			openapi.RegisterRoutes(mux)
			a.evid.routes(mux, diag, extra)
			web.RegisterRoutes(mux)
		},
	})
	handler = a.ident.http(handler)
	a.httpSrv = api.NewServer(handler, api.ServerOptions{Logger: a.logger.With("component", "http"), Registerer: extra})
	g.Go(func() error {
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP API server on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	a.logger.Info("serving the HTTP API", "url", "http://"+localURL(ln.Addr()))
	return nil
}

// startNATS starts the embedded NATS server, with JetStream in
// aggregator.data_dir, unless an external URL is configured, and connects
// to it. Losing either for good fails g; an outage of an external NATS is
// logged, counted and reported by /readyz (natslink).
func (a *aggregator) startNATS(ctx context.Context, g *errgroup.Group, extra *prometheus.Registry) error {
	a.natsURL = a.cfg.NATS.URL
	opts := a.cfg.NATS.NATSOptions("k8smon-aggregator " + a.id)
	if a.natsURL == "" {
		dir, err := a.jetStreamDir()
		if err != nil {
			return err
		}
		srv, err := natsserver.Start(a.cfg.NATS, a.logger, append(a.ident.natsOptions(), natsserver.JetStream(dir))...)
		if err != nil {
			return err
		}
		a.embedded, a.natsURL = srv, srv.ClientURL()
		opts = append(opts, srv.InProcessOption())
		a.logger.Info("embedded NATS listening; point agents' --nats-url at this host", "listen", a.cfg.NATS.Listen, "url", a.natsURL)
	}
	closed := make(chan struct{})
	var once sync.Once
	opts = append(opts,
		nats.DrainTimeout(drainTimeout),
		nats.ClosedHandler(func(*nats.Conn) { once.Do(func() { close(closed) }) }),
	)
	link, err := natslink.Connect(a.natsURL, opts, a.logger.With("component", "nats"), extra)
	if err != nil {
		return err
	}
	a.link, a.nc, a.ncClosed = link, link.Conn(), closed
	if err := a.ident.serveCallout(a.nc); err != nil {
		return err
	}
	g.Go(func() error { return a.watchNATS(ctx) })
	return nil
}

// jetStreamDir returns the embedded server's store: aggregator.data_dir,
// or a temporary directory that stop removes.
func (a *aggregator) jetStreamDir() (string, error) {
	if dir := a.cfg.Aggregator.DataDir; dir != "" {
		return dir, nil
	}
	tmp, err := os.MkdirTemp("", "k8smon-jetstream-")
	if err != nil {
		return "", fmt.Errorf("create a temporary JetStream store (set aggregator.data_dir): %w", err)
	}
	a.tmpStore = tmp
	a.logger.Warn("no aggregator.data_dir: reports and history are kept in a temporary directory and lost at exit; set --data-dir to keep them across restarts", "dir", tmp)
	return tmp, nil
}

// startStreams creates or updates the Reports and Events streams,
// retrying while NATS is unreachable; a server without JetStream, an
// account without the rights or a conflicting stream is a configuration to
// fix and fails the start. Then it opens the cluster event publisher.
func (a *aggregator) startStreams(ctx context.Context, extra *prometheus.Registry) error {
	logger := a.logger.With("component", "streams")
	c := streams.FromConfig(a.cfg)
	wait := 500 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, streamsTimeout)
		res, err := streams.Ensure(actx, a.nc, c, logger)
		cancel()
		if err == nil {
			a.streams = res
			break
		}
		if errors.Is(err, streams.ErrNoJetStream) || errors.Is(err, streams.ErrPermission) || errors.Is(err, streams.ErrConflict) {
			return err
		}
		logger.Warn("cannot create the JetStream streams yet; retrying", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create the JetStream streams: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
	events, err := clusterevents.New(ctx, clusterevents.Options{
		Conn: a.nc, Prefix: a.cfg.NATS.SubjectPrefix, ID: a.id, Replicas: a.streams.Replicas,
		Registerer: extra, Logger: a.logger.With("component", "cluster-events"),
	})
	if err != nil {
		return err
	}
	events.Start()
	a.events = events
	return nil
}

// watchNATS fails when the embedded server stops or the connection closes
// while the aggregator is meant to run: without NATS it would serve ever
// older data.
func (a *aggregator) watchNATS(ctx context.Context) error {
	var serverDone <-chan struct{}
	if a.embedded != nil {
		serverDone = a.embedded.Done()
	}
	select {
	case <-ctx.Done():
		return nil
	case <-serverDone:
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("embedded NATS server stopped")
	case <-a.ncClosed:
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("NATS connection to %s closed", a.natsURL)
	}
}

// startIngest consumes the agents' reports and events. Replaying the
// Reports stream restores every node's latest report and, through a
// Restorer, the history window; the restored readings are the reports'
// own, merged with no Kubernetes object (the informers list later, and
// hold no past anyway).
func (a *aggregator) startIngest(extra *prometheus.Registry, history *state.History) error {
	restorer := state.NewRestorer(state.RestoreOptions{
		History: history, StaleIntervals: a.cfg.Aggregator.StaleIntervals, Thresholds: a.cfg.Agent.Thresholds,
	})
	ing, err := ingest.New(ingest.Config{
		Prefix:       a.cfg.NATS.SubjectPrefix,
		Registerer:   extra,
		Logger:       a.logger.With("component", "ingest"),
		MaxNodes:     a.cfg.Aggregator.MaxNodes,
		MaxClockSkew: a.cfg.Aggregator.MaxClockSkew,
		EventRate:    a.cfg.Aggregator.NodeEventRate,
		EventBurst:   a.cfg.Aggregator.NodeEventBurst,
		OnEvent: func(e *model.Event) {
			a.logger.Info("node event", "node", e.Node, "type", e.Type, "severity", e.Severity, "message", e.Message)
			a.evid.nodeEvent(e)
		},
		// The events store starts empty: refill it with what the Events
		// stream kept, quietly, as the past it is.
		EventReplay:            a.cfg.Aggregator.EventsRetention,
		OnReplayedEvent:        a.evid.nodeEvent,
		OnReplayedClusterEvent: a.evid.clusterEvent,
		OnRestore:              restorer.Add,
	})
	if err != nil {
		return err
	}
	if err := ing.Start(a.nc); err != nil {
		return fmt.Errorf("consume agent reports: %w", err)
	}
	a.ing = ing
	a.ingReady.Store(ing)
	a.evid.setReports(ing)
	return nil
}

// restored waits until the Reports stream has been replayed; false when
// ctx ended first.
func (a *aggregator) restored(ctx context.Context) bool {
	select {
	case <-a.ing.Restored():
		return true
	case <-ctx.Done():
		return false
	}
}

// awaiting records what start-up waits for, which /readyz says.
func (a *aggregator) awaiting(what string) { a.startup.Store(&what) }

// readiness adds start-up and NATS's reachability to the store's own
// probes: not ready until the streams exist and the Reports stream has
// been replayed; ready but degraded, still serving, while NATS is
// unreachable. Start-up is alive however long it takes (an external NATS
// that does not answer yet, a long window to replay): the store's "no
// snapshot built for …" applies once snapshots are built.
type readiness struct {
	*state.Store
	a *aggregator
}

// starting says what start-up awaits, "" once the restore is done.
func (r readiness) starting() string {
	ing := r.a.ingReady.Load()
	if ing == nil {
		return *r.a.startup.Load()
	}
	if restoring, why := ing.Restoring(); restoring {
		return why
	}
	return ""
}

// Healthy implements api.Provider.
func (r readiness) Healthy() (bool, string) {
	if why := r.starting(); why != "" {
		return true, why
	}
	return r.Store.Healthy()
}

// Ready implements api.Provider.
func (r readiness) Ready() (bool, string) {
	if why := r.starting(); why != "" {
		return false, why
	}
	ok, why := r.Store.Ready()
	if degraded := r.a.link.Degraded(); ok && degraded != "" {
		if why != "" {
			degraded += "; " + why
		}
		return true, degraded
	}
	return ok, why
}

// startManager builds snapshots in g, from the end of the restore until
// ctx ends or stop stops it: the first snapshot then holds every node.
func (a *aggregator) startManager(ctx context.Context, g *errgroup.Group, store *state.Store, vmSrc *vm.Source) {
	nodeOn, _ := a.cfg.Metrics.NodeMetrics()
	podOn, _ := a.cfg.Metrics.PodMetrics()
	mopts := manager.Options{
		Interval:       a.cfg.Metrics.CollectInterval,
		StaleIntervals: a.cfg.Aggregator.StaleIntervals,
		ForgetAfter:    max(a.cfg.Metrics.CacheRetention, time.Duration(a.cfg.Aggregator.StaleIntervals+1)*a.cfg.Metrics.CollectInterval),
		// The agents' thresholds (agent.thresholds, same config file) also
		// decide pressure in the snapshot, so both sides agree.
		Thresholds:    a.cfg.Agent.Thresholds,
		Reports:       a.ing,
		MetricsServer: a.cfg.Aggregator.MetricsServer && a.cfg.Metrics.Enabled,
		SkipNodeUsage: !nodeOn,
		SkipPodUsage:  !podOn,
		Store:         store,
		Logger:        a.logger.With("component", "manager"),
		OnEvents:      a.publishEvents,
	}
	// Typed nils would read as present sources.
	if a.cluster != nil {
		mopts.Cluster = a.cluster
	}
	if vmSrc != nil {
		mopts.VMs = vmSrc
	}
	a.mgr = manager.New(mopts)
	a.mgrDone = make(chan struct{})
	g.Go(func() error {
		defer close(a.mgrDone)
		if !a.restored(ctx) {
			return nil
		}
		// ErrStopped: stop came first, which is no failure.
		if err := a.mgr.Start(ctx); err != nil && !errors.Is(err, manager.ErrStopped) {
			return fmt.Errorf("build snapshots: %w", err)
		}
		return nil
	})
}

// publishEvents logs each cluster event and hands them to the publisher,
// which sends them when this replica holds the lease.
func (a *aggregator) publishEvents(events []model.Event) {
	for i := range events {
		e := &events[i]
		a.logger.Info("cluster event", "type", e.Type, "severity", e.Severity, "message", e.Message)
		a.evid.clusterEvent(e)
	}
	a.events.Publish(events)
}

// startCluster waits for the API server and the informers' first lists,
// builds a snapshot at once so that readiness does not wait for the next
// tick, and then starts the VM watcher. Meanwhile the snapshots hold what
// the agents report and /readyz says which step is awaited.
func (a *aggregator) startCluster(ctx context.Context) error {
	err := a.cluster.Start(ctx, a.cfg.Metrics.Namespaces)
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, kube.ErrNotSynced):
		a.logger.Warn("informers not synced yet; not ready until they are", "error", err)
	case err != nil:
		return fmt.Errorf("start informers: %w", err)
	case !a.restored(ctx):
		return nil
	default:
		if err := a.mgr.Collect(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("collect", "error", err)
		}
	}
	if err := a.evid.watchEvents(ctx, a.cluster, a.cfg.Metrics.Namespaces); err != nil {
		return fmt.Errorf("watch events: %w", err)
	}
	if a.vms != nil {
		if err := a.vms.Start(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("watch VM resources: %w", err)
		}
	}
	return nil
}

// stop ends what start started, in order: new HTTP requests refused and
// those in flight finished; snapshot builds stopped, so no cluster event is
// published after the drain; NATS drained, so that agents' messages already
// received are handled and the last events reach the server; the VM and
// Kubernetes informers stopped; the embedded NATS server shut down last,
// once no client of it is left.
func (a *aggregator) stop() {
	if a.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		if err := a.httpSrv.Shutdown(ctx); err != nil {
			a.logger.Warn("HTTP requests cut short at shutdown", "error", err)
			_ = a.httpSrv.Close()
		}
		cancel()
		a.logger.Info("HTTP API stopped")
	}
	if a.mgrDone != nil {
		_ = a.mgr.Stop()
		<-a.mgrDone
		a.logger.Info("snapshot builds stopped")
	}
	if a.events != nil {
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		if err := a.events.Close(ctx); err != nil {
			a.logger.Warn("release the cluster event lease", "error", err)
		}
		cancel()
	}
	if a.nc != nil {
		a.drainNATS()
	}
	if a.ing != nil {
		_ = a.ing.Close() // after the drain, which already unsubscribed
	}
	if a.clusterDone != nil {
		<-a.clusterDone // its ctx has ended; no watcher starts after this
	}
	if a.vms != nil {
		a.vms.Close()
	}
	if a.evid != nil {
		a.evid.close()
	}
	if a.cluster != nil {
		a.cluster.Close()
		a.logger.Info("informers stopped")
	}
	if a.embedded != nil {
		a.embedded.Shutdown()
	}
	if a.tmpStore != "" {
		_ = os.RemoveAll(a.tmpStore)
	}
}

// drainNATS drains the connection and waits until it is closed: Drain only
// starts the drain. The client gives up after drainTimeout itself; the
// wait has a bound of its own in case it does not.
func (a *aggregator) drainNATS() {
	if err := a.nc.Drain(); err != nil {
		a.logger.Warn("drain NATS", "error", err)
		a.nc.Close()
		return
	}
	t := time.NewTimer(drainTimeout + time.Second)
	defer t.Stop()
	select {
	case <-a.ncClosed:
		a.logger.Info("NATS connection drained")
	case <-t.C:
		a.logger.Warn("NATS drain did not finish; closing the connection", "after", drainTimeout)
		a.nc.Close()
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
