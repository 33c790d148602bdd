package collector

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/disk"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// diskStatfsWorkers bounds the statfs calls in flight at once, hung ones
// included, so a node with many dead NFS mounts cannot pile up threads.
const diskStatfsWorkers = 4

// diskDefaultDeadline bounds a Collect whose context has no deadline: a
// hung mount must never block a caller that forgot one.
const diskDefaultDeadline = config.DefaultSourceTimeout

// diskDeadlineMargin is how long before the context's deadline Collect
// stops waiting for statfs, so the runner receives the mounts that did
// answer instead of a timed-out source. It is at most a tenth of the time
// left.
const diskDeadlineMargin = 100 * time.Millisecond

// pseudoFSTypes are filesystem types that hold no node storage: kernel
// interfaces, memory-backed and container-layer filesystems. Discovery
// leaves them out; a configured mount list is taken as given.
var pseudoFSTypes = map[string]bool{
	"autofs": true, "binfmt_misc": true, "bpf": true, "cgroup": true,
	"cgroup2": true, "configfs": true, "debugfs": true, "devpts": true,
	"devtmpfs": true, "efivarfs": true, "fuse.lxcfs": true, "fusectl": true,
	"hugetlbfs": true, "mqueue": true, "nsfs": true, "overlay": true,
	"proc": true, "pstore": true, "ramfs": true, "rpc_pipefs": true,
	"securityfs": true, "selinuxfs": true, "shm": true, "squashfs": true,
	"sysfs": true, "tmpfs": true, "tracefs": true, "aufs": true,
	"fuse.gvfsd-fuse": true, "fuse.portal": true, "nfsd": true,
	"devfs": true, "rootfs": true, "zfs_snapshot": true,
}

// ignoredMountPrefixes are mount points that discovery leaves out whatever
// their type: kernel trees, and container runtimes' per-container layers
// (devicemapper, btrfs and zfs drivers mount real filesystems there).
var ignoredMountPrefixes = []string{
	"/proc/", "/sys/", "/dev/", "/run/credentials/",
	"/var/lib/docker/", "/var/lib/containers/storage/",
}

// kubeletVolumeDirs mark pod volume and CSI staging mounts under any kubelet
// root dir (/var/lib/kubelet, k0s's, microk8s's). The kubelet source
// reports those per pod and per PVC; listing them here would add one disk
// per attached volume and a statfs on every network volume of every pod.
var kubeletVolumeDirs = []string{"/kubelet/pods/", "/kubelet/plugins/"}

// DiskSource reports the node's filesystems: every real filesystem of the
// host's mount table, or exactly a configured list of mount points, and the
// node's disk fields from the filesystem holding the root dir.
//
// statfs on a hung network mount blocks in the kernel and cannot be
// cancelled, so each call runs in its own goroutine, bounded by a pool of
// diskStatfsWorkers, and Collect waits for it only until its deadline. A
// call still stuck from an earlier cycle is not issued again: its mount is
// reported unavailable at once until the call returns.
type DiskSource struct {
	paths   HostPaths
	mounts  []string // configured mount points; nil means discover
	rootDir string
	logger  *slog.Logger

	// statfs is syscall.Statfs; tests replace it to block on a channel.
	// Not gopsutil's disk.Usage: it multiplies by f_bsize, the preferred
	// I/O size, where f_frsize is the unit of the block counts (they
	// differ on NFS and FUSE), its unsigned products wrap above 16 EiB, and
	// it takes no seam to test a hung mount with.
	statfs func(path string, st *syscall.Statfs_t) error
	now    func() time.Time
	sem    chan struct{}

	// mu guards inflight and the abandoned flags of its calls.
	mu       sync.Mutex
	inflight map[string]*statfsCall // by statfs path
}

var _ Source = (*DiskSource)(nil)

// statfsCall is one statfs that may outlive the Collect that issued it.
type statfsCall struct {
	path  string
	since time.Time
	done  chan struct{} // closed once st and err are set
	st    syscall.Statfs_t
	err   error
	// abandoned is set when a Collect stopped waiting for the call.
	abandoned bool
}

