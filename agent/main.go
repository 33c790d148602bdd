// Command agent runs on every node: it reads the node's CPU, memory, disks,
// network, NVIDIA GPUs and local kubelet, and publishes node reports and
// events to NATS. With --once it prints one report as JSON and exits.
package main

import (
	"context"
	"encoding/json"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/gpu"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/kubelet"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/publish"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/reporter"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

// onceSample is how long --once lets counters advance before it reads them,
// so CPU and network rates cover a real interval.
const onceSample = time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is the agent's command line.
var command = config.Command{
	Name: "agent",
	Usage: `Reads this node (CPU, memory, disks, network, NVIDIA GPUs, the local kubelet)
and publishes a report every interval to NATS on <prefix>.node.<node>.report,
events on <prefix>.node.<node>.event.

Usage:
  agent --once                 print one report as JSON and exit
  agent --nats-url nats://aggregator:4222
`,
	Register: config.RegisterAgentFlags,
	Validate: (*config.Config).ValidateAgent,
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, logger, code, ok := command.Parse(args, stdout, stderr)
	if !ok {
		return code
	}
	if cfg.Agent.Once {
		return runOnce(cfg, logger, stdout)
	}
	if err := runLoop(cfg, logger); err != nil {
		logger.Error("agent stopped", "error", err)
		return 1
	}
	return 0
}

// closer is a source holding resources (NVML, a gRPC connection).
type closer interface{ Close() error }

// buildSources returns the agent's sources in apply order: host, gpu, then
// podresources (it attaches pods to the GPUs), then kubelet, then the pod
// cgroups' memory counters. Sources turned off by metrics.enabled,
// enable_node or enable_pod stay in the list as unavailable, saying which key.
func buildSources(cfg *config.Config, logger *slog.Logger) []collector.Source {
	return append(nodeSources(cfg, logger), podSources(cfg, logger)...)
}

// nodeSources are the host's and the GPUs' sources.
func nodeSources(cfg *config.Config, logger *slog.Logger) []collector.Source {
	a := cfg.Agent
	sources := collector.NewHostSources(a, logger)
	if on, off := cfg.Metrics.NodeMetrics(); !on {
		for i, s := range sources {
			sources[i] = collector.Disabled(s.Name(), "disabled by configuration ("+off+")")
		}
		return append(sources, collector.Disabled(gpu.SourceName, "disabled by configuration ("+off+")"))
	}
	if !a.GPU.Enabled {
		return append(sources, collector.Disabled(gpu.SourceName, "disabled by configuration (agent.gpu.enabled=false)"))
	}
	return append(sources,
		gpu.NewSource(logger.With("source", gpu.SourceName), gpu.Options{NodeName: a.NodeName}),
		gpu.NewPodResourcesSource(logger.With("source", gpu.PodResourcesSourceName), a.GPU.PodResourcesSocket))
}

// podSources are the kubelet's pods and their cgroups.
func podSources(cfg *config.Config, logger *slog.Logger) []collector.Source {
	a := cfg.Agent
	if on, off := cfg.Metrics.PodMetrics(); !on {
		return []collector.Source{
			collector.Disabled(kubelet.Name, "disabled by configuration ("+off+")"),
			collector.Disabled(collector.CgroupSourceName, "disabled by configuration ("+off+")"),
		}
	}
	var k collector.Source
	switch {
	case !a.Kubelet.Enabled:
		k = collector.Disabled(kubelet.Name, "disabled by configuration (agent.kubelet.enabled=false)")
	case a.Kubelet.URL == "":
		k = collector.Disabled(kubelet.Name, "no kubelet URL: set --kubelet-url or $NODE_IP")
	default:
		src, err := kubelet.New(a.Kubelet, logger.With("source", kubelet.Name))
		if err != nil {
			k = collector.Disabled(kubelet.Name, err.Error())
		} else {
			k = src
		}
	}
	return []collector.Source{k, collector.NewCgroupSource(collector.NewHostPaths(a.HostRoot))}
}

func closeSources(sources []collector.Source, logger *slog.Logger) {
	for _, s := range sources {
		if c, ok := s.(closer); ok {
			if err := c.Close(); err != nil {
				logger.Warn("close source", "source", s.Name(), "error", err)
			}
		}
	}
}

func runOnce(cfg *config.Config, logger *slog.Logger, stdout io.Writer) int {
	sources := buildSources(cfg, logger)
	defer closeSources(sources, logger)
	runner := collector.NewRunner(sources, cfg.Agent.SourceTimeout, logger, nil)
	rep := reporter.New(cfg.Agent.NodeName, cfg.Metrics.CollectInterval, runner, cfg.Agent.Thresholds, logger, nil)
	time.Sleep(onceSample)
	report, _ := rep.Cycle(context.Background())
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(report); err != nil {
		logger.Error("write report", "error", err)
		return 1
	}
	return 0
}

func runLoop(cfg *config.Config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger = logger.With("node", cfg.Agent.NodeName)
	logger.Info("agent starting", "version", version.Version, "interval", cfg.Metrics.CollectInterval,
		"nats", config.RedactURLs(cfg.NATS.URL), "natsCredential", cfg.NATS.CredentialKind(), "hostRoot", cfg.Agent.HostRoot, "kubelet", config.RedactURLs(cfg.Agent.Kubelet.URL))

	sources := buildSources(cfg, logger)
	defer closeSources(sources, logger)
	reg, rep, pub, err := instrumented(cfg, sources, logger)
	if err != nil {
		return err
	}
	var srv *http.Server
	if cfg.Agent.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Agent.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s for probes and metrics (agent.listen): %w", cfg.Agent.Listen, err)
		}
		srv = &http.Server{Handler: rep.Handler(pub, reg), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("probe server", "error", err)
			}
		}()
		logger.Info("serving /healthz, /readyz and /metrics", "addr", ln.Addr().String())
	}

	err = rep.Run(ctx, pub)
	logger.Info("agent stopping")
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if cerr := pub.Close(5 * time.Second); cerr != nil {
		logger.Warn("closing NATS", "error", cerr)
	}
	return err
}

// instrumented builds the reporter and the publisher with their metrics on
// one registry, the one /metrics serves, beside the runtime's and the
// process's.
func instrumented(cfg *config.Config, sources []collector.Source, logger *slog.Logger) (*prometheus.Registry, *reporter.Reporter, *publish.Publisher, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	runner := collector.NewRunner(sources, cfg.Agent.SourceTimeout, logger, reg)
	rep := reporter.New(cfg.Agent.NodeName, cfg.Metrics.CollectInterval, runner, cfg.Agent.Thresholds, logger, reg)
	pub, err := publish.Connect(cfg.NATS, cfg.Agent.NodeName, logger.With("component", "publish"), reg)
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, rep, pub, nil
}
