// Package gpu reads the node's NVIDIA GPUs through NVML (utilization, memory,
// temperature, power, ECC counters, MIG devices, XID errors) and attributes
// them to pods through the kubelet's pod-resources API. Each is a
// collector.Source: "gpu" and "podresources".
//
// NVML is loaded with dlopen when the gpu source first collects. A node
// without the driver or library is not an error: the source reports itself
// unavailable and tries again every few minutes, since the driver may load
// after the agent starts.
package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// SourceName is the gpu source's name in reports.
const SourceName = "gpu"

// DefaultInitRetryInterval is how long the gpu source waits after a failed
// NVML Init before trying again.
const DefaultInitRetryInterval = 5 * time.Minute

// defaultEventWait bounds each wait on the XID event set, and so how long
// Close waits for the event goroutine to notice it should stop.
const defaultEventWait = time.Second

// Options configure the gpu Source.
type Options struct {
	// NodeName fills the Node field of the events the source queues.
	NodeName string
	// InitRetryInterval is the least time between two NVML Init attempts
	// after one failed; DefaultInitRetryInterval when zero.
	InitRetryInterval time.Duration
}

// Source reads the node's NVIDIA GPUs through NVML. It implements
// collector.Source; PendingEvents hands out the XID and ECC events it saw,
// and Close releases NVML.
type Source struct {
	lib       nvmlLib
	logger    *slog.Logger
	opts      Options
	now       func() time.Time
	eventWait time.Duration

	// cycle serializes Collect and Close. It is a channel rather than a
	// mutex so that a Collect whose deadline passes while an earlier cycle
	// is stuck inside NVML gives up instead of queuing behind it.
	cycle chan struct{}

	// Held with cycle.
	closed   bool
	ready    bool      // Init succeeded and Shutdown is owed
	initErr  error     // why the last Init attempt failed
	nextInit time.Time // no Init attempt before this
	hasMemV2 bool
	hasMIG   bool
	devices  []*device
	xid      *xidWatch

	events eventQueue
}

// device is one GPU found at Init. Its identity is read once: NVML handles,
// indexes, UUIDs and names do not change while the library stays
// initialized.
type device struct {
	index  int
	handle nvmlDevice // nil when NVML did not give one
	uuid   string
	name   string
	// memV1 is set once the v2 memory call answered not supported, so the
	// v1 call is used from then on.
	memV1 bool
	// lastUncorrected is the previous cycle's volatile uncorrected ECC
	// count, to see it rise.
	lastUncorrected *uint64
	// xids counts the XID errors seen on this GPU; the watch goroutine
	// adds, the cycle reads.
	xids atomic.Uint64
	// lastFieldErrs is what the previous cycle logged about failing
	// readings, so that a persistent failure is logged once, not every
	// cycle.
	lastFieldErrs string
}

var _ collector.Source = (*Source)(nil)

// NewSource returns the gpu source on the system's NVML library
// (libnvidia-ml.so.1). Nothing is loaded until the first Collect.
func NewSource(logger *slog.Logger, opts Options) *Source {
	return newSource(newNVML(), logger, opts)
}

func newSource(lib nvmlLib, logger *slog.Logger, opts Options) *Source {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.InitRetryInterval <= 0 {
		opts.InitRetryInterval = DefaultInitRetryInterval
	}
	return &Source{
		lib:       lib,
		logger:    logger.With("source", SourceName),
		opts:      opts,
		now:       time.Now,
		eventWait: defaultEventWait,
		cycle:     make(chan struct{}, 1),
	}
}

// Name returns "gpu".
func (s *Source) Name() string { return SourceName }