// mountEntry is one filesystem as the mount table names it.
type mountEntry struct {
	mountPoint string
	fsType     string
	device     string
	bind       bool // mounts a subtree of a filesystem mounted elsewhere
}

// NewDiskSource returns the disk source of the host at paths. mounts lists
// the mount points to report (host paths); empty means every real
// filesystem. rootDir is the directory whose filesystem fills the node's
// disk fields; "" means "/". logger may be nil.
func NewDiskSource(paths HostPaths, mounts []string, rootDir string, logger *slog.Logger) *DiskSource {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &DiskSource{
		paths:    paths,
		rootDir:  cleanHostPath(rootDir),
		logger:   logger.With("source", "disk"),
		statfs:   syscall.Statfs,
		now:      time.Now,
		sem:      make(chan struct{}, diskStatfsWorkers),
		inflight: make(map[string]*statfsCall),
	}
	for _, m := range mounts {
		s.mounts = append(s.mounts, cleanHostPath(m))
	}
	return s
}

// cleanHostPath makes p an absolute, clean host path; "" is "/".
func cleanHostPath(p string) string {
	if p == "" {
		return "/"
	}
	return filepath.Clean("/" + p)
}

// Name implements Source.
func (s *DiskSource) Name() string { return "disk" }

// Collect implements Source.
func (s *DiskSource) Collect(ctx context.Context) (Apply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect disks: %w", err)
	}
	reported, root, err := s.readMounts(ctx)
	if err != nil {
		return nil, err
	}

	// One statfs per distinct path: the root dir's filesystem is usually
	// one of the reported ones.
	paths := make([]string, 0, len(reported)+1)
	at := make([]int, len(reported)+1) // reported[i]'s index in paths; root last
	for i, m := range reported {
		at[i], paths = addPath(paths, s.paths.Path(m.mountPoint))
	}
	at[len(reported)], paths = addPath(paths, s.paths.Path(root.mountPoint))
	results := s.statAll(ctx, paths)

	disks := make([]model.DiskMetrics, len(reported))
	for i, m := range reported {
		disks[i] = diskMetrics(m, results[at[i]])
	}
	rootRes := results[at[len(reported)]]
	rootDisk := diskMetrics(root, rootRes)

	apply := func(r *model.NodeReport) {
		r.Node.Disks = disks
		if rootDisk.Available {
			r.Node.DiskCapacity = rootDisk.Capacity
			r.Node.DiskUsage = rootDisk.Used
			r.Node.DiskUsageRate = rootDisk.UsageRate
		}
	}
	if rootRes.err != nil {
		return apply, fmt.Errorf("stat root dir %s on mount %s: %w", s.rootDir, root.mountPoint, rootRes.err)
	}
	return apply, nil
}

// diskMetrics turns a statfs answer into the model. Like df, the usage rate
// is used over used plus the space available to unprivileged users, so the
// blocks reserved for root count as unusable rather than free.
func diskMetrics(m mountEntry, res statfsResult) model.DiskMetrics {
	d := model.DiskMetrics{Device: m.device, MountPoint: m.mountPoint, FSType: m.fsType}
	if res.err != nil {
		d.Unavailable = res.err.Error()
		return d
	}
	st := &res.st
	// Frsize is the unit of the block counts; Bsize is only the preferred
	// I/O size, which differs on some filesystems.
	bsize := uint64(st.Frsize)
	if bsize == 0 {
		bsize = uint64(st.Bsize)
	}
	// Network filesystems report sizes up to 8 EiB and beyond: the products
	// saturate at MaxInt64 rather than wrap into negative bytes, which the
	// aggregator would refuse along with the whole report.
	d.Capacity = bytesOf(st.Blocks, bsize)
	d.Used = bytesOf(st.Blocks-min(st.Bfree, st.Blocks), bsize)
	d.Free = bytesOf(st.Bavail, bsize)
	d.UsageRate = percentOf(float64(d.Used), float64(d.Used)+float64(d.Free))
	d.Inodes = st.Files
	d.InodesUsed = st.Files - min(st.Ffree, st.Files)
	d.InodesRate = percentOf(float64(d.InodesUsed), float64(d.Inodes))
	d.Available = true
	return d
}

