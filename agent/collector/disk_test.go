package collector

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// k8snodeFilesystems are statfs answers for testdata/k8snode's mounts, by
// host path.
var k8snodeFilesystems = map[string]syscall.Statfs_t{
	"/":                   {Bsize: 4096, Frsize: 4096, Blocks: 25_800_000, Bfree: 10_000_000, Bavail: 8_700_000, Files: 6_400_000, Ffree: 5_900_000},
	"/boot/efi":           {Bsize: 512, Frsize: 512, Blocks: 217_000, Bfree: 200_000, Bavail: 200_000},
	"/var/lib/containerd": {Bsize: 4096, Frsize: 4096, Blocks: 52_400_000, Bfree: 30_000_000, Bavail: 30_000_000, Files: 104_800_000, Ffree: 104_000_000},
	"/data":               {Bsize: 4096, Frsize: 4096, Blocks: 262_144_000, Bfree: 100_000_000, Bavail: 86_900_000, Files: 65_536_000, Ffree: 65_000_000},
	"/var/lib/kubelet":    {Bsize: 4096, Frsize: 4096, Blocks: 262_144_000, Bfree: 100_000_000, Bavail: 86_900_000, Files: 65_536_000, Ffree: 65_000_000},
	"/mnt/nfs share":      {Bsize: 1 << 20, Frsize: 1 << 20, Blocks: 1_000_000, Bfree: 250_000, Bavail: 250_000, Files: 62_000_000, Ffree: 61_000_000},
	"/mnt/scratch":        {Bsize: 4096, Frsize: 4096, Blocks: 262_144, Bfree: 262_144, Bavail: 262_144, Files: 4_000_000, Ffree: 3_999_990},
	"/srv/backup":         {Bsize: 4096, Frsize: 4096, Blocks: 1_000_000, Bfree: 900_000, Bavail: 850_000, Files: 250_000, Ffree: 249_000},
	"/srv/backup-alias":   {Bsize: 4096, Frsize: 4096, Blocks: 1_000_000, Bfree: 900_000, Bavail: 850_000, Files: 250_000, Ffree: 249_000},
}

// fakeStatfs answers statfs for host paths under root from fs, ENOENT for
// the others.
func fakeStatfs(root string, fs map[string]syscall.Statfs_t) func(string, *syscall.Statfs_t) error {
	return func(path string, st *syscall.Statfs_t) error {
		rel := strings.TrimPrefix(path, root)
		if rel == "" {
			rel = "/"
		}
		v, ok := fs[rel]
		if !ok {
			return syscall.ENOENT
		}
		*st = v
		return nil
	}
}

// recordingStatfs wraps fakeStatfs and records the host paths asked for.
type recordingStatfs struct {
	root  string
	mu    sync.Mutex
	paths []string
}

func (r *recordingStatfs) statfs(path string, st *syscall.Statfs_t) error {
	rel := strings.TrimPrefix(path, r.root)
	if rel == "" {
		rel = "/"
	}
	r.mu.Lock()
	r.paths = append(r.paths, rel)
	r.mu.Unlock()
	return fakeStatfs(r.root, k8snodeFilesystems)(path, st)
}

func newK8sNodeDiskSource(t *testing.T, mounts []string, rootDir string) (*DiskSource, *recordingStatfs, string) {
	t.Helper()
	root := copyFixture(t, "k8snode")
	s := NewDiskSource(NewHostPaths(root), mounts, rootDir, nil)
	rec := &recordingStatfs{root: root}
	s.statfs = rec.statfs
	s.now = newFakeClock().Now
	return s, rec, root
}

