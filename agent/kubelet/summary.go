package kubelet

import "time"

// The kubelet's /stats/summary answer (k8s.io/kubelet/pkg/apis/stats/v1alpha1),
// reduced to the fields the mapper reads, with the same JSON names. The
// agent decodes into these instead of the upstream types because those
// import k8s.io/apimachinery (for metav1.Time), which brings its runtime,
// serializers and klog into the agent's executable: about a fifth of it,
// and of its resident memory. The tests build upstream values and decode
// their JSON into these, so a renamed field fails them.

// Summary is a node's stats summary.
type Summary struct {
	Node NodeStats  `json:"node"`
	Pods []PodStats `json:"pods"`
}

// NodeStats is the node-level part of a summary.
type NodeStats struct {
	NodeName  string        `json:"nodeName"`
	StartTime time.Time     `json:"startTime"`
	Fs        *FsStats      `json:"fs,omitempty"`
	Runtime   *RuntimeStats `json:"runtime,omitempty"`
}

// RuntimeStats holds the container runtime's filesystems.
type RuntimeStats struct {
	ImageFs *FsStats `json:"imageFs,omitempty"`
}

// PodStats is one pod's stats.
type PodStats struct {
	PodRef           PodReference     `json:"podRef"`
	StartTime        time.Time        `json:"startTime"`
	Containers       []ContainerStats `json:"containers"`
	CPU              *CPUStats        `json:"cpu,omitempty"`
	Memory           *MemoryStats     `json:"memory,omitempty"`
	Network          *NetworkStats    `json:"network,omitempty"`
	VolumeStats      []VolumeStats    `json:"volume,omitempty"`
	EphemeralStorage *FsStats         `json:"ephemeral-storage,omitempty"`
}

// PodReference names a pod.
type PodReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

// ContainerStats is one container's stats.
type ContainerStats struct {
	Name      string       `json:"name"`
	StartTime time.Time    `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
	Rootfs    *FsStats     `json:"rootfs,omitempty"`
	Logs      *FsStats     `json:"logs,omitempty"`
}

// CPUStats is CPU usage: the cumulative counter and the kubelet's recent rate.
type CPUStats struct {
	Time                 time.Time `json:"time"`
	UsageNanoCores       *uint64   `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64   `json:"usageCoreNanoSeconds,omitempty"`
}

// MemoryStats is memory usage.
type MemoryStats struct {
	Time            time.Time `json:"time"`
	WorkingSetBytes *uint64   `json:"workingSetBytes,omitempty"`
}

// NetworkStats is a pod's network usage: its default interface inline and
// every interface in Interfaces.
type NetworkStats struct {
	Time time.Time `json:"time"`
	InterfaceStats
	Interfaces []InterfaceStats `json:"interfaces,omitempty"`
}

// InterfaceStats is one interface's cumulative byte counters.
type InterfaceStats struct {
	Name    string  `json:"name"`
	RxBytes *uint64 `json:"rxBytes,omitempty"`
	TxBytes *uint64 `json:"txBytes,omitempty"`
}

// FsStats is a filesystem's size and usage.
type FsStats struct {
	Time           time.Time `json:"time"`
	AvailableBytes *uint64   `json:"availableBytes,omitempty"`
	CapacityBytes  *uint64   `json:"capacityBytes,omitempty"`
	UsedBytes      *uint64   `json:"usedBytes,omitempty"`
	InodesFree     *uint64   `json:"inodesFree,omitempty"`
	Inodes         *uint64   `json:"inodes,omitempty"`
	InodesUsed     *uint64   `json:"inodesUsed,omitempty"`
}

// VolumeStats is one pod volume's filesystem, and its claim when it has one.
type VolumeStats struct {
	FsStats
	Name   string        `json:"name,omitempty"`
	PVCRef *PVCReference `json:"pvcRef,omitempty"`
}

// PVCReference names a PersistentVolumeClaim.
type PVCReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}
