// Package vm finds the cluster's virtual machines (KubeVirt
// VirtualMachineInstances and custom VM resources described in config),
// matches each to its virt-launcher pod, and turns pod usage and the agents'
// PVC volume stats into the VM view of seed 003: allocated CPU and memory,
// CPU, memory and disk usage in percent, stats, events and the /api/vms
// endpoints.
//
// Nothing here imports KubeVirt: objects are read as unstructured data
// through a dynamic informer, so the aggregator keeps working (with an empty
// VM list) on clusters without KubeVirt.
package vm

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// SourceKubeVirt is the source of VMs read from KubeVirt
// VirtualMachineInstances; custom resources use their configured name.
const SourceKubeVirt = "kubevirt"

// KubeVirtGVR is the resource watched for KubeVirt VMs. VirtualMachineInstances,
// not VirtualMachines, because only the instance has a phase, a node, a pod
// and a UID that the launcher pod points back to.
var KubeVirtGVR = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances"}

// KubeVirt's links between a VMI and its virt-launcher pod.
const (
	// LabelCreatedBy holds the VMI's UID on its launcher pod.
	LabelCreatedBy = "kubevirt.io/created-by"
	// AnnotationDomain holds the VMI's name on its launcher pod.
	AnnotationDomain = "kubevirt.io/domain"
	// KindVMI is the kind in the launcher pod's owner reference.
	KindVMI = "VirtualMachineInstance"
	// LauncherPrefix starts a launcher pod's name: virt-launcher-{vmName}-{hash}.
	LauncherPrefix = "virt-launcher-"
)

// PhaseRunning is the status of a VM that has metrics. VMI phases are
// Pending, Scheduling, Scheduled, Running, Succeeded, Failed and Unknown.
const PhaseRunning = "Running"

// phaseUnknown stands in for an empty phase (a VMI just created, a custom
// resource without status) so that stats never count an empty status.
const phaseUnknown = "Unknown"

// errMalformed marks an object whose fields cannot be read; the watcher
// skips it and counts it.
var errMalformed = errors.New("vm: malformed object")

// Object is one VM as read from its resource, before pods and usage are
// looked at. Its slices are shared read-only once the watcher hands it out.
type Object struct {
	// Source is SourceKubeVirt or the custom resource's configured name.
	Source    string
	UID       string
	Namespace string
	Name      string
	// VMName is the name KubeVirt knows the VM by: the launcher pod is
	// virt-launcher-{VMName}-{hash} and carries it in kubevirt.io/domain.
	// For a VMI it is the VMI's name; for a custom resource the value at
	// its vm_name field path (metadata.name when the path is unset).
	VMName string
	// CPU is allocated millicores, Memory allocated bytes; 0 when unknown.
	CPU    int64
	Memory int64
	// MemoryQuantity is the memory as written in the resource ("4Gi").
	MemoryQuantity string
	// Phase is the VMI phase or the custom resource's status, "Unknown"
	// when empty.
	Phase      string
	Node       string
	Interfaces []Interface
	PVCs       []PVC
}

// Interface is one network interface as the VMI's status reports it.
type Interface struct {
	Name string
	IP   string
}

// PVC is a claim behind one of the VM's disks. Capacity is bytes as the
// custom resource states it, 0 when unknown (VMIs never state it).
type PVC struct {
	Name     string
	Capacity int64
}

// ParseVMI reads a kubevirt.io/v1 VirtualMachineInstance. Absent fields
// are left zero; fields of the wrong type or unparsable quantities make the
// object malformed, since guessing would publish wrong allocations.
func ParseVMI(u *unstructured.Unstructured) (Object, error) {
	o, err := parseMeta(u, SourceKubeVirt)
	if err != nil {
		return Object{}, err
	}
	o.VMName = o.Name
	obj := u.Object

	o.CPU, err = vmiCPU(obj)
	if err != nil {
		return Object{}, malformed("cpu", err)
	}
	o.MemoryQuantity, o.Memory, err = vmiMemory(obj)
	if err != nil {
		return Object{}, malformed("memory", err)
	}
	if o.Phase, err = optString(obj, "status", "phase"); err != nil {
		return Object{}, malformed("status.phase", err)
	}
	if o.Phase == "" {
		o.Phase = phaseUnknown
	}
	if o.Node, err = optString(obj, "status", "nodeName"); err != nil {
		return Object{}, malformed("status.nodeName", err)
	}
	if o.Interfaces, err = vmiInterfaces(obj); err != nil {
		return Object{}, malformed("status.interfaces", err)
	}
	if o.PVCs, err = vmiPVCs(obj); err != nil {
		return Object{}, malformed("spec.volumes", err)
	}
	return o, nil
}

