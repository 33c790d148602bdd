package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const mib = 1 << 20

// gpuValues are what a mock GPU answers; each GPU gets its own so that a
// reading put on the wrong GPU shows.
type gpuValues struct {
	util, memUtil          uint32
	total, reserved, used  uint64
	tempC                  uint32
	powerMW, limitMW       uint32
	corrected, uncorrected uint64
}

func valuesFor(i int) gpuValues {
	return gpuValues{
		util:        uint32(10 + i),
		memUtil:     uint32(20 + i),
		total:       40960 * mib,
		reserved:    512 * mib,
		used:        uint64(1024*(i+1)) * mib,
		tempC:       uint32(40 + i),
		powerMW:     uint32(100_000 + 1_500*i),
		limitMW:     400_000,
		corrected:   uint64(i),
		uncorrected: 0,
	}
}

func testUUID(i int) string { return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i) }

// newMockServer prepares a go-nvml mock server: the server implements
// identity and memory v1; the readings it leaves unset (they panic) are set
// here from valuesFor, and UUIDs are made predictable. Events are off unless
// a test turns them on.
func newMockServer(srv *server.Server) *server.Server {
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.UUID = testUUID(i)
		setValues(dev, valuesFor(i))
	}
	return srv
}

func setValues(dev *server.Device, v gpuValues) {
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: v.util, Memory: v.memUtil}, nvml.SUCCESS
	}
	dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: v.total, Reserved: v.reserved, Used: v.used, Free: v.total - v.reserved - v.used}, nvml.SUCCESS
	}
	dev.GetTemperatureFunc = func(sensor nvml.TemperatureSensors) (uint32, nvml.Return) {
		if sensor != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return v.tempC, nvml.SUCCESS
	}
	dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return v.powerMW, nvml.SUCCESS }
	dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return v.limitMW, nvml.SUCCESS }
	dev.GetTotalEccErrorsFunc = func(typ nvml.MemoryErrorType, counter nvml.EccCounterType) (uint64, nvml.Return) {
		if counter != nvml.VOLATILE_ECC {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		if typ == nvml.MEMORY_ERROR_TYPE_UNCORRECTED {
			return v.uncorrected, nvml.SUCCESS
		}
		return v.corrected, nvml.SUCCESS
	}
}

func mockDevice(srv *server.Server, i int) *server.Device { return srv.Devices[i].(*server.Device) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// collect runs one cycle and applies it to a fresh report.
func collect(t *testing.T, s collector.Source) (model.NodeReport, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	apply, err := s.Collect(ctx)
	var r model.NodeReport
	if apply != nil {
		apply(&r)
	}
	return r, err
}

func u64(v uint64) *uint64 { return &v }

func TestCollectMockServers(t *testing.T) {
	tests := []struct {
		name      string
		srv       *server.Server
		wantModel string
	}{
		{"dgxa100", dgxa100.New(), "Mock NVIDIA A100-SXM4-40GB"},
		{"dgxh100", dgxh100.New(), "NVIDIA H100 80GB HBM3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newMockServer(tt.srv)
			s := newSource(srv, testLogger(t), Options{})
			t.Cleanup(func() { require.NoError(t, s.Close()) })

			r, err := collect(t, s)
			require.NoError(t, err)

			n := r.Node
			require.Equal(t, 8, n.GPUCount)
			require.Len(t, n.GPUs, 8)
			for i, g := range n.GPUs {
				v := valuesFor(i)
				used := int64(v.used)
				want := model.GPUMetrics{
					Index:             i,
					UUID:              testUUID(i),
					Model:             tt.wantModel,
					UtilizationRate:   float64(10 + i),
					MemoryUtilization: float64(20 + i),
					MemoryTotal:       40960 * mib,
					MemoryUsed:        used,
					MemoryUsageRate:   float64(used) / float64(40960*mib) * 100,
					TemperatureC:      40 + i,
					PowerWatts:        100 + 1.5*float64(i),
					PowerLimitWatts:   400,
					ECCCorrected:      u64(uint64(i)),
					ECCUncorrected:    u64(0),
				}
				assert.Equal(t, want, g, "gpu %d", i)
				assert.Equal(t, tt.wantModel, n.GPUModels[i])
				assert.Equal(t, float64(10+i), n.GPUUsage[i])
				assert.Equal(t, int64(40960*mib), n.GPUMemoryTotal[i])
				assert.Equal(t, used, n.GPUMemoryUsed[i])
			}
			assert.Len(t, srv.InitCalls(), 1)
			assert.Empty(t, s.PendingEvents())

			// A second cycle reuses the initialized library.
			_, err = collect(t, s)
			require.NoError(t, err)
			assert.Len(t, srv.InitCalls(), 1)
		})
	}
}

