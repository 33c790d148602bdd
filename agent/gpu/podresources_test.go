package gpu

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// kubelet answers List with fixed allocations, or, when block is set, only
// when the caller gives up.
type kubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	resp  *podresourcesv1.ListPodResourcesResponse
	block bool
}

func (k *kubelet) List(ctx context.Context, _ *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	if k.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return k.resp, nil
}

// serveKubelet serves k on a unix socket in a temporary directory and
// returns the socket's path.
func serveKubelet(t *testing.T, k *kubelet) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubelet.sock")
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, k)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return path
}

func container(name string, devices ...*podresourcesv1.ContainerDevices) *podresourcesv1.ContainerResources {
	return &podresourcesv1.ContainerResources{Name: name, Devices: devices}
}

func devices(resource string, ids ...string) *podresourcesv1.ContainerDevices {
	return &podresourcesv1.ContainerDevices{ResourceName: resource, DeviceIds: ids}
}

const (
	migA = "MIG-aaaaaaaa-1111-1111-1111-111111111111"
	migB = "MIG-bbbbbbbb-2222-2222-2222-222222222222"
)

// fixtureAllocations: a whole GPU, a MIG device, two time-sliced replicas
// of one GPU, a legacy MIG id, and what must be left out.
func fixtureAllocations() *podresourcesv1.ListPodResourcesResponse {
	return &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
		{Namespace: "ml", Name: "train-0", Containers: []*podresourcesv1.ContainerResources{
			container("trainer", devices("nvidia.com/gpu", testUUID(0))),
			container("sidecar"),
		}},
		{Namespace: "ml", Name: "infer-0", Containers: []*podresourcesv1.ContainerResources{
			container("server", devices("nvidia.com/mig-1g.5gb", migB)),
		}},
		{Namespace: "dev", Name: "notebook-a", Containers: []*podresourcesv1.ContainerResources{
			container("jupyter", devices("nvidia.com/gpu", testUUID(2)+"::0")),
		}},
		{Namespace: "dev", Name: "notebook-b", Containers: []*podresourcesv1.ContainerResources{
			container("jupyter", devices("nvidia.com/gpu.shared", testUUID(2)+"::3")),
		}},
		{Namespace: "old", Name: "legacy", Containers: []*podresourcesv1.ContainerResources{
			container("app", devices("nvidia.com/mig-2g.10gb", "MIG-"+testUUID(3)+"/1/0")),
		}},
		{Namespace: "other", Name: "fpga", Containers: []*podresourcesv1.ContainerResources{
			container("app", devices("example.com/fpga", testUUID(4)), devices("nvidia.com/gpu", "GPU-not-on-this-node")),
		}},
	}}
}

func TestPodResourcesAttachesPodsToGPUs(t *testing.T) {
	srv := newMockServer(dgxa100.New())
	dev := mockDevice(srv, 1)
	dev.MigMode = nvml.DEVICE_MIG_ENABLE
	dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 2, nvml.SUCCESS }
	dev.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		uuid := []string{migA, migB}[i]
		return &mock.Device{GetUUIDFunc: func() (string, nvml.Return) { return uuid, nvml.SUCCESS }}, nvml.SUCCESS
	}
	gpus := newSource(srv, testLogger(t), Options{})
	t.Cleanup(func() { require.NoError(t, gpus.Close()) })

	path := serveKubelet(t, &kubelet{resp: fixtureAllocations()})
	pods := NewPodResourcesSource(testLogger(t), path)
	t.Cleanup(func() { require.NoError(t, pods.Close()) })
	assert.Equal(t, "podresources", pods.Name())

	// As the runner does: collect both, then apply in source order.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	applyGPUs, err := gpus.Collect(ctx)
	require.NoError(t, err)
	applyPods, err := pods.Collect(ctx)
	require.NoError(t, err)
	var r model.NodeReport
	applyGPUs(&r)
	applyPods(&r)

	want := map[int][]model.GPUPodRef{
		0: {{Namespace: "ml", Pod: "train-0", Container: "trainer", DeviceID: testUUID(0)}},
		1: {{Namespace: "ml", Pod: "infer-0", Container: "server", DeviceID: migB}},
		2: {
			{Namespace: "dev", Pod: "notebook-a", Container: "jupyter", DeviceID: testUUID(2) + "::0"},
			{Namespace: "dev", Pod: "notebook-b", Container: "jupyter", DeviceID: testUUID(2) + "::3"},
		},
		3: {{Namespace: "old", Pod: "legacy", Container: "app", DeviceID: "MIG-" + testUUID(3) + "/1/0"}},
	}
	require.Len(t, r.Node.GPUs, 8)
	for i, g := range r.Node.GPUs {
		assert.Equal(t, want[i], g.Pods, "gpu %d", i)
	}
	assert.Equal(t, 4, r.Node.GetAvailableResources().GPUs)

	// The connection is kept for the next cycle.
	_, err = pods.Collect(ctx)
	require.NoError(t, err)
}

func TestPodResourcesMissingSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod-resources", "kubelet.sock")
	s := NewPodResourcesSource(testLogger(t), path)
	apply, err := s.Collect(context.Background())
	require.ErrorIs(t, err, collector.ErrUnavailable)
	assert.Contains(t, err.Error(), path)
	assert.Nil(t, apply)
	require.NoError(t, s.Close())
}

func TestPodResourcesHonoursDeadline(t *testing.T) {
	path := serveKubelet(t, &kubelet{block: true})
	s := NewPodResourcesSource(testLogger(t), path)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Collect(ctx)
	require.Error(t, err)
	assert.NotErrorIs(t, err, collector.ErrUnavailable)
	assert.True(t, strings.HasPrefix(err.Error(), "list pod resources from "+path), err.Error())
}

func TestMatchDevice(t *testing.T) {
	gpus := []model.GPUMetrics{
		{Index: 0, UUID: "GPU-aaaa"},
		{Index: 1, UUID: "GPU-bbbb", MIGDevices: []string{"MIG-1111", "MIG-2222"}},
		{Index: 2, UUID: "GPU-cccc"},
	}
	byID := map[string]int{"GPU-aaaa": 0, "GPU-bbbb": 1, "MIG-1111": 1, "MIG-2222": 1, "GPU-cccc": 2}
	tests := []struct {
		id     string
		want   int
		wantOK bool
	}{
		{"GPU-aaaa", 0, true},
		{"GPU-cccc::7", 2, true},
		{"MIG-2222", 1, true},
		{"MIG-2222::1", 1, true},
		{"MIG-GPU-bbbb/3/0", 1, true},
		{"2", 2, true},
		{"1:0", 1, true},
		{"GPU-dddd", 0, false},
		{"MIG-GPU-dddd/1/0", 0, false},
		{"9", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, ok := matchDevice(tt.id, gpus, byID)
			assert.Equal(t, tt.wantOK, ok)
			if tt.wantOK {
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

// unimplementedKubelet serves the pod-resources service without List, as
// a kubelet that does not serve v1 answers.
type unimplementedKubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
}

// failingKubelet answers List with a gRPC error.
type failingKubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
}

func (failingKubelet) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	return nil, status.Error(codes.Internal, "checkpoint: 100% broken")
}

func TestPodResourcesErrors(t *testing.T) {
	tests := []struct {
		name     string
		server   podresourcesv1.PodResourcesListerServer
		wantErr  string
		wantUnav bool
	}{
		{name: "kubelet without pod-resources v1", server: unimplementedKubelet{}, wantErr: "does not serve pod-resources v1", wantUnav: true},
		{name: "kubelet error", server: failingKubelet{}, wantErr: "grpc status 13: checkpoint: 100% broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := serveLister(t, tt.server)
			s := NewPodResourcesSource(testLogger(t), path)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			apply, err := s.Collect(ctx)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, tt.wantUnav, errors.Is(err, collector.ErrUnavailable))
			assert.Nil(t, apply)
		})
	}
}

