package config

// VMConfig is the "vms:" block: where the aggregator finds virtual machines.
type VMConfig struct {
	// KubeVirt watches kubevirt.io/v1 VirtualMachineInstances when the CRD
	// is installed (vms.kubevirt.enabled).
	KubeVirt bool
	// Custom lists custom VM resources (vms.custom), read only when
	// metrics.enable_custom is true.
	Custom []CustomVMResource
}

// CustomVMResource maps a custom VM resource, such as the seed's Wukong CRD,
// onto the VM model through field paths (dot-separated, e.g. "status.vmName").
type CustomVMResource struct {
	Name     string         `mapstructure:"name"` // shown as the VM's source
	Group    string         `mapstructure:"group"`
	Version  string         `mapstructure:"version"`
	Resource string         `mapstructure:"resource"` // plural, e.g. wukongs
	Fields   CustomVMFields `mapstructure:"fields"`
}

// CustomVMFields are the field paths of a custom VM resource. Empty paths are
// not read; VMName defaults to metadata.name.
type CustomVMFields struct {
	VMName   string `mapstructure:"vm_name"`  // e.g. status.vmName: the name in virt-launcher-{vmName}-{hash}
	CPU      string `mapstructure:"cpu"`      // cores, e.g. spec.cpu
	Memory   string `mapstructure:"memory"`   // quantity, e.g. spec.memory ("4Gi")
	Status   string `mapstructure:"status"`   // e.g. status.phase ("Running")
	Node     string `mapstructure:"node"`     // e.g. status.nodeName
	Volumes  string `mapstructure:"volumes"`  // list, e.g. status.volumes
	PVCName  string `mapstructure:"pvc_name"` // path inside each volume item, e.g. pvcName
	Capacity string `mapstructure:"capacity"` // path inside each volume item, e.g. capacity
}