// errNotStarted reports a mount whose statfs never got a worker: the pool
// was busy, usually with hung mounts, until the deadline.
var errNotStarted = fmt.Errorf("statfs not started: all %d workers busy until the deadline", diskStatfsWorkers)

type statfsResult struct {
	st  syscall.Statfs_t
	err error
}

// statAll runs statfs on every path through the worker pool and waits for
// the answers until shortly before ctx's deadline.
func (s *DiskSource) statAll(ctx context.Context, paths []string) []statfsResult {
	wctx, cancel := statfsDeadline(ctx)
	defer cancel()

	results := make([]statfsResult, len(paths))
	calls := make([]*statfsCall, len(paths))
	for i, p := range paths {
		s.mu.Lock()
		c := s.inflight[p]
		s.mu.Unlock()
		if c != nil && !isClosed(c.done) {
			results[i].err = fmt.Errorf("statfs still blocked since %s", c.since.UTC().Format(time.RFC3339))
			continue
		}
		// Checked before the select, which picks at random among ready
		// cases: once the deadline passed, no new call starts.
		if wctx.Err() != nil {
			results[i].err = errNotStarted
			continue
		}
		select {
		case s.sem <- struct{}{}:
		case <-wctx.Done():
			results[i].err = errNotStarted
			continue
		}
		c = &statfsCall{path: p, since: s.now(), done: make(chan struct{})}
		s.mu.Lock()
		s.inflight[p] = c
		s.mu.Unlock()
		go s.runStatfs(c)
		calls[i] = c
	}

	for i, c := range calls {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		case <-wctx.Done():
		}
		if isClosed(c.done) {
			results[i] = statfsResult{st: c.st, err: c.err}
			continue
		}
		s.mu.Lock()
		c.abandoned = true
		s.mu.Unlock()
		s.logger.Warn("statfs blocked, reporting mount unavailable until it answers", "path", c.path)
		results[i].err = fmt.Errorf("statfs blocked since %s: no answer before the deadline", c.since.UTC().Format(time.RFC3339))
	}
	return results
}

// runStatfs is the body of one pool worker.
func (s *DiskSource) runStatfs(c *statfsCall) {
	err := s.statfs(c.path, &c.st)
	if err != nil {
		c.err = fmt.Errorf("statfs: %w", err)
	}
	<-s.sem
	close(c.done)

	s.mu.Lock()
	if s.inflight[c.path] == c {
		delete(s.inflight, c.path)
	}
	abandoned := c.abandoned
	s.mu.Unlock()
	if abandoned {
		s.logger.Info("blocked statfs answered", "path", c.path, "blocked", s.now().Sub(c.since).String())
	}
}

// statfsDeadline is when Collect stops waiting for statfs: a little before
// ctx's deadline, or diskDefaultDeadline from now when ctx has none.
func statfsDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, diskDefaultDeadline)
	}
	margin := max(min(time.Until(d)/10, diskDeadlineMargin), 0)
	return context.WithDeadline(ctx, d.Add(-margin))
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// addPath returns p's index in list, appending it when absent.
func addPath(list []string, p string) (int, []string) {
	for i, v := range list {
		if v == p {
			return i, list
		}
	}
	return len(list), append(list, p)
}