// vmiCPU follows KubeVirt: an explicit topology gives cores × sockets ×
// threads vCPUs (each defaulting to 1); without one the vCPUs come from
// the resources, requests before limits.
func vmiCPU(obj map[string]any) (int64, error) {
	topo, found, err := unstructured.NestedMap(obj, "spec", "domain", "cpu")
	if err != nil {
		return 0, err
	}
	if found {
		n := int64(1)
		set := false
		for _, k := range []string{"cores", "sockets", "threads"} {
			v, ok := topo[k]
			if !ok {
				continue
			}
			c, err := wholeNumber(v)
			if err != nil {
				return 0, fmt.Errorf("spec.domain.cpu.%s: %w", k, err)
			}
			if c < 1 {
				return 0, fmt.Errorf("spec.domain.cpu.%s: %d is not positive", k, c)
			}
			n *= c
			set = true
		}
		if set {
			return n * 1000, nil
		}
	}
	for _, kind := range []string{"requests", "limits"} {
		v, found, err := nestedValue(obj, "spec", "domain", "resources", kind, "cpu")
		if err != nil {
			return 0, err
		}
		if found {
			return cpuMillis(v)
		}
	}
	return 0, nil
}

// vmiMemory prefers the guest memory (what the VM sees) over the pod's
// memory request, which may include overhead.
func vmiMemory(obj map[string]any) (string, int64, error) {
	paths := [][]string{
		{"spec", "domain", "memory", "guest"},
		{"spec", "domain", "resources", "requests", "memory"},
		{"spec", "domain", "resources", "limits", "memory"},
	}
	for _, p := range paths {
		v, found, err := nestedValue(obj, p...)
		if err != nil {
			return "", 0, err
		}
		if found {
			return memoryQuantity(v)
		}
	}
	return "", 0, nil
}

func vmiInterfaces(obj map[string]any) ([]Interface, error) {
	items, found, err := nestedList(obj, "status", "interfaces")
	if err != nil || !found {
		return nil, err
	}
	out := make([]Interface, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is %T, not an object", i, it)
		}
		name, err := optString(m, "name")
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		ip, err := optString(m, "ipAddress")
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		if name == "" && ip == "" {
			continue
		}
		out = append(out, Interface{Name: name, IP: ip})
	}
	return out, nil
}

// vmiPVCs lists the claims behind the VMI's volumes. A DataVolume's PVC
// has the DataVolume's name, so both read the same way.
func vmiPVCs(obj map[string]any) ([]PVC, error) {
	items, found, err := nestedList(obj, "spec", "volumes")
	if err != nil || !found {
		return nil, err
	}
	var out []PVC
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is %T, not an object", i, it)
		}
		claim, err := optString(m, "persistentVolumeClaim", "claimName")
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		if claim == "" {
			if claim, err = optString(m, "dataVolume", "name"); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		if claim != "" {
			out = append(out, PVC{Name: claim})
		}
	}
	return out, nil
}

// ParseCustom reads a custom VM resource through the field paths of r.
// A path that is unset or absent in the object leaves its field zero; a
// value of the wrong type makes the object malformed.
func ParseCustom(r config.CustomVMResource, u *unstructured.Unstructured) (Object, error) {
	o, err := parseMeta(u, r.Name)
	if err != nil {
		return Object{}, err
	}
	f := r.Fields
	obj := u.Object

	o.VMName = o.Name
	if name, err := pathString(obj, f.VMName); err != nil {
		return Object{}, malformed(f.VMName, err)
	} else if name != "" {
		o.VMName = name
	}
	if v, found, err := path(obj, f.CPU); err != nil {
		return Object{}, malformed(f.CPU, err)
	} else if found {
		if o.CPU, err = cpuCores(v); err != nil {
			return Object{}, malformed(f.CPU, err)
		}
	}
	if v, found, err := path(obj, f.Memory); err != nil {
		return Object{}, malformed(f.Memory, err)
	} else if found {
		if o.MemoryQuantity, o.Memory, err = memoryQuantity(v); err != nil {
			return Object{}, malformed(f.Memory, err)
		}
	}
	if o.Phase, err = pathString(obj, f.Status); err != nil {
		return Object{}, malformed(f.Status, err)
	}
	if o.Phase == "" {
		o.Phase = phaseUnknown
	}
	if o.Node, err = pathString(obj, f.Node); err != nil {
		return Object{}, malformed(f.Node, err)
	}
	if o.PVCs, err = customPVCs(obj, f); err != nil {
		return Object{}, malformed(f.Volumes, err)
	}
	return o, nil
}

