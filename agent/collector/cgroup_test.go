package collector

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const (
	fixtureGuaranteedUID = "0b6a1c3e-8f7d-4a52-9a0e-2c1f6d7e8a90"
	fixtureBurstableUID  = "5f0e2d1c-3b4a-4c5d-8e7f-9a0b1c2d3e4f"
	fixtureBestEffortUID = "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f"
	fixtureStaticUID     = "3c9d0e5f7a1b2c4d6e8f0a1b2c3d4e5f"
)

func repeatID(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func collectCgroups(t *testing.T, root string) *model.CgroupStats {
	t.Helper()
	var r model.NodeReport
	require.NoError(t, collectInto(t, context.Background(), NewCgroupSource(NewHostPaths(root)), &r))
	require.NotNil(t, r.Cgroups)
	return r.Cgroups
}

func podByUID(t *testing.T, s *model.CgroupStats, uid string) model.PodCgroupStats {
	t.Helper()
	for _, p := range s.Pods {
		if p.UID == uid {
			return p
		}
	}
	require.Failf(t, "pod not found", "uid %s in %+v", uid, s.Pods)
	return model.PodCgroupStats{}
}

func containerByID(t *testing.T, p model.PodCgroupStats, id string) model.ContainerCgroupStats {
	t.Helper()
	for _, c := range p.Containers {
		if c.ID == id {
			return c
		}
	}
	require.Failf(t, "container not found", "id %s in pod %s", id, p.UID)
	return model.ContainerCgroupStats{}
}

// TestCgroupFixtures reads each recorded cgroup tree and compares the
// result with its golden file; the asserts name the facts the diagnosis
// rests on, so a golden file regenerated from wrong output still fails.
func TestCgroupFixtures(t *testing.T) {
	tests := []struct {
		fixture string
		version int
		driver  string
		pods    int
		check   func(t *testing.T, s *model.CgroupStats)
	}{
		{"cgroup-v2-systemd", 2, "systemd", 4, func(t *testing.T, s *model.CgroupStats) {
			b := podByUID(t, s, fixtureBurstableUID)
			assert.Equal(t, "Burstable", b.QOSClass)
			// The pod's hierarchical counters keep the kills of a container
			// that was restarted since: its new cgroup counts none.
			assert.Equal(t, model.MemoryCgroup{OOM: 3, OOMKill: 3, Max: 14, PeakBytes: 268435456, LimitBytes: 268435456}, b.Memory)
			assert.Len(t, b.Containers, 3)
			app := containerByID(t, b, repeatID("d4", 32))
			assert.Equal(t, model.MemoryCgroup{Max: 2, PeakBytes: 201326592, LimitBytes: 201326592}, app.Memory)
			assert.False(t, app.Memory.OOMKilled())
			assert.True(t, b.Memory.OOMKilled())

			g := podByUID(t, s, fixtureGuaranteedUID)
			assert.Equal(t, "Guaranteed", g.QOSClass)
			assert.Zero(t, g.Memory.OOMKill)
			assert.Equal(t, int64(536870912), g.Memory.LimitBytes)

			e := podByUID(t, s, fixtureBestEffortUID)
			assert.Equal(t, "BestEffort", e.QOSClass)
			// No memory.peak on kernels before 5.19; memory.max is "max".
			be := containerByID(t, e, repeatID("0718", 16))
			assert.Equal(t, model.MemoryCgroup{OOM: 1, OOMKill: 1}, be.Memory)

			st := podByUID(t, s, fixtureStaticUID)
			assert.Len(t, st.Containers, 2)
		}},
		{"cgroup-v2-cgroupfs", 2, "cgroupfs", 2, func(t *testing.T, s *model.CgroupStats) {
			g := podByUID(t, s, fixtureGuaranteedUID)
			assert.Equal(t, "Guaranteed", g.QOSClass)
			assert.Equal(t, uint64(1), containerByID(t, g, repeatID("b2", 32)).Memory.OOMKill)
			assert.Equal(t, "Burstable", podByUID(t, s, fixtureBurstableUID).QOSClass)
		}},
		{"cgroup-v1-systemd", 1, "systemd", 1, func(t *testing.T, s *model.CgroupStats) {
			b := podByUID(t, s, fixtureBurstableUID)
			// 9223372036854771712 in limit_in_bytes means no limit.
			assert.Zero(t, b.Memory.LimitBytes)
			app := containerByID(t, b, repeatID("d4", 32))
			assert.Equal(t, model.MemoryCgroup{OOMKill: 2, FailCount: 41, PeakBytes: 268435456, LimitBytes: 268435456}, app.Memory)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s := collectCgroups(t, filepath.Join("testdata", tt.fixture))
			assert.Equal(t, tt.version, s.Version)
			assert.Equal(t, tt.driver, s.Driver)
			assert.Len(t, s.Pods, tt.pods)
			assert.Zero(t, s.Truncated)
			tt.check(t, s)

			got, err := json.MarshalIndent(s, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			golden := filepath.Join("testdata", tt.fixture+".golden")
			if updateGolden() {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(got))
		})
	}
}

func TestCgroupUnavailable(t *testing.T) {
	root := t.TempDir()
	writeFixture(t, root, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
	writeFixture(t, root, "sys/fs/cgroup/system.slice/memory.events", "oom 0\n")
	_, err := NewCgroupSource(NewHostPaths(root)).Collect(context.Background())
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "no kubepods cgroup")
}

func TestCgroupBounds(t *testing.T) {
	root := t.TempDir()
	writeFixture(t, root, "sys/fs/cgroup/cgroup.controllers", "memory\n")
	pod := "sys/fs/cgroup/kubepods/podaaaaaaaa-0000-0000-0000-000000000000/"
	for i := range maxCgroupContainers + 3 {
		writeFixture(t, root, pod+repeatID("0", 60)+hex4(i)+"/memory.events", "oom_kill 1\n")
	}
	// A file larger than any counter file is ignored, not read whole.
	writeFixture(t, root, pod+"memory.events", "oom_kill 7\n"+repeatID("x", maxCgroupFile))
	s := collectCgroups(t, root)
	require.Len(t, s.Pods, 1)
	assert.Len(t, s.Pods[0].Containers, maxCgroupContainers)
	assert.Equal(t, 3, s.Truncated)
	assert.Zero(t, s.Pods[0].Memory.OOMKill)
}

func TestCgroupCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewCgroupSource(NewHostPaths(filepath.Join("testdata", "cgroup-v2-systemd"))).Collect(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func hex4(i int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[i>>12&15], digits[i>>8&15], digits[i>>4&15], digits[i&15]})
}

func TestCgroupDirNames(t *testing.T) {
	pods := []struct {
		name, uid string
		ok        bool
	}{
		{"pod" + fixtureGuaranteedUID, fixtureGuaranteedUID, true},
		{"kubepods-pod0b6a1c3e_8f7d_4a52_9a0e_2c1f6d7e8a90.slice", fixtureGuaranteedUID, true},
		{"kubepods-burstable-pod5f0e2d1c_3b4a_4c5d_8e7f_9a0b1c2d3e4f.slice", fixtureBurstableUID, true},
		{"kubepods-besteffort-pod" + fixtureStaticUID + ".slice", fixtureStaticUID, true},
		{"kubepods-burstable.slice", "", false},
		{"pod", "", false},
		{"pod../../etc", "", false},
		{"podXYZ", "", false},
		{"system.slice", "", false},
	}
	for _, tt := range pods {
		uid, ok := podUIDOfDir(tt.name)
		assert.Equal(t, tt.ok, ok, tt.name)
		if tt.ok {
			assert.Equal(t, tt.uid, uid, tt.name)
		}
	}
	id := repeatID("ab", 32)
	containers := []struct {
		name, id string
		ok       bool
	}{
		{id, id, true},
		{"cri-containerd-" + id + ".scope", id, true},
		{"crio-" + id + ".scope", id, true},
		{"docker-" + id + ".scope", id, true},
		{"crio-conmon-" + id + ".scope", "", false},
		{"init.scope", "", false},
		{"memory.events", "", false},
		{repeatID("a", 129), "", false},
	}
	for _, tt := range containers {
		got, ok := containerIDOfDir(tt.name)
		assert.Equal(t, tt.ok, ok, tt.name)
		if tt.ok {
			assert.Equal(t, tt.id, got, tt.name)
		}
	}
}

func BenchmarkCgroupCollect(b *testing.B) {
	s := NewCgroupSource(NewHostPaths(filepath.Join("testdata", "cgroup-v2-systemd")))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