// Collect reads every GPU. Without NVML it returns an error wrapping
// collector.ErrUnavailable and an Apply that reports no GPUs. A reading that
// fails on one GPU leaves only that field empty; the error is non-nil only
// when a whole GPU could not be read, and the Apply then still carries every
// GPU.
func (s *Source) Collect(ctx context.Context) (collector.Apply, error) {
	select {
	case s.cycle <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the previous gpu cycle: %w", ctx.Err())
	}
	defer func() { <-s.cycle }()

	if s.closed {
		return applyNoGPUs, fmt.Errorf("%w: gpu source closed", collector.ErrUnavailable)
	}
	if err := s.ensureInit(); err != nil {
		return applyNoGPUs, err
	}

	gpus := make([]model.GPUMetrics, len(s.devices))
	// One backing array for every GPU's two ECC counters instead of two
	// allocations per GPU.
	ecc := make([]uint64, 2*len(s.devices))
	var errs []error
	for i, d := range s.devices {
		// NVML calls cannot be interrupted, but a passed deadline can stop
		// the cycle between GPUs.
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("read gpus %d to %d: %w", i, len(s.devices)-1, err))
			for j := i; j < len(s.devices); j++ {
				gpus[j] = s.devices[j].identity()
			}
			break
		}
		g, err := s.readDevice(d, ecc[2*i:2*i+2:2*i+2])
		gpus[i] = g
		if err != nil {
			errs = append(errs, err)
		}
		s.checkECC(d, g.ECCUncorrected)
	}
	return applyGPUs(gpus), errors.Join(errs...)
}

// applyNoGPUs reports a node without usable GPUs.
func applyNoGPUs(r *model.NodeReport) {
	r.Node.GPUCount = 0
	r.Node.GPUModels = nil
	r.Node.GPUUsage = nil
	r.Node.GPUMemoryTotal = nil
	r.Node.GPUMemoryUsed = nil
	r.Node.GPUs = nil
}

// applyGPUs fills the seed's parallel slices, in GPU index order, and the
// per-GPU detail.
func applyGPUs(gpus []model.GPUMetrics) collector.Apply {
	models := make([]string, len(gpus))
	usage := make([]float64, len(gpus))
	memTotal := make([]int64, len(gpus))
	memUsed := make([]int64, len(gpus))
	for i, g := range gpus {
		models[i] = g.Model
		usage[i] = g.UtilizationRate
		memTotal[i] = g.MemoryTotal
		memUsed[i] = g.MemoryUsed
	}
	return func(r *model.NodeReport) {
		r.Node.GPUCount = len(gpus)
		r.Node.GPUModels = models
		r.Node.GPUUsage = usage
		r.Node.GPUMemoryTotal = memTotal
		r.Node.GPUMemoryUsed = memUsed
		r.Node.GPUs = gpus
	}
}

// ensureInit initializes NVML unless it is ready, or a failed attempt was
// too recent to try again. Called with cycle held.
func (s *Source) ensureInit() error {
	if s.ready {
		return nil
	}
	now := s.now()
	if s.initErr != nil && now.Before(s.nextInit) {
		return s.initErr
	}
	if err := s.init(); err != nil {
		if s.initErr == nil || s.initErr.Error() != err.Error() {
			level := slog.LevelWarn
			if errors.Is(err, collector.ErrUnavailable) {
				level = slog.LevelDebug
			}
			s.logger.Log(context.Background(), level, "nvidia gpus not readable", "err", err, "retryIn", s.opts.InitRetryInterval)
		}
		s.initErr = err
		s.nextInit = now.Add(s.opts.InitRetryInterval)
		return err
	}
	s.ready = true
	s.initErr = nil
	s.logger.Info("nvml initialized", "gpus", len(s.devices), "xidEvents", s.xid != nil)
	return nil
}

