package gpu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// PodResourcesSourceName is the pod-resources source's name in reports.
const PodResourcesSourceName = "podresources"

// nvidiaResourcePrefix starts every resource name NVIDIA's device plugins
// advertise: nvidia.com/gpu, nvidia.com/mig-1g.5gb, renamed shared GPUs.
const nvidiaResourcePrefix = "nvidia.com/"

// maxPodResourcesMessage is the kubelet's own limit on pod-resources
// answers; gRPC's default of 4 MiB is too small on dense nodes.
const maxPodResourcesMessage = 16 << 20

// listMethod is the pod-resources v1 List call.
const listMethod = "/v1.PodResourcesLister/List"

// PodResourcesSource attributes GPUs to pods: it lists the kubelet's device
// allocations over the pod-resources socket and, in its Apply, adds a
// GPUPodRef to the GPUs that the gpu source put in the report. The runner
// applies sources in order, so it must come after the gpu source.
type PodResourcesSource struct {
	socket string
	logger *slog.Logger

	mu   sync.Mutex
	conn *unaryClient // opened on the first Collect that finds the socket
}

var _ collector.Source = (*PodResourcesSource)(nil)

// NewPodResourcesSource returns the source reading the kubelet's
// pod-resources API on the unix socket at socketPath
// (config.DefaultPodResourcesSock when empty).
func NewPodResourcesSource(logger *slog.Logger, socketPath string) *PodResourcesSource {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if socketPath == "" {
		socketPath = config.DefaultPodResourcesSock
	}
	return &PodResourcesSource{socket: socketPath, logger: logger.With("source", PodResourcesSourceName)}
}

// Name returns "podresources".
func (p *PodResourcesSource) Name() string { return PodResourcesSourceName }

// Collect lists the containers holding NVIDIA devices. A missing socket (no
// kubelet on this host, or the directory not mounted into the agent) is
// reported as unavailable.
func (p *PodResourcesSource) Collect(ctx context.Context) (collector.Apply, error) {
	if _, err := os.Stat(p.socket); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: kubelet pod-resources socket %s not found", collector.ErrUnavailable, p.socket)
		}
		return nil, fmt.Errorf("stat kubelet pod-resources socket: %w", err)
	}
	client, err := p.client()
	if err != nil {
		return nil, err
	}
	// ListPodResourcesRequest has no fields: its encoding is empty.
	body, err := client.call(ctx, listMethod, nil)
	if err != nil {
		if errors.Is(err, errUnimplemented) {
			return nil, fmt.Errorf("%w: kubelet at %s does not serve pod-resources v1", collector.ErrUnavailable, p.socket)
		}
		return nil, fmt.Errorf("list pod resources from %s: %w", p.socket, err)
	}
	allocs, err := gpuAllocations(body)
	if err != nil {
		return nil, fmt.Errorf("decode pod resources from %s: %w", p.socket, err)
	}
	return func(r *model.NodeReport) { attachPods(r.Node.GPUs, allocs, p.logger) }, nil
}

// Close closes the connection to the kubelet.
func (p *PodResourcesSource) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	p.conn.close()
	p.conn = nil
	return nil
}

// client opens the connection once; it is dialled again on the next call
// when the kubelet restarts and recreates the socket.
func (p *PodResourcesSource) client() (*unaryClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		abs, err := filepath.Abs(p.socket)
		if err != nil {
			return nil, fmt.Errorf("resolve kubelet pod-resources socket %s: %w", p.socket, err)
		}
		p.conn = newUnaryClient(abs, maxPodResourcesMessage)
	}
	return p.conn, nil
}

// allocation is one NVIDIA device assigned to one container.
type allocation struct {
	namespace, pod, container string
	deviceID                  string
}

// gpuAllocations keeps the NVIDIA devices of the kubelet's answer, an
// encoded ListPodResourcesResponse.
func gpuAllocations(body []byte) ([]allocation, error) {
	resp, err := decodeListResponse(body)
	if err != nil {
		return nil, err
	}
	var out []allocation
	for _, pr := range resp {
		for _, c := range pr.containers {
			for _, dev := range c.devices {
				if !strings.HasPrefix(dev.resourceName, nvidiaResourcePrefix) {
					continue
				}
				for _, id := range dev.deviceIDs {
					out = append(out, allocation{namespace: pr.namespace, pod: pr.name, container: c.name, deviceID: id})
				}
			}
		}
	}
	return out, nil
}

// attachPods adds each allocation to the GPU its device ID names. IDs that
// match no GPU (the gpu source failed, or the device plugin names devices in
// a way not known here) are logged at debug: attribution is best effort.
func attachPods(gpus []model.GPUMetrics, allocs []allocation, logger *slog.Logger) {
	if len(allocs) == 0 {
		return
	}
	byID := make(map[string]int, len(gpus))
	for i, g := range gpus {
		if g.UUID != "" {
			byID[g.UUID] = i
		}
		for _, mig := range g.MIGDevices {
			byID[mig] = i
		}
	}
	for _, a := range allocs {
		i, ok := matchDevice(a.deviceID, gpus, byID)
		if !ok {
			logger.Debug("pod's nvidia device matches no gpu on this node",
				"namespace", a.namespace, "pod", a.pod, "container", a.container, "deviceId", a.deviceID)
			continue
		}
		gpus[i].Pods = append(gpus[i].Pods, model.GPUPodRef{
			Namespace: a.namespace,
			Pod:       a.pod,
			Container: a.container,
			DeviceID:  a.deviceID,
		})
	}
}

// matchDevice finds the GPU a device plugin's device ID stands for. The
// forms, as NVIDIA's device plugin writes them:
//
//	GPU-<uuid>                  a whole GPU
//	MIG-<uuid>                  a MIG device (driver R470 and later)
//	MIG-GPU-<uuid>/<gi>/<ci>    a MIG device (older drivers)
//	<id>::<n>                   replica n of a time-sliced or MPS-shared device
//	<index>, <index>:<mig>      with --device-id-strategy=index
func matchDevice(id string, gpus []model.GPUMetrics, byID map[string]int) (int, bool) {
	if base, _, ok := strings.Cut(id, "::"); ok {
		id = base
	}
	if rest, ok := strings.CutPrefix(id, "MIG-GPU-"); ok {
		parent, _, _ := strings.Cut(rest, "/")
		id = "GPU-" + parent
	}
	if i, ok := byID[id]; ok {
		return i, true
	}
	indexPart, _, _ := strings.Cut(id, ":")
	n, err := strconv.Atoi(indexPart)
	if err != nil {
		return 0, false
	}
	for i, g := range gpus {
		if g.Index == n {
			return i, true
		}
	}
	return 0, false
}
