package model

// CgroupStats is what the agent read from its node's pod cgroups: the
// kernel's own memory counters, which see an OOM kill even when the kubelet
// does not (a child process killed while the container's main process
// lives on leaves no termination and no Kubernetes event).
type CgroupStats struct {
	// Version is the cgroup hierarchy: 1 or 2.
	Version int `json:"version"`
	// Driver is the kubelet's cgroup layout: "systemd"
	// (kubepods.slice/kubepods-burstable.slice/...) or "cgroupfs"
	// (kubepods/burstable/...).
	Driver string `json:"driver"`
	// Pods lists every pod cgroup found, by pod UID.
	Pods []PodCgroupStats `json:"pods"`
	// Truncated counts pods or containers left out at the agent's bounds.
	Truncated int `json:"truncated,omitempty"`
}

// PodCgroupStats is one pod's cgroup. The agent knows pods by UID only
// (cgroup names carry no pod name); readers match it to PodStats.UID or the
// Pod object.
type PodCgroupStats struct {
	UID string `json:"uid"`
	// QOSClass is Guaranteed, Burstable or BestEffort, from the cgroup's
	// place in the hierarchy.
	QOSClass string `json:"qosClass,omitempty"`
	// Memory is the pod-level cgroup. In cgroup v2 its memory.events are
	// hierarchical: they still count an OOM kill in a container that has
	// since been restarted and whose own cgroup is gone.
	Memory MemoryCgroup `json:"memory"`
	// Containers are the pod's container cgroups, by runtime container ID
	// (the pod status's containerID without its "containerd://" prefix);
	// the sandbox (pause) container is among them.
	Containers []ContainerCgroupStats `json:"containers,omitempty"`
}

// ContainerCgroupStats is one container's cgroup.
type ContainerCgroupStats struct {
	ID     string       `json:"id"`
	Memory MemoryCgroup `json:"memory"`
}

// MemoryCgroup holds a cgroup's memory counters. Zero counters are left
// out of the JSON; absent means zero or not provided by this kernel.
type MemoryCgroup struct {
	// OOM counts the times the cgroup hit its limit and the OOM killer ran
	// (cgroup v2 memory.events "oom").
	OOM uint64 `json:"oom,omitempty"`
	// OOMKill counts processes the OOM killer killed in the cgroup (v2
	// memory.events "oom_kill"; v1 memory.oom_control "oom_kill", kernels
	// 4.13 and later).
	OOMKill uint64 `json:"oomKill,omitempty"`
	// Max counts the times usage reached the limit and reclaim ran (v2
	// memory.events "max").
	Max uint64 `json:"max,omitempty"`
	// FailCount counts the times usage hit the limit (v1 memory.failcnt).
	FailCount uint64 `json:"failCount,omitempty"`
	// PeakBytes is the highest usage since the cgroup was created (v2
	// memory.peak, kernels 5.19 and later; v1 memory.max_usage_in_bytes).
	PeakBytes int64 `json:"peakBytes,omitempty"`
	// LimitBytes is the cgroup's limit (v2 memory.max, v1
	// memory.limit_in_bytes); 0 when unlimited.
	LimitBytes int64 `json:"limitBytes,omitempty"`
}

// OOMKilled reports whether the counters show at least one OOM kill.
func (m MemoryCgroup) OOMKilled() bool { return m.OOMKill > 0 }