// init loads NVML and finds the GPUs. After a failed Init it calls nothing
// else in NVML: doing so can kill the process.
func (s *Source) init() error {
	switch ret := s.lib.Init(); ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return fmt.Errorf("%w: NVIDIA management library libnvidia-ml.so.1 not found (no NVIDIA driver on this node)", collector.ErrUnavailable)
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return fmt.Errorf("%w: NVIDIA driver not loaded", collector.ErrUnavailable)
	default:
		return fmt.Errorf("initialize nvml: %w", nvmlError("nvmlInit", ret))
	}

	// From here NVML is initialized, and every failure shuts it down again
	// so that the next attempt starts clean.
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		s.shutdown()
		return fmt.Errorf("count nvidia gpus: %w", nvmlError("nvmlDeviceGetCount", ret))
	}
	if n == 0 {
		s.shutdown()
		return fmt.Errorf("%w: NVIDIA driver loaded but no GPUs found", collector.ErrUnavailable)
	}

	ext := s.lib.Extensions()
	s.hasMemV2 = ext.LookupSymbol(symMemoryInfoV2) == nil
	s.hasMIG = ext.LookupSymbol(symMigMode) == nil

	s.devices = make([]*device, n)
	for i := range n {
		d := &device{index: i}
		s.devices[i] = d
		h, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			// Reported as a failed GPU every cycle rather than hidden, so
			// that the GPU count still matches the hardware.
			s.logger.Warn("no nvml handle for gpu", "gpu", i, "err", nvmlError("nvmlDeviceGetHandleByIndex", ret))
			continue
		}
		d.handle = h
		d.readIdentity()
	}
	s.xid = s.watchXID(s.devices)
	return nil
}

// shutdown releases NVML after a successful Init.
func (s *Source) shutdown() {
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		s.logger.Warn("shut down nvml", "err", nvmlError("nvmlShutdown", ret))
	}
}

// Close stops the XID watch and shuts NVML down. It waits for a running
// Collect to finish. Collect after Close reports the source unavailable.
func (s *Source) Close() error {
	s.cycle <- struct{}{}
	defer func() { <-s.cycle }()
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.ready {
		return nil
	}
	s.ready = false
	var errs []error
	if s.xid != nil {
		if err := s.xid.stop(); err != nil {
			errs = append(errs, err)
		}
		s.xid = nil
	}
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		errs = append(errs, fmt.Errorf("shut down nvml: %w", nvmlError("nvmlShutdown", ret)))
	}
	return errors.Join(errs...)
}

// readIdentity reads what names the GPU; what fails is tried again next
// cycle.
func (d *device) readIdentity() {
	if d.handle == nil {
		return
	}
	if d.uuid == "" {
		if uuid, ret := d.handle.GetUUID(); ret == nvml.SUCCESS {
			d.uuid = uuid
		}
	}
	if d.name == "" {
		if name, ret := d.handle.GetName(); ret == nvml.SUCCESS {
			d.name = name
		}
	}
}

// identity is the GPU's entry with nothing read this cycle but its XID
// count, which the event watch keeps.
func (d *device) identity() model.GPUMetrics {
	return model.GPUMetrics{Index: d.index, UUID: d.uuid, Model: d.name, XIDErrors: d.xids.Load()}
}

// readings collects how one GPU's calls went in one cycle.
type readings struct {
	succeeded int
	lost      bool
	errs      []error
}

// ok records a call's outcome and reports whether its value is usable. Not
// supported is not a failure: the feature is absent and the field stays
// empty.
func (r *readings) ok(what string, ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS:
		r.succeeded++
		return true
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		return false
	case nvml.ERROR_GPU_IS_LOST:
		r.lost = true
	}
	r.errs = append(r.errs, nvmlError(what, ret))
	return false
}