// initFails is an NVML whose Init fails; any other call fails the test,
// because NVML may kill the process when called after a failed Init.
type initFails struct {
	t     *testing.T
	ret   nvml.Return
	inits int
}

func (f *initFails) Init() nvml.Return { f.inits++; return f.ret }

func (f *initFails) Shutdown() nvml.Return {
	f.t.Error("Shutdown called after a failed Init")
	return nvml.ERROR_UNINITIALIZED
}

func (f *initFails) Extensions() nvml.ExtendedInterface {
	f.t.Error("Extensions called after a failed Init")
	return nil
}

func (f *initFails) DeviceGetCount() (int, nvml.Return) {
	f.t.Error("DeviceGetCount called after a failed Init")
	return 0, nvml.ERROR_UNINITIALIZED
}

func (f *initFails) DeviceGetHandleByIndex(int) (nvml.Device, nvml.Return) {
	f.t.Error("DeviceGetHandleByIndex called after a failed Init")
	return nil, nvml.ERROR_UNINITIALIZED
}

func (f *initFails) EventSetCreate() (nvml.EventSet, nvml.Return) {
	f.t.Error("EventSetCreate called after a failed Init")
	return nil, nvml.ERROR_UNINITIALIZED
}

func TestInitFailure(t *testing.T) {
	tests := []struct {
		name            string
		ret             nvml.Return
		wantUnavailable bool
		wantReason      string
	}{
		{"library missing", nvml.ERROR_LIBRARY_NOT_FOUND, true, "libnvidia-ml.so.1 not found"},
		{"driver not loaded", nvml.ERROR_DRIVER_NOT_LOADED, true, "NVIDIA driver not loaded"},
		{"no permission", nvml.ERROR_NO_PERMISSION, false, "initialize nvml: nvmlInit: no permission"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lib := &initFails{t: t, ret: tt.ret}
			s := newSource(lib, testLogger(t), Options{})
			r := model.NodeReport{Node: model.NodeMetrics{GPUCount: 4, GPUModels: []string{"stale"}}}
			ctx := context.Background()

			apply, err := s.Collect(ctx)
			require.Error(t, err)
			assert.Equal(t, tt.wantUnavailable, errorsIsUnavailable(err), "error %v", err)
			assert.Contains(t, err.Error(), tt.wantReason)
			require.NotNil(t, apply)
			apply(&r)
			assert.Equal(t, 0, r.Node.GPUCount)
			assert.Empty(t, r.Node.GPUModels)
			assert.Empty(t, r.Node.GPUs)
			assert.Empty(t, s.PendingEvents())
			require.NoError(t, s.Close())
			assert.Equal(t, 1, lib.inits)
		})
	}
}

func errorsIsUnavailable(err error) bool {
	return errors.Is(err, collector.ErrUnavailable)
}