func TestDiskSourceDiscovery(t *testing.T) {
	// Real filesystems of the k8snode mount table, in table order: pseudo
	// types, container overlays, kubelet pod and CSI mounts, the hidden
	// /mnt/scratch ext4 and the second mount of /dev/sdc1 are left out;
	// /var/lib/kubelet is a bind mount of /data's device.
	wantDisks := []struct{ device, mountPoint, fsType string }{
		{"/dev/nvme0n1p1", "/", "ext4"},
		{"/dev/nvme0n1p15", "/boot/efi", "vfat"},
		{"/dev/nvme1n1", "/var/lib/containerd", "xfs"},
		{"/dev/nvme2n1", "/data", "ext4"},
		{"10.0.0.5:/exports/share", "/mnt/nfs share", "nfs4"},
		{"/dev/sdc1", "/srv/backup", "ext4"},
	}
	tests := []struct {
		rootDir   string
		wantStat  string // the statfs that fills the node's disk fields
		wantCalls int    // statfs calls in all
	}{
		{"/", "/", 6},
		{"/var/lib/kubelet", "/var/lib/kubelet", 7},
		{"/var/lib/kubelet/pods/5b1e6f0c-2d3a-4e5f-8a9b-0c1d2e3f4a5b", "/var/lib/kubelet", 7},
		{"/srv/backup-alias/db", "/srv/backup-alias", 7},
		{"/mnt/scratch/tmp", "/mnt/scratch", 7}, // the tmpfs on top, not the hidden ext4
		{"/variable", "/", 6},                   // /var is no prefix of /variable
	}
	for _, tt := range tests {
		t.Run(tt.rootDir, func(t *testing.T) {
			s, rec, _ := newK8sNodeDiskSource(t, nil, tt.rootDir)
			var r model.NodeReport
			require.NoError(t, collectInto(t, context.Background(), s, &r))

			require.Len(t, r.Node.Disks, len(wantDisks))
			for i, w := range wantDisks {
				d := r.Node.Disks[i]
				assert.Equal(t, w.device, d.Device, w.mountPoint)
				assert.Equal(t, w.mountPoint, d.MountPoint)
				assert.Equal(t, w.fsType, d.FSType, w.mountPoint)
				assert.True(t, d.Available, w.mountPoint)
				assert.Empty(t, d.Unavailable, w.mountPoint)
			}
			st := k8snodeFilesystems[tt.wantStat]
			want := diskMetrics(mountEntry{}, statfsResult{st: st})
			assert.Equal(t, want.Capacity, r.Node.DiskCapacity)
			assert.Equal(t, want.Used, r.Node.DiskUsage)
			assert.InDelta(t, want.UsageRate, r.Node.DiskUsageRate, 1e-9)
			assert.Contains(t, rec.paths, tt.wantStat)
			assert.Len(t, rec.paths, tt.wantCalls, "one statfs per distinct path: %v", rec.paths)
		})
	}
}