// readDevice reads one GPU. The error is non-nil only when the GPU as a
// whole could not be read (no handle, fallen off the bus, every call
// failing); a single failing reading is logged and leaves its field empty.
// eccSlots holds the corrected and uncorrected counts that g's ECC pointers
// point to.
func (s *Source) readDevice(d *device, eccSlots []uint64) (model.GPUMetrics, error) {
	if d.handle == nil {
		h, ret := s.lib.DeviceGetHandleByIndex(d.index)
		if ret != nvml.SUCCESS {
			return d.identity(), fmt.Errorf("read gpu %d: %w", d.index, nvmlError("get device handle", ret))
		}
		d.handle = h
	}
	d.readIdentity()
	g := d.identity()
	h := d.handle
	var r readings

	if u, ret := h.GetUtilizationRates(); r.ok("read utilization", ret) {
		g.UtilizationRate = float64(u.Gpu)
		g.MemoryUtilization = float64(u.Memory)
	}
	s.readMemory(d, &g, &r)
	if t, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); r.ok("read temperature", ret) {
		g.TemperatureC = int(t)
	}
	if mw, ret := h.GetPowerUsage(); r.ok("read power usage", ret) {
		g.PowerWatts = float64(mw) / 1000
	}
	if mw, ret := h.GetEnforcedPowerLimit(); r.ok("read enforced power limit", ret) {
		g.PowerLimitWatts = float64(mw) / 1000
	}
	g.ECCCorrected = readECC(h, nvml.MEMORY_ERROR_TYPE_CORRECTED, "read volatile corrected ecc errors", &r, &eccSlots[0])
	g.ECCUncorrected = readECC(h, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, "read volatile uncorrected ecc errors", &r, &eccSlots[1])
	if s.hasMIG {
		g.MIGDevices = readMIG(h, &r)
	}

	if len(r.errs) == 0 {
		if d.lastFieldErrs != "" {
			s.logger.Info("gpu readings recovered", "gpu", d.index, "uuid", d.uuid)
			d.lastFieldErrs = ""
		}
		return g, nil
	}
	joined := errors.Join(r.errs...)
	if r.lost || r.succeeded == 0 {
		d.lastFieldErrs = ""
		return g, fmt.Errorf("read gpu %d (%s): %w", d.index, d.uuid, joined)
	}
	if msg := joined.Error(); msg != d.lastFieldErrs {
		s.logger.Warn("some gpu readings failed", "gpu", d.index, "uuid", d.uuid, "err", joined)
		d.lastFieldErrs = msg
	}
	return g, nil
}

// readMemory prefers the v2 call, whose used memory excludes what the driver
// reserves, as nvidia-smi shows it; drivers before R510 only have v1.
func (s *Source) readMemory(d *device, g *model.GPUMetrics, r *readings) {
	var total, used uint64
	read := false
	if s.hasMemV2 && !d.memV1 {
		m, ret := d.handle.GetMemoryInfo_v2()
		switch ret {
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
			d.memV1 = true
		default:
			if r.ok("read memory info v2", ret) {
				total, used, read = m.Total, m.Used, true
			} else {
				return
			}
		}
	}
	if !read {
		m, ret := d.handle.GetMemoryInfo()
		if !r.ok("read memory info", ret) {
			return
		}
		total, used = m.Total, m.Used
	}
	g.MemoryTotal = int64(total)
	g.MemoryUsed = int64(used)
	if total > 0 {
		g.MemoryUsageRate = float64(used) / float64(total) * 100
	}
}

// readECC reads one volatile ECC total into slot; nil when ECC is off, not
// supported or failed.
func readECC(h nvmlDevice, typ nvml.MemoryErrorType, what string, r *readings, slot *uint64) *uint64 {
	v, ret := h.GetTotalEccErrors(typ, nvml.VOLATILE_ECC)
	if !r.ok(what, ret) {
		return nil
	}
	*slot = v
	return slot
}

// readMIG lists the UUIDs of the MIG devices carved from the GPU, so that
// pod-resources allocations of MIG devices can be matched to it.
func readMIG(h nvmlDevice, r *readings) []string {
	current, _, ret := h.GetMigMode()
	if !r.ok("read mig mode", ret) || current != nvml.DEVICE_MIG_ENABLE {
		return nil
	}
	n, ret := h.GetMaxMigDeviceCount()
	if !r.ok("read mig device count", ret) {
		return nil
	}
	var out []string
	for i := range n {
		mig, ret := h.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND {
			continue // an empty slot: fewer MIG devices than the maximum
		}
		if !r.ok("get mig device handle", ret) {
			continue
		}
		if uuid, ret := mig.GetUUID(); r.ok("read mig device uuid", ret) {
			out = append(out, uuid)
		}
	}
	return out
}