// readMounts reads the host's mount table through gopsutil and returns the
// filesystems to report and the one holding the root dir. gopsutil reads
// PID 1's table (the host's mount namespace) and falls back to the agent's
// own (it equals the host's when the agent runs on the host, where PID 1's
// may be hidden by hidepid).
func (s *DiskSource) readMounts(ctx context.Context) (reported []mountEntry, root mountEntry, err error) {
	parts, err := disk.PartitionsWithContext(s.paths.context(ctx), true)
	if err != nil {
		if s.mounts == nil {
			return nil, mountEntry{}, fmt.Errorf("read mount table: %w", err)
		}
		// A configured list can still be reported, without device names.
		parts = nil
	}

	// The best (longest) mount point holding each target: the root dir
	// and, when configured, each listed mount.
	targets := append(make([]string, 0, len(s.mounts)+1), s.rootDir)
	targets = append(targets, s.mounts...)
	best := make([]mountEntry, len(targets))

	for _, p := range parts {
		mp := p.Mountpoint
		if mp == "" || mp[0] != '/' || p.Fstype == "" {
			continue
		}
		e := mountEntry{
			mountPoint: mp,
			fsType:     p.Fstype,
			// gopsutil unescapes the mount point but not the source.
			device: unescapeMountString(p.Device),
			bind:   slices.Contains(p.Opts, "bind"),
		}
		for i, t := range targets {
			// >= so that a later mount over the same point, which hides
			// the earlier one, wins.
			if mountHolds(mp, t) && len(mp) >= len(best[i].mountPoint) {
				best[i] = e
			}
		}
		if s.mounts != nil {
			continue
		}
		// A mount over a reported mount point hides it.
		for i := range reported {
			if reported[i].mountPoint == mp {
				reported = append(reported[:i], reported[i+1:]...)
				break
			}
		}
		if discoverable(p.Fstype, mp) {
			reported = append(reported, e)
		}
	}

	for i := range best {
		if best[i].mountPoint == "" {
			// No table (or no "/" in it): stat the directory itself.
			best[i].mountPoint = targets[i]
		}
	}
	root = best[0]
	if s.mounts != nil {
		reported = make([]mountEntry, len(s.mounts))
		for i, m := range s.mounts {
			reported[i] = best[i+1]
			reported[i].mountPoint = m
		}
		return reported, root, nil
	}
	return dedupeBindMounts(reported), root, nil
}

// discoverable reports whether a mount is node storage worth listing.
func discoverable(fsType, mountPoint string) bool {
	if pseudoFSTypes[fsType] {
		return false
	}
	for _, p := range ignoredMountPrefixes {
		if strings.HasPrefix(mountPoint, p) {
			return false
		}
	}
	for _, d := range kubeletVolumeDirs {
		if strings.Contains(mountPoint, d) {
			return false
		}
	}
	return true
}

// dedupeBindMounts keeps one entry per device: bind mounts show the same
// filesystem again (kubelet and container runtimes bind-mount a lot).
// gopsutil gives every mount of one block device (major:minor) the device
// name of its first mount, so the name is the key. The entry that is not a
// bind mount (it mounts the filesystem's own root) is kept, else the first.
func dedupeBindMounts(in []mountEntry) []mountEntry {
	out := in[:0]
next:
	for _, m := range in {
		for j := range out {
			if out[j].device == m.device {
				if out[j].bind && !m.bind {
					out[j] = m
				}
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// mountHolds reports whether the directory dir lies on or under mount
// point mp.
func mountHolds(mp, dir string) bool {
	if mp == "/" {
		return true
	}
	if !strings.HasPrefix(dir, mp) {
		return false
	}
	return len(dir) == len(mp) || dir[len(mp)] == '/'
}

// unescapeMountString decodes the kernel's octal escapes of space, tab,
// newline and backslash (\040, \011, \012, \134) in a mount table field.
func unescapeMountString(p string) string {
	if strings.IndexByte(p, '\\') < 0 {
		return p
	}
	dst := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+3 < len(p) && isOctal(p[i+1]) && isOctal(p[i+2]) && isOctal(p[i+3]) {
			c = (p[i+1]-'0')<<6 | (p[i+2]-'0')<<3 | (p[i+3] - '0')
			i += 3
		}
		dst = append(dst, c)
	}
	return string(dst)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// bytesOf is blocks × size in bytes, saturated at the largest int64.
func bytesOf(blocks, size uint64) int64 {
	if size != 0 && blocks > math.MaxInt64/size {
		return math.MaxInt64
	}
	return int64(blocks * size)
}
