package gpu

import (
	"context"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// eventSet is a mock NVML event set fed through a channel; Wait blocks like
// the real one until an event arrives or its timeout passes.
func eventSet(events <-chan nvml.EventData) *mock.EventSet {
	return &mock.EventSet{
		WaitFunc: func(timeoutMs uint32) (nvml.EventData, nvml.Return) {
			select {
			case ev := <-events:
				return ev, nvml.SUCCESS
			case <-time.After(time.Duration(timeoutMs) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

// withXIDEvents lets every GPU but the last register for XID events.
func withXIDEvents(srv *server.Server, set nvml.EventSet) {
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	for i := range srv.Devices {
		dev := mockDevice(srv, i)
		supported := uint64(nvml.EventTypeXidCriticalError | nvml.EventTypeSingleBitEccError)
		if i == len(srv.Devices)-1 {
			supported = nvml.EventTypeSingleBitEccError
		}
		dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return supported, nvml.SUCCESS }
		dev.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
}

func TestXIDEvent(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	events := make(chan nvml.EventData, 1)
	set := eventSet(events)
	withXIDEvents(srv, set)
	s := newSource(srv, testLogger(t), Options{NodeName: "gpu-node-1"})
	s.eventWait = 10 * time.Millisecond
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	s.now = func() time.Time { return now }

	_, err := collect(t, s)
	require.NoError(t, err)
	for i, dev := range srv.Devices[:7] {
		calls := dev.(*server.Device).RegisterEventsCalls()
		require.Len(t, calls, 1, "gpu %d", i)
		assert.Equal(t, uint64(nvml.EventTypeXidCriticalError), calls[0].V)
	}
	assert.Empty(t, mockDevice(srv, 7).RegisterEventsCalls(), "a GPU without xid events is skipped")

	events <- nvml.EventData{
		Device:            srv.Devices[3],
		EventType:         nvml.EventTypeXidCriticalError,
		EventData:         79,
		GpuInstanceId:     noInstance,
		ComputeInstanceId: noInstance,
	}
	var got []model.Event
	require.Eventually(t, func() bool {
		got = append(got, s.PendingEvents()...)
		return len(got) > 0
	}, 10*time.Second, 5*time.Millisecond)

	require.Len(t, got, 1)
	assert.Equal(t, model.Event{
		Type:      model.EventGPUXid,
		Severity:  model.SeverityCritical,
		Timestamp: now.UTC(),
		Node:      "gpu-node-1",
		Source:    "gpu:3",
		Message:   "GPU 3 (" + testUUID(3) + ") reported XID 79: GPU has fallen off the bus; the GPU needs a reset",
		Details:   map[string]string{"uuid": testUUID(3), "xid": "79", "index": "3"},
	}, got[0])
	assert.Empty(t, s.PendingEvents(), "drained")

	// The next report counts the XID on the GPU that raised it only.
	rep, err := collect(t, s)
	require.NoError(t, err)
	for _, g := range rep.Node.GPUs {
		want := uint64(0)
		if g.Index == 3 {
			want = 1
		}
		assert.Equal(t, want, g.XIDErrors, "gpu %d", g.Index)
	}

	require.NoError(t, s.Close())
	assert.Len(t, set.FreeCalls(), 1)
	assert.Len(t, srv.ShutdownCalls(), 1)
}

func TestXIDSeverity(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	s := newSource(srv, testLogger(t), Options{})
	devices := []xidDevice{{handle: srv.Devices[0], index: 0, uuid: testUUID(0)}}
	tests := []struct {
		xid          uint64
		wantSeverity string
	}{
		{48, model.SeverityCritical},
		{63, model.SeverityCritical},
		{64, model.SeverityCritical},
		{74, model.SeverityCritical},
		{79, model.SeverityCritical},
		{94, model.SeverityCritical},
		{95, model.SeverityCritical},
		{13, model.SeverityWarning},
		{31, model.SeverityWarning},
		{43, model.SeverityWarning},
		{1234, model.SeverityWarning},
	}
	for _, tt := range tests {
		ev := s.xidEvent(nvml.EventData{Device: srv.Devices[0], EventData: tt.xid, GpuInstanceId: noInstance}, devices)
		assert.Equal(t, tt.wantSeverity, ev.Severity, "xid %d", tt.xid)
		assert.Equal(t, "gpu:0", ev.Source)
	}

	// An XID from a MIG device names its instance.
	ev := s.xidEvent(nvml.EventData{Device: srv.Devices[0], EventData: 13, GpuInstanceId: 2, ComputeInstanceId: 0}, devices)
	assert.Equal(t, "2", ev.Details["gpuInstanceId"])
	assert.Equal(t, "0", ev.Details["computeInstanceId"])

	// A handle that is not one of the registered ones is matched by UUID.
	ev = s.xidEvent(nvml.EventData{Device: &mock.Device{GetUUIDFunc: func() (string, nvml.Return) { return testUUID(0), nvml.SUCCESS }}, EventData: 79, GpuInstanceId: noInstance}, devices)
	assert.Equal(t, "gpu:0", ev.Source)
}

func TestEventSetUnsupported(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	s := newSource(srv, testLogger(t), Options{})
	_, err := collect(t, s)
	require.NoError(t, err, "no xid events is not an error")
	assert.Nil(t, s.xid)
	require.NoError(t, s.Close())
}

func TestECCEvent(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	var uncorrected uint64
	mockDevice(srv, 2).GetTotalEccErrorsFunc = func(typ nvml.MemoryErrorType, _ nvml.EccCounterType) (uint64, nvml.Return) {
		if typ == nvml.MEMORY_ERROR_TYPE_UNCORRECTED {
			return uncorrected, nvml.SUCCESS
		}
		return 0, nvml.SUCCESS
	}
	s := newSource(srv, testLogger(t), Options{NodeName: "gpu-node-1"})
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	s.now = func() time.Time { return now }
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx := context.Background()

	cycle := func() {
		t.Helper()
		_, err := s.Collect(ctx)
		require.NoError(t, err)
	}
	cycle()
	cycle()
	assert.Empty(t, s.PendingEvents(), "an unchanged count raises nothing")

	uncorrected = 3
	cycle()
	got := s.PendingEvents()
	require.Len(t, got, 1)
	assert.Equal(t, model.Event{
		Type:      model.EventGPUECC,
		Severity:  model.SeverityCritical,
		Timestamp: now,
		Node:      "gpu-node-1",
		Source:    "gpu:2",
		Message:   "GPU 2 (" + testUUID(2) + "): volatile uncorrected ECC errors rose from 0 to 3",
		Details:   map[string]string{"uuid": testUUID(2), "previous": "0", "current": "3"},
	}, got[0])

	cycle()
	assert.Empty(t, s.PendingEvents())
}

func TestEventQueueBounded(t *testing.T) {
	var q eventQueue
	for i := range maxPendingEvents + 5 {
		q.push(model.Event{Message: string(rune('a' + i%26))})
	}
	got := q.drain()
	require.Len(t, got, maxPendingEvents)
	assert.Equal(t, string(rune('a'+5%26)), got[0].Message, "the oldest are dropped")
	assert.Empty(t, q.drain())
}
