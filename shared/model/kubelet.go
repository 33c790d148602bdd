package model

import "time"

// KubeletStats is what the agent read from its node's kubelet /stats/summary,
// with CPU computed from cumulative counters between two scrapes.
type KubeletStats struct {
	NodeFS  *FsStats   `json:"nodeFs,omitempty"`
	ImageFS *FsStats   `json:"imageFs,omitempty"`
	Pods    []PodStats `json:"pods"`
}

// FsStats is a filesystem as the kubelet reports it. Pointers are nil when
// the kubelet did not report the value.
type FsStats struct {
	CapacityBytes  *int64  `json:"capacityBytes,omitempty"`
	UsedBytes      *int64  `json:"usedBytes,omitempty"`
	AvailableBytes *int64  `json:"availableBytes,omitempty"`
	Inodes         *uint64 `json:"inodes,omitempty"`
	InodesUsed     *uint64 `json:"inodesUsed,omitempty"`
	InodesFree     *uint64 `json:"inodesFree,omitempty"`
}

// PodStats is one pod's usage from the kubelet.
type PodStats struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       string    `json:"uid"`
	StartTime time.Time `json:"startTime"`
	// CPUUsage in millicores, from the delta of usageCoreNanoSeconds since the
	// previous scrape (or since StartTime on a pod's first scrape).
	CPUUsage              int64            `json:"cpuUsage"`
	MemoryWorkingSet      int64            `json:"memoryWorkingSet"`
	EphemeralStorageUsage int64            `json:"ephemeralStorageUsage"`
	NetworkRxBytesPerSec  float64          `json:"networkRxBytesPerSec"`
	NetworkTxBytesPerSec  float64          `json:"networkTxBytesPerSec"`
	Containers            []ContainerStats `json:"containers"`
	Volumes               []VolumeStats    `json:"volumes,omitempty"`
}

// ContainerStats is one container's usage from the kubelet.
type ContainerStats struct {
	Name             string `json:"name"`
	CPUUsage         int64  `json:"cpuUsage"` // millicores
	MemoryWorkingSet int64  `json:"memoryWorkingSet"`
	RootfsUsed       int64  `json:"rootfsUsed"`
	LogsUsed         int64  `json:"logsUsed"`
}

// VolumeStats is one pod volume. PVC fields are set for volumes backed by a
// PersistentVolumeClaim. UsedBytes is nil when the kubelet reports capacity
// without usage (block-mode volumes): usage unknown, not zero.
type VolumeStats struct {
	Name           string  `json:"name"`
	PVCNamespace   string  `json:"pvcNamespace,omitempty"`
	PVCName        string  `json:"pvcName,omitempty"`
	CapacityBytes  *int64  `json:"capacityBytes,omitempty"`
	UsedBytes      *int64  `json:"usedBytes,omitempty"`
	AvailableBytes *int64  `json:"availableBytes,omitempty"`
	Inodes         *uint64 `json:"inodes,omitempty"`
	InodesUsed     *uint64 `json:"inodesUsed,omitempty"`
}