func TestDiskMetricsMath(t *testing.T) {
	tests := []struct {
		name string
		st   syscall.Statfs_t
		want model.DiskMetrics
	}{
		{
			// 1000 blocks of 4 KiB, 300 free of which 250 for non-root:
			// used 700 blocks, rate 700/(700+250) = 73.68…%; inodes 60/100.
			name: "ext4 with reserved blocks",
			st:   syscall.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 300, Bavail: 250, Files: 100, Ffree: 40},
			want: model.DiskMetrics{
				Capacity: 4_096_000, Used: 2_867_200, Free: 1_024_000, UsageRate: 700.0 / 950 * 100,
				Inodes: 100, InodesUsed: 60, InodesRate: 60, Available: true,
			},
		},
		{
			// The block counts are in fragment-size units, not Bsize.
			name: "fragment size differs from block size",
			st:   syscall.Statfs_t{Bsize: 1 << 20, Frsize: 4096, Blocks: 100, Bfree: 50, Bavail: 50},
			want: model.DiskMetrics{Capacity: 409_600, Used: 204_800, Free: 204_800, UsageRate: 50, Available: true},
		},
		{
			name: "no fragment size falls back to block size",
			st:   syscall.Statfs_t{Bsize: 512, Blocks: 100, Bfree: 100, Bavail: 100},
			want: model.DiskMetrics{Capacity: 51_200, Free: 51_200, Available: true},
		},
		{
			// An NFS or EFS mount reporting 16 EiB: sizes saturate at the
			// largest int64 instead of wrapping negative.
			name: "beyond int64 bytes saturates",
			st:   syscall.Statfs_t{Frsize: 4096, Blocks: 1 << 52, Bfree: 1 << 51, Bavail: 1 << 51},
			want: model.DiskMetrics{Capacity: math.MaxInt64, Used: 1<<63 - 1, Free: 1<<63 - 1, UsageRate: 50, Available: true},
		},
		{
			// btrfs reports no inode counts: rate 0, not NaN.
			name: "empty filesystem without inodes",
			st:   syscall.Statfs_t{Frsize: 4096},
			want: model.DiskMetrics{Available: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diskMetrics(mountEntry{}, statfsResult{st: tt.st})
			assert.InDelta(t, tt.want.UsageRate, got.UsageRate, 1e-9)
			got.UsageRate = tt.want.UsageRate
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDiskSourceConfiguredMounts(t *testing.T) {
	// Exactly the listed paths, in order, named after the mount holding
	// each; a path that is no mount is reported with its own statfs.
	s, rec, _ := newK8sNodeDiskSource(t, []string{"/data", "/mnt/nfs share/", "/not/mounted"}, "/var/lib/kubelet")
	var r model.NodeReport
	require.NoError(t, collectInto(t, context.Background(), s, &r))

	require.Len(t, r.Node.Disks, 3)
	assert.Equal(t, model.DiskMetrics{
		Device: "/dev/nvme2n1", MountPoint: "/data", FSType: "ext4",
		Capacity: 1_073_741_824_000, Used: 664_141_824_000, Free: 355_942_400_000,
		UsageRate: r.Node.Disks[0].UsageRate, Inodes: 65_536_000, InodesUsed: 536_000,
		InodesRate: r.Node.Disks[0].InodesRate, Available: true,
	}, r.Node.Disks[0])
	assert.Equal(t, "/mnt/nfs share", r.Node.Disks[1].MountPoint)
	assert.Equal(t, "nfs4", r.Node.Disks[1].FSType)
	assert.True(t, r.Node.Disks[1].Available)
	assert.Equal(t, model.DiskMetrics{
		Device: "/dev/nvme0n1p1", MountPoint: "/not/mounted", FSType: "ext4",
		Unavailable: "statfs: no such file or directory",
	}, r.Node.Disks[2])
	assert.Equal(t, int64(1_073_741_824_000), r.Node.DiskCapacity)
	assert.ElementsMatch(t, []string{"/data", "/mnt/nfs share", "/not/mounted", "/var/lib/kubelet"}, rec.paths)
}

func TestDiskSourceMountTable(t *testing.T) {
	tests := []struct {
		name      string
		mounts    []string
		prepare   func(t *testing.T, root string)
		wantErr   string
		wantDisks int
	}{
		{
			name: "self mountinfo when PID 1's is unreadable",
			prepare: func(t *testing.T, root string) {
				table := readFixture(t, root, "proc/1/mountinfo")
				require.NoError(t, os.Remove(filepath.Join(root, "proc/1/mountinfo")))
				writeFixture(t, root, "proc/self/mountinfo", table)
			},
			wantDisks: 6,
		},
		{
			name: "no mount table",
			prepare: func(t *testing.T, root string) {
				require.NoError(t, os.Remove(filepath.Join(root, "proc/1/mountinfo")))
			},
			wantErr: "read mount table",
		},
		{
			name:   "no mount table with a configured list",
			mounts: []string{"/data"},
			prepare: func(t *testing.T, root string) {
				require.NoError(t, os.Remove(filepath.Join(root, "proc/1/mountinfo")))
			},
			wantDisks: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, root := newK8sNodeDiskSource(t, tt.mounts, "/")
			tt.prepare(t, root)
			var r model.NodeReport
			err := collectInto(t, context.Background(), s, &r)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.NotErrorIs(t, err, ErrUnavailable)
				return
			}
			require.NoError(t, err)
			assert.Len(t, r.Node.Disks, tt.wantDisks)
			assert.Equal(t, int64(25_800_000*4096), r.Node.DiskCapacity)
		})
	}
}

func TestDiskSourceRootUnavailable(t *testing.T) {
	s, _, root := newK8sNodeDiskSource(t, nil, "/")
	fake := fakeStatfs(root, k8snodeFilesystems)
	s.statfs = func(path string, st *syscall.Statfs_t) error {
		if path == root {
			return syscall.EIO
		}
		return fake(path, st)
	}
	var r model.NodeReport
	err := collectInto(t, context.Background(), s, &r)
	require.ErrorContains(t, err, "stat root dir / on mount /: statfs: input/output error")
	assert.ErrorIs(t, err, syscall.EIO)
	require.Len(t, r.Node.Disks, 6, "the other filesystems are still reported")
	assert.False(t, r.Node.Disks[0].Available)
	assert.True(t, r.Node.Disks[1].Available)
	assert.Zero(t, r.Node.DiskCapacity)
}

// TestDiskSourceHungMount blocks statfs of the NFS share: Collect must
// return before its deadline with that mount unavailable and the others
// reported, must not call statfs on it again while the first call is stuck,
// and must report it again once the call returns.
func TestDiskSourceHungMount(t *testing.T) {
	s, _, root := newK8sNodeDiskSource(t, nil, "/")
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	var nfsCalls atomic.Int32
	fake := fakeStatfs(root, k8snodeFilesystems)
	s.statfs = func(path string, st *syscall.Statfs_t) error {
		if strings.HasSuffix(path, "/mnt/nfs share") {
			nfsCalls.Add(1)
			<-release
		}
		return fake(path, st)
	}
	const timeout = 500 * time.Millisecond
	byMount := func(r *model.NodeReport) map[string]model.DiskMetrics {
		m := make(map[string]model.DiskMetrics)
		for _, d := range r.Node.Disks {
			m[d.MountPoint] = d
		}
		return m
	}

	t.Run("first cycle waits until the deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		var r model.NodeReport
		require.NoError(t, collectInto(t, ctx, s, &r))
		assert.LessOrEqual(t, time.Since(start), timeout, "Collect returned after its deadline")
		assert.NoError(t, ctx.Err(), "Collect returned after its deadline")

		disks := byMount(&r)
		require.Len(t, disks, 6)
		nfs := disks["/mnt/nfs share"]
		assert.False(t, nfs.Available)
		assert.Equal(t, "statfs blocked since 2026-03-01T12:00:00Z: no answer before the deadline", nfs.Unavailable)
		assert.Zero(t, nfs.Capacity)
		for mp, d := range disks {
			if mp != "/mnt/nfs share" {
				assert.True(t, d.Available, mp)
			}
		}
		assert.Equal(t, int64(25_800_000*4096), r.Node.DiskCapacity)
	})

	t.Run("next cycle skips the stuck mount at once", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		var r model.NodeReport
		require.NoError(t, collectInto(t, ctx, s, &r))
		assert.Less(t, time.Since(start), timeout/2, "Collect waited for a mount known to be stuck")
		assert.Equal(t, int32(1), nfsCalls.Load(), "statfs issued again on a stuck mount")
		nfs := byMount(&r)["/mnt/nfs share"]
		assert.False(t, nfs.Available)
		assert.Equal(t, "statfs still blocked since 2026-03-01T12:00:00Z", nfs.Unavailable)
	})

	t.Run("reported again once statfs returns", func(t *testing.T) {
		unblock()
		require.Eventually(t, func() bool {
			var r model.NodeReport
			require.NoError(t, collectInto(t, context.Background(), s, &r))
			return byMount(&r)["/mnt/nfs share"].Available
		}, 5*time.Second, 5*time.Millisecond)
		assert.Equal(t, int32(2), nfsCalls.Load())
	})
}

