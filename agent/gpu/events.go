package gpu

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// maxPendingEvents bounds the queue between two PendingEvents calls, so that
// a GPU flooding XIDs while nobody drains cannot grow memory without limit.
const maxPendingEvents = 1024

// noInstance is the GPU or compute instance id NVML gives an event that did
// not come from a MIG device.
const noInstance = 0xFFFFFFFF

// xidInfo describes the XIDs worth naming. Critical marks those that NVIDIA's
// XID catalogue resolves with a GPU reset (or node reboot): the GPU is not
// usable until then. Any other XID is a warning, most often an application
// fault that the GPU survives.
var xidInfo = map[uint64]struct {
	critical bool
	what     string
}{
	13:  {false, "graphics engine exception"},
	31:  {false, "GPU memory page fault"},
	43:  {false, "GPU stopped processing"},
	45:  {false, "preemptive cleanup"},
	48:  {true, "double-bit ECC error"},
	63:  {true, "ECC page retirement or row remapping recording event"},
	64:  {true, "ECC page retirement or row remapping recording failure"},
	74:  {true, "NVLink error"},
	79:  {true, "GPU has fallen off the bus"},
	92:  {false, "high single-bit ECC error rate"},
	94:  {true, "contained ECC error"},
	95:  {true, "uncontained ECC error"},
	119: {true, "GSP RPC timeout"},
	120: {true, "GSP error"},
}

// PendingEvents returns the XID and ECC events seen since the last call, in
// the order they happened, and empties the queue. The agent publishes them.
func (s *Source) PendingEvents() []model.Event {
	return s.events.drain()
}

// eventQueue is a bounded FIFO of events that drops the oldest when full.
type eventQueue struct {
	mu     sync.Mutex
	events []model.Event
}

func (q *eventQueue) push(ev model.Event) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.events) >= maxPendingEvents {
		q.events = append(q.events[:0], q.events[1:]...)
		dropped = true
	}
	q.events = append(q.events, ev)
	return dropped
}

func (q *eventQueue) drain() []model.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.events
	q.events = nil
	return out
}

func (s *Source) queue(ev model.Event) {
	if s.events.push(ev) {
		s.logger.Warn("gpu event queue full, oldest event dropped", "type", ev.Type, "gpuSource", ev.Source)
	}
}

// checkECC queues an event when the GPU's volatile uncorrected ECC count has
// risen since the previous cycle. The first reading only sets the baseline;
// a count that falls (the driver was reloaded) sets it again.
func (s *Source) checkECC(d *device, current *uint64) {
	if current == nil {
		return
	}
	prev := d.lastUncorrected
	d.lastUncorrected = current
	if prev == nil || *current <= *prev {
		return
	}
	s.queue(model.Event{
		Type:      model.EventGPUECC,
		Severity:  model.SeverityCritical,
		Timestamp: s.now().UTC(),
		Node:      s.opts.NodeName,
		Source:    gpuSource(d.index),
		Message: fmt.Sprintf("GPU %d (%s): volatile uncorrected ECC errors rose from %d to %d",
			d.index, d.uuid, *prev, *current),
		Details: map[string]string{
			"uuid":     d.uuid,
			"previous": strconv.FormatUint(*prev, 10),
			"current":  strconv.FormatUint(*current, 10),
		},
	})
}

func gpuSource(index int) string { return "gpu:" + strconv.Itoa(index) }