func customPVCs(obj map[string]any, f config.CustomVMFields) ([]PVC, error) {
	v, found, err := path(obj, f.Volumes)
	if err != nil || !found || f.PVCName == "" {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%T is not a list", v)
	}
	var out []PVC
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is %T, not an object", i, it)
		}
		name, err := pathString(m, f.PVCName)
		if err != nil {
			return nil, fmt.Errorf("item %d: %s: %w", i, f.PVCName, err)
		}
		if name == "" {
			continue
		}
		p := PVC{Name: name}
		if c, found, err := path(m, f.Capacity); err != nil {
			return nil, fmt.Errorf("item %d: %s: %w", i, f.Capacity, err)
		} else if found {
			if _, p.Capacity, err = memoryQuantity(c); err != nil {
				return nil, fmt.Errorf("item %d: %s: %w", i, f.Capacity, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func parseMeta(u *unstructured.Unstructured, source string) (Object, error) {
	if u == nil || u.Object == nil {
		return Object{}, fmt.Errorf("%w: empty object", errMalformed)
	}
	o := Object{Source: source, UID: string(u.GetUID()), Namespace: u.GetNamespace(), Name: u.GetName()}
	if o.Name == "" {
		return Object{}, fmt.Errorf("%w: metadata.name is empty", errMalformed)
	}
	return o, nil
}

func malformed(field string, err error) error {
	return fmt.Errorf("%w: %s: %w", errMalformed, field, err)
}

// path reads a dot-separated field path. An empty path is "not
// configured" and reads as absent, like a path missing in the object.
func path(obj map[string]any, p string) (any, bool, error) {
	if p == "" {
		return nil, false, nil
	}
	return nestedValue(obj, strings.Split(p, ".")...)
}

func pathString(obj map[string]any, p string) (string, error) {
	v, found, err := path(obj, p)
	if err != nil || !found || v == nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%T is not a string", v)
	}
	return s, nil
}

// nestedValue walks maps; reaching a non-map before the end is an error
// (the object has another shape than configured), a missing key is not.
func nestedValue(obj map[string]any, fields ...string) (any, bool, error) {
	var cur any = obj
	for i, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			if cur == nil {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("%s is %T, not an object", strings.Join(fields[:i], "."), cur)
		}
		if cur, ok = m[f]; !ok {
			return nil, false, nil
		}
	}
	return cur, true, nil
}

func optString(obj map[string]any, fields ...string) (string, error) {
	v, found, err := nestedValue(obj, fields...)
	if err != nil || !found || v == nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is %T, not a string", strings.Join(fields, "."), v)
	}
	return s, nil
}

func nestedList(obj map[string]any, fields ...string) ([]any, bool, error) {
	v, found, err := nestedValue(obj, fields...)
	if err != nil || !found || v == nil {
		return nil, false, err
	}
	l, ok := v.([]any)
	if !ok {
		return nil, false, fmt.Errorf("%s is %T, not a list", strings.Join(fields, "."), v)
	}
	return l, true, nil
}

// wholeNumber accepts the integer forms JSON decoding produces: int64
// from the API server's decoder, float64 from plain encoding/json.
func wholeNumber(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, fmt.Errorf("%v is not a whole number", n)
		}
		return int64(n), nil
	}
	return 0, fmt.Errorf("%T is not a number", v)
}

// cpuCores reads a custom resource's CPU: a number of cores (the seed's
// spec.cpu: 4) or a quantity string ("4", "500m").
func cpuCores(v any) (int64, error) {
	if s, ok := v.(string); ok {
		return cpuMillis(s)
	}
	if f, ok := v.(float64); ok {
		if f < 0 || f > math.MaxInt64/1000 {
			return 0, fmt.Errorf("%v cores out of range", f)
		}
		return int64(math.Round(f * 1000)), nil
	}
	n, err := wholeNumber(v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxInt64/1000 {
		return 0, fmt.Errorf("%d cores out of range", n)
	}
	return n * 1000, nil
}

// cpuMillis reads a CPU quantity as Kubernetes resources write it.
func cpuMillis(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		q, err := resource.ParseQuantity(x)
		if err != nil {
			return 0, fmt.Errorf("cpu %q: %w", x, err)
		}
		if q.Sign() < 0 {
			return 0, fmt.Errorf("cpu %q is negative", x)
		}
		return q.MilliValue(), nil
	default:
		return cpuCores(v)
	}
}

// memoryQuantity returns the quantity as written and its bytes. A bare
// number is bytes and is written back as a binary quantity ("4Gi").
func memoryQuantity(v any) (string, int64, error) {
	if s, ok := v.(string); ok {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return "", 0, fmt.Errorf("quantity %q: %w", s, err)
		}
		if q.Sign() < 0 {
			return "", 0, fmt.Errorf("quantity %q is negative", s)
		}
		return s, q.Value(), nil
	}
	n, err := wholeNumber(v)
	if err != nil {
		return "", 0, err
	}
	if n < 0 {
		return "", 0, fmt.Errorf("%d bytes is negative", n)
	}
	return formatBytes(n), n, nil
}

// formatBytes writes bytes the way Kubernetes writes memory: "4Gi",
// "1536Mi".
func formatBytes(n int64) string {
	return resource.NewQuantity(n, resource.BinarySI).String()
}

// cores turns allocated millicores into the whole vCPUs the seed's cpu
// field shows, rounding up as KubeVirt does for fractional requests.
func cores(millis int64) int64 {
	return (millis + 999) / 1000
}

// key is namespace/name, the form pods and VMs are matched by.
func key(namespace, name string) string {
	return namespace + "/" + name
}

// interfaceStrings renders interfaces as "name=ip" for VMDetail.
func interfaceStrings(ifs []Interface) []string {
	if len(ifs) == 0 {
		return nil
	}
	out := make([]string, 0, len(ifs))
	for _, i := range ifs {
		switch {
		case i.Name == "":
			out = append(out, i.IP)
		case i.IP == "":
			out = append(out, i.Name)
		default:
			out = append(out, i.Name+"="+i.IP)
		}
	}
	return out
}
