package vm

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// gi is one GiB, the unit the seed's totalMemory is written in.
const gi = 1 << 30

// StatsView is GET /api/vms/stats: the seed's GetVMStats answer (total,
// running, stopped, error, pending, totalCpu, totalMemory) plus the exact
// byte count and the count of every status as written.
type StatsView struct {
	Total   int `json:"total"`
	Running int `json:"running"`
	Stopped int `json:"stopped"`
	Error   int `json:"error"`
	Pending int `json:"pending"`
	// TotalCPU is allocated cores and TotalMemory allocated memory
	// ("12Gi") over all VMs, running or not, as the seed sums them: it is
	// what the VMs are sized at, not what they hold right now.
	TotalCPU         int64          `json:"totalCpu"`
	TotalMemory      string         `json:"totalMemory"`
	TotalMemoryBytes int64          `json:"totalMemoryBytes"`
	ByStatus         map[string]int `json:"byStatus"`
}

// Stats counts VMs by status and sums their allocations. Statuses fall in
// the seed's buckets: Running; Stopped (and Succeeded, a VMI whose guest
// shut down); Failed or Error; everything else, as in the seed, Pending.
func Stats(vms []*model.VMMetrics) StatsView {
	s := StatsView{ByStatus: map[string]int{}}
	for _, vm := range vms {
		if vm == nil {
			continue
		}
		s.Total++
		s.ByStatus[vm.Status]++
		switch strings.ToLower(vm.Status) {
		case "running":
			s.Running++
		case "stopped", "succeeded":
			s.Stopped++
		case "failed", "error":
			s.Error++
		default:
			s.Pending++
		}
		s.TotalCPU += vm.CPU
		s.TotalMemoryBytes += allocatedMemory(vm)
	}
	s.TotalMemory = formatGi(s.TotalMemoryBytes)
	return s
}

func allocatedMemory(vm *model.VMMetrics) int64 {
	if vm.Detail != nil {
		return vm.Detail.AllocatedMemory
	}
	if q, err := resource.ParseQuantity(vm.Memory); err == nil {
		return q.Value()
	}
	return 0
}

// formatGi writes the seed's "%dGi" when the total is whole GiB, and the
// exact binary quantity ("1536Mi") otherwise rather than rounding it.
func formatGi(b int64) string {
	if b%gi == 0 {
		return fmt.Sprintf("%dGi", b/gi)
	}
	return formatBytes(b)
}
