package model

import "time"

// VMMetrics is one virtual machine in the shape of seed 003's API answer:
// id, name, namespace, status, cpu, memory, node, metrics. Metrics is nil
// when the VM is not running or its pod's numbers are unavailable.
type VMMetrics struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	Status    string    `json:"status"`
	CPU       int64     `json:"cpu"`    // allocated cores
	Memory    string    `json:"memory"` // allocated, as a quantity ("4Gi")
	Node      string    `json:"node"`
	Metrics   *VMUsage  `json:"metrics"`
	Source    string    `json:"source,omitempty"` // kubevirt or the custom resource's name
	Timestamp time.Time `json:"timestamp,omitzero"`
	Detail    *VMDetail `json:"detail,omitempty"`
}

// VMUsage is a running VM's usage in percent of what it was allocated.
// DiskUsage is nil when no volume stats were found (unknown, not 0).
type VMUsage struct {
	CPUUsage    float64  `json:"cpuUsage"`
	MemoryUsage float64  `json:"memoryUsage"`
	DiskUsage   *float64 `json:"diskUsage"`
}

// VMDetail carries the numbers behind VMUsage.
type VMDetail struct {
	AllocatedCPU    int64    `json:"allocatedCpu"`    // millicores
	AllocatedMemory int64    `json:"allocatedMemory"` // bytes
	LauncherPod     string   `json:"launcherPod,omitempty"`
	PVCs            []string `json:"pvcs,omitempty"`
	DiskCapacity    int64    `json:"diskCapacity,omitempty"`
	DiskUsed        *int64   `json:"diskUsed,omitempty"`
	Interfaces      []string `json:"interfaces,omitempty"`
}