// TestDiskSourceWorkerPoolBound blocks every statfs: only diskStatfsWorkers
// calls are issued, the other mounts are reported as not started.
func TestDiskSourceWorkerPoolBound(t *testing.T) {
	s, _, root := newK8sNodeDiskSource(t, nil, "/")
	release := make(chan struct{})
	var calls atomic.Int32
	var done sync.WaitGroup
	fake := fakeStatfs(root, k8snodeFilesystems)
	s.statfs = func(path string, st *syscall.Statfs_t) error {
		done.Add(1)
		defer done.Done()
		calls.Add(1)
		<-release
		return fake(path, st)
	}
	t.Cleanup(func() {
		close(release)
		done.Wait()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var r model.NodeReport
	err := collectInto(t, ctx, s, &r)
	require.ErrorContains(t, err, "stat root dir / on mount /: statfs blocked since")

	assert.Equal(t, int32(diskStatfsWorkers), calls.Load())
	require.Len(t, r.Node.Disks, 6)
	for i, d := range r.Node.Disks {
		assert.False(t, d.Available, d.MountPoint)
		if i < diskStatfsWorkers {
			assert.Contains(t, d.Unavailable, "no answer before the deadline", d.MountPoint)
		} else {
			assert.Equal(t, "statfs not started: all 4 workers busy until the deadline", d.Unavailable, d.MountPoint)
		}
	}
}

// TestDiskSourceMountinfoFields checks what the disk source takes from
// gopsutil's reading of mountinfo lines: escapes decoded in the mount point
// and the source, optional fields skipped, bind mounts marked.
func TestDiskSourceMountinfoFields(t *testing.T) {
	tests := []struct {
		name string
		line string
		want mountEntry
	}{
		{
			name: "optional fields",
			line: "36 35 98:0 / /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/vdb rw,errors=continue",
			want: mountEntry{mountPoint: "/mnt2", fsType: "ext3", device: "/dev/vdb"},
		},
		{
			name: "no optional fields",
			line: "26 1 254:0 / /mnt3 rw,relatime - ext4 /dev/vda rw,discard",
			want: mountEntry{mountPoint: "/mnt3", fsType: "ext4", device: "/dev/vda"},
		},
		{
			name: "escaped space, tab and backslash",
			line: `69 30 0:45 / /mnt/nfs\040share\011x\134y rw - nfs4 host:/a\040b rw`,
			want: mountEntry{mountPoint: "/mnt/nfs share\tx\\y", fsType: "nfs4", device: "host:/a b"},
		},
		{
			name: "bind mount of a subtree",
			line: "68 30 259:4 /kubelet /mnt4 rw,relatime shared:38 - ext4 /dev/nvme2n1 rw",
			want: mountEntry{mountPoint: "/mnt4", fsType: "ext4", device: "/dev/nvme2n1", bind: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFixture(t, root, "proc/1/mountinfo", "30 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n"+tt.line+"\n")
			s := NewDiskSource(NewHostPaths(root), nil, "/", nil)
			reported, _, err := s.readMounts(context.Background())
			require.NoError(t, err)
			require.Len(t, reported, 2)
			assert.Equal(t, tt.want, reported[1])
		})
	}
}