// xidWatch is the goroutine waiting on the NVML event set.
type xidWatch struct {
	set    nvml.EventSet
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the goroutine, then frees the set it was waiting on.
func (w *xidWatch) stop() error {
	w.cancel()
	<-w.done
	if ret := w.set.Free(); ret != nvml.SUCCESS {
		return fmt.Errorf("free nvml event set: %w", nvmlError("nvmlEventSetFree", ret))
	}
	return nil
}

// xidDevice is what the watch goroutine knows of a GPU, copied so that it
// shares nothing with the collection cycle.
type xidDevice struct {
	handle nvmlDevice
	index  int
	uuid   string
	// xids is the device's XID count, shared with the collection cycle.
	xids *atomic.Uint64
}

// watchXID registers every GPU that supports it for XID critical errors and
// starts the goroutine that turns them into events; nil when no GPU could be
// registered. Called with NVML initialized.
func (s *Source) watchXID(devices []*device) *xidWatch {
	set, ret := s.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		s.logger.Debug("no nvml event set, xid errors not watched", "err", nvmlError("nvmlEventSetCreate", ret))
		return nil
	}
	var watched []xidDevice
	for _, d := range devices {
		if d.handle == nil {
			continue
		}
		supported, ret := d.handle.GetSupportedEventTypes()
		if ret != nvml.SUCCESS {
			s.logger.Debug("gpu event types unknown, xid errors not watched", "gpu", d.index, "err", nvmlError("nvmlDeviceGetSupportedEventTypes", ret))
			continue
		}
		if supported&nvml.EventTypeXidCriticalError == 0 {
			s.logger.Debug("gpu does not report xid events", "gpu", d.index)
			continue
		}
		if ret := d.handle.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
			// Not supported is normal on some boards and in containers
			// without the needed device nodes.
			level := s.logger.Warn
			if ret == nvml.ERROR_NOT_SUPPORTED {
				level = s.logger.Debug
			}
			level("register gpu for xid events", "gpu", d.index, "err", nvmlError("nvmlDeviceRegisterEvents", ret))
			continue
		}
		watched = append(watched, xidDevice{handle: d.handle, index: d.index, uuid: d.uuid, xids: &d.xids})
	}
	if len(watched) == 0 {
		if ret := set.Free(); ret != nvml.SUCCESS {
			s.logger.Debug("free unused nvml event set", "err", nvmlError("nvmlEventSetFree", ret))
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &xidWatch{set: set, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s.waitXID(ctx, set, watched)
	}()
	return w
}

// waitXID waits on the set in short slices until ctx ends: an NVML wait
// cannot be interrupted, so the slice bounds how long Close waits.
func (s *Source) waitXID(ctx context.Context, set nvml.EventSet, devices []xidDevice) {
	timeoutMs := uint32(s.eventWait / time.Millisecond)
	for ctx.Err() == nil {
		data, ret := set.Wait(timeoutMs)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			s.logger.Debug("wait for gpu events", "err", nvmlError("nvmlEventSetWait", ret))
			// A set that fails at once would otherwise spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.eventWait):
			}
			continue
		}
		if data.EventType&nvml.EventTypeXidCriticalError == 0 {
			continue
		}
		s.queue(s.xidEvent(data, devices))
	}
}

// xidEvent turns an XID into an event about the GPU that raised it.
func (s *Source) xidEvent(data nvml.EventData, devices []xidDevice) model.Event {
	xid := data.EventData
	index, uuid := -1, ""
	var count *atomic.Uint64
	for _, d := range devices {
		if data.Device != nil && data.Device == d.handle {
			index, uuid, count = d.index, d.uuid, d.xids
			break
		}
	}
	if index < 0 && data.Device != nil {
		// A handle that is not one of ours (seen with some drivers for
		// MIG devices): its UUID still names the GPU.
		if u, ret := data.Device.GetUUID(); ret == nvml.SUCCESS {
			uuid = u
			for _, d := range devices {
				if d.uuid == u {
					index, count = d.index, d.xids
				}
			}
		}
	}
	if count != nil {
		count.Add(1)
	}

	info, known := xidInfo[xid]
	severity := model.SeverityWarning
	if info.critical {
		severity = model.SeverityCritical
	}
	what := "XID " + strconv.FormatUint(xid, 10)
	if known {
		what += ": " + info.what
	}
	if info.critical {
		what += "; the GPU needs a reset"
	}
	source, name := "gpu", "GPU"
	if index >= 0 {
		source, name = gpuSource(index), "GPU "+strconv.Itoa(index)
	}
	details := map[string]string{"uuid": uuid, "xid": strconv.FormatUint(xid, 10)}
	if index >= 0 {
		details["index"] = strconv.Itoa(index)
	}
	if data.GpuInstanceId != noInstance {
		details["gpuInstanceId"] = strconv.FormatUint(uint64(data.GpuInstanceId), 10)
		details["computeInstanceId"] = strconv.FormatUint(uint64(data.ComputeInstanceId), 10)
	}
	return model.Event{
		Type:      model.EventGPUXid,
		Severity:  severity,
		Timestamp: s.now().UTC(),
		Node:      s.opts.NodeName,
		Source:    source,
		Message:   fmt.Sprintf("%s (%s) reported %s", name, uuid, what),
		Details:   details,
	}
}