// TestUnaryClientRefusesOversizedAnswers bounds the kubelet's answer.
func TestUnaryClientRefusesOversizedAnswers(t *testing.T) {
	path := serveKubelet(t, &kubelet{resp: fixtureAllocations()})
	c := newUnaryClient(path, 64)
	t.Cleanup(c.close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.call(ctx, listMethod, nil)
	require.ErrorContains(t, err, "exceeds the limit of 64")

	c = newUnaryClient(path, maxPodResourcesMessage)
	t.Cleanup(c.close)
	body, err := c.call(ctx, listMethod, nil)
	require.NoError(t, err)
	want, err := proto.Marshal(fixtureAllocations())
	require.NoError(t, err)
	assert.Equal(t, want, body)
}

// TestDecodeListResponse decodes the kubelet's own encoding of the fixture,
// unknown fields included, and refuses truncated input.
func TestDecodeListResponse(t *testing.T) {
	resp := fixtureAllocations()
	// Fields the agent skips: CPU ids, memory, topology.
	resp.PodResources[0].Containers[0].CpuIds = []int64{2, 3}
	resp.PodResources[0].Containers[0].Memory = []*podresourcesv1.ContainerMemory{{MemoryType: "memory", Size: 1 << 30}}
	resp.PodResources[0].Containers[0].Devices[0].Topology = &podresourcesv1.TopologyInfo{Nodes: []*podresourcesv1.NUMANode{{ID: 1}}}
	b, err := proto.Marshal(resp)
	require.NoError(t, err)
	got, err := decodeListResponse(b)
	require.NoError(t, err)
	require.Len(t, got, len(resp.PodResources))
	for i, pr := range resp.PodResources {
		assert.Equal(t, pr.Name, got[i].name)
		assert.Equal(t, pr.Namespace, got[i].namespace)
		require.Len(t, got[i].containers, len(pr.Containers))
		for j, c := range pr.Containers {
			assert.Equal(t, c.Name, got[i].containers[j].name)
			require.Len(t, got[i].containers[j].devices, len(c.Devices))
			for k, d := range c.Devices {
				assert.Equal(t, d.ResourceName, got[i].containers[j].devices[k].resourceName)
				assert.Equal(t, d.DeviceIds, got[i].containers[j].devices[k].deviceIDs)
			}
		}
	}
	_, err = decodeListResponse(b[:len(b)-1])
	require.ErrorIs(t, err, errBadWire)
}

// FuzzDecodeListResponse: no input panics the decoder.
func FuzzDecodeListResponse(f *testing.F) {
	b, err := proto.Marshal(fixtureAllocations())
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = decodeListResponse(body)
	})
}

// serveLister serves any pod-resources implementation on a unix socket.
func serveLister(t *testing.T, s podresourcesv1.PodResourcesListerServer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubelet.sock")
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return path
}

// TestPodResourcesAfterKubeletRestart: the kubelet recreates its socket
// when it restarts; the source dials it again on the next collection.
func TestPodResourcesAfterKubeletRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubelet.sock")
	serve := func() *grpc.Server {
		lis, err := net.Listen("unix", path)
		require.NoError(t, err)
		srv := grpc.NewServer()
		podresourcesv1.RegisterPodResourcesListerServer(srv, &kubelet{resp: fixtureAllocations()})
		go func() { _ = srv.Serve(lis) }()
		return srv
	}
	first := serve()
	s := NewPodResourcesSource(testLogger(t), path)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Collect(ctx)
	require.NoError(t, err)

	first.Stop() // removes the socket file
	second := serve()
	t.Cleanup(second.Stop)
	require.Eventually(t, func() bool {
		_, err := s.Collect(ctx)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "no answer from the restarted kubelet")
}