func TestInitRetriedAfterInterval(t *testing.T) {
	lib := &initFails{t: t, ret: nvml.ERROR_LIBRARY_NOT_FOUND}
	s := newSource(lib, testLogger(t), Options{InitRetryInterval: time.Minute})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }

	for range 3 {
		_, err := collect(t, s)
		require.ErrorIs(t, err, collector.ErrUnavailable)
	}
	assert.Equal(t, 1, lib.inits, "init is not retried every cycle")

	now = now.Add(59 * time.Second)
	_, err := collect(t, s)
	require.ErrorIs(t, err, collector.ErrUnavailable)
	assert.Equal(t, 1, lib.inits)

	now = now.Add(time.Second)
	_, err = collect(t, s)
	require.ErrorIs(t, err, collector.ErrUnavailable)
	assert.Equal(t, 2, lib.inits, "init is retried once the interval has passed")
}

func TestDriverLoadsLater(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	initRet := nvml.ERROR_DRIVER_NOT_LOADED
	srv.InitFunc = func() nvml.Return { return initRet }
	s := newSource(srv, testLogger(t), Options{InitRetryInterval: time.Minute})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	_, err := collect(t, s)
	require.ErrorIs(t, err, collector.ErrUnavailable)
	assert.Empty(t, srv.DeviceGetCountCalls(), "nothing is called after a failed init")

	initRet = nvml.SUCCESS
	now = now.Add(time.Minute)
	r, err := collect(t, s)
	require.NoError(t, err)
	assert.Equal(t, 8, r.Node.GPUCount)
}

func TestNoGPUs(t *testing.T) {
	srv := newMockServer(dgxa100.NewWithGPUs())
	s := newSource(srv, testLogger(t), Options{})
	r, err := collect(t, s)
	require.ErrorIs(t, err, collector.ErrUnavailable)
	assert.Contains(t, err.Error(), "no GPUs found")
	assert.Equal(t, 0, r.Node.GPUCount)
	assert.Len(t, srv.ShutdownCalls(), 1, "an initialized library without GPUs is shut down again")
	require.NoError(t, s.Close())
	assert.Len(t, srv.ShutdownCalls(), 1)
}

func TestMemoryFallbackAndECCNotSupported(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	dev := mockDevice(srv, 1)
	dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_NOT_SUPPORTED }
	dev.MemoryInfo = nvml.Memory{Total: 16384 * mib, Used: 4096 * mib, Free: 12288 * mib}
	dev.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	s := newSource(srv, testLogger(t), Options{})
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	for cycle := range 2 {
		r, err := collect(t, s)
		require.NoError(t, err)
		g := r.Node.GPUs[1]
		assert.Equal(t, int64(16384*mib), g.MemoryTotal)
		assert.Equal(t, int64(4096*mib), g.MemoryUsed)
		assert.Equal(t, 25.0, g.MemoryUsageRate)
		assert.Equal(t, []int64{40960 * mib, 16384 * mib}, r.Node.GPUMemoryTotal[:2])
		assert.Nil(t, g.ECCCorrected)
		assert.Nil(t, g.ECCUncorrected)
		// The other GPUs are untouched.
		assert.Equal(t, u64(0), r.Node.GPUs[0].ECCCorrected)
		assert.Len(t, dev.GetMemoryInfo_v2Calls(), 1, "cycle %d: v2 is not asked again once it said not supported", cycle)
	}
}

func TestMemoryV1WhenDriverLacksV2(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	srv.LookupSymbolFunc = func(symbol string) error {
		if symbol == symMemoryInfoV2 {
			return fmt.Errorf("symbol %s not found", symbol)
		}
		return nil
	}
	for i := range srv.Devices {
		mockDevice(srv, i).GetMemoryInfo_v2Func = nil // panics if called
		mockDevice(srv, i).MemoryInfo = nvml.Memory{Total: 1000, Used: 250}
	}
	s := newSource(srv, testLogger(t), Options{})
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	r, err := collect(t, s)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), r.Node.GPUs[7].MemoryTotal)
	assert.Equal(t, 25.0, r.Node.GPUs[7].MemoryUsageRate)
}

func TestFailingReadingDegradesOnlyItsField(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	dev := mockDevice(srv, 2)
	dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	s := newSource(srv, testLogger(t), Options{})
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	r, err := collect(t, s)
	require.NoError(t, err, "a failing reading is not a failed source")
	g := r.Node.GPUs[2]
	assert.Equal(t, 0, g.TemperatureC)
	assert.Equal(t, 0.0, g.PowerWatts)
	assert.Equal(t, 12.0, g.UtilizationRate)
	assert.Equal(t, 400.0, g.PowerLimitWatts)
	assert.Equal(t, 8, r.Node.GPUCount)
}

func TestLostGPUFailsSourceButKeepsOthers(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	dev := mockDevice(srv, 5)
	lost := func() nvml.Return { return nvml.ERROR_GPU_IS_LOST }
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, lost() }
	dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, lost() }
	dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, lost() }
	dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, lost() }
	dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 0, lost() }
	dev.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, lost() }
	dev.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, lost() }
	s := newSource(srv, testLogger(t), Options{})
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	r, err := collect(t, s)
	require.Error(t, err)
	assert.False(t, errorsIsUnavailable(err))
	assert.Contains(t, err.Error(), "read gpu 5 ("+testUUID(5)+")")
	assert.Contains(t, err.Error(), "gpu is lost")
	require.Equal(t, 8, r.Node.GPUCount, "the lost GPU is still counted, and the others reported")
	assert.Equal(t, model.GPUMetrics{Index: 5, UUID: testUUID(5), Model: "Mock NVIDIA A100-SXM4-40GB"}, r.Node.GPUs[5])
	assert.Equal(t, 16.0, r.Node.GPUs[6].UtilizationRate)
}

func TestMIGDevices(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	dev := mockDevice(srv, 1)
	dev.MigMode = nvml.DEVICE_MIG_ENABLE
	// In MIG mode the GPU's own utilization is not available.
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	migs := map[int]string{0: "MIG-11111111-1111-1111-1111-111111111111", 2: "MIG-22222222-2222-2222-2222-222222222222"}
	dev.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		uuid, ok := migs[i]
		if !ok {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return &mock.Device{GetUUIDFunc: func() (string, nvml.Return) { return uuid, nvml.SUCCESS }}, nvml.SUCCESS
	}
	s := newSource(srv, testLogger(t), Options{})
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	r, err := collect(t, s)
	require.NoError(t, err)
	assert.Equal(t, []string{migs[0], migs[2]}, r.Node.GPUs[1].MIGDevices)
	assert.Equal(t, 0.0, r.Node.GPUs[1].UtilizationRate)
	assert.Nil(t, r.Node.GPUs[0].MIGDevices)
	assert.Len(t, dev.GetMigDeviceHandleByIndexCalls(), 7, "only the device's slots are asked")
}

func TestCollectAfterClose(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	s := newSource(srv, testLogger(t), Options{})
	_, err := collect(t, s)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "close twice is harmless")
	assert.Len(t, srv.ShutdownCalls(), 1)

	r, err := collect(t, s)
	require.ErrorIs(t, err, collector.ErrUnavailable)
	assert.Equal(t, 0, r.Node.GPUCount)
	assert.Len(t, srv.InitCalls(), 1)
}

func TestCollectGivesUpBehindStuckCycle(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	s := newSource(srv, testLogger(t), Options{})
	s.cycle <- struct{}{} // a cycle stuck inside NVML
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	apply, err := s.Collect(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, apply)
	<-s.cycle
	require.NoError(t, s.Close())
}

// BenchmarkGPUCycle measures one collection of 8 A100s on the mock server,
// so it shows this package's cost plus the mock's call recording.
func BenchmarkGPUCycle(b *testing.B) {
	srv := newMockServer(dgxa100.New())
	s := newSource(srv, slog.New(slog.DiscardHandler), Options{})
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	var r model.NodeReport
	b.ReportAllocs()
	for b.Loop() {
		apply, err := s.Collect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		apply(&r)
	}
	if r.Node.GPUCount != 8 {
		b.Fatalf("got %d gpus, want 8", r.Node.GPUCount)
	}
}
