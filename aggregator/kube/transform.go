package kube

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// keptAnnotations are the only annotations the aggregator reads
// (KubeVirt's domain name on a virt-launcher pod, for the VM views); every
// other annotation is dropped before an object enters the cache.
var keptAnnotations = []string{"kubevirt.io/domain"}

// stripForCache is the informers' transform: before an object enters the
// cache it is replaced by a copy holding only what the aggregator reads.
// A decoded Pod carries its whole spec (environment, probes, volumes,
// tolerations), managedFields and annotations, several kilobytes that no
// snapshot uses; a Node carries its list of cached images. At thousands of
// nodes these copies were most of the aggregator's memory (see
// docs/benchmarks.md, the fleet benchmark). Objects keep their Go types,
// so the listers, the state build, the diagnosis and the VM views read
// them unchanged; TestStripForCacheKeepsWhatTheBuildReads holds the build's
// output on a stripped cache equal to the full one.
func stripForCache(obj any) (any, error) { return newCompactor().transform(obj) }

// compactor is stripForCache with an interner shared by every object it
// compacts, so that equal labels, resources, owners and tolerations are
// held once: one compactor serves all of a Cluster's informers.
type compactor struct{ in *interner }

func newCompactor() *compactor { return &compactor{in: newInterner()} }

func (c *compactor) transform(obj any) (any, error) {
	switch o := obj.(type) {
	case cache.DeletedFinalStateUnknown:
		return obj, nil
	case *corev1.Pod:
		return c.pod(o), nil
	case *corev1.Node:
		return c.node(o), nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil //nolint:nilerr // not an object with metadata: keep as is
	}
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
			delete(a, corev1.LastAppliedConfigAnnotation)
		}
	}
	return obj, nil
}

// compactMeta keeps the identity, labels, owners and lifecycle times.
func (c *compactor) meta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            c.in.labelsOf(m.Labels),
		Annotations:       keepAnnotations(m.Annotations),
		OwnerReferences:   c.in.ownersOf(m.OwnerReferences),
	}
}

func keepAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for _, k := range keptAnnotations {
		if v, ok := in[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keptAnnotations))
			}
			out[k] = v
		}
	}
	return out
}

// compactPod keeps the pod's node, containers' names, images, resources
// and restart policies (sidecars), pod-level resources and overhead (the
// resource helpers read them), what decides where it may be scheduled
// (node selector, affinity, tolerations: the diagnosis of a pending pod),
// the PVC volumes, and the status but for pod and host addresses.
func (c *compactor) pod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		TypeMeta:   p.TypeMeta,
		ObjectMeta: c.meta(&p.ObjectMeta),
		Spec: corev1.PodSpec{
			NodeName:          p.Spec.NodeName,
			Containers:        c.containers(p.Spec.Containers),
			InitContainers:    c.containers(p.Spec.InitContainers),
			RestartPolicy:     p.Spec.RestartPolicy,
			Priority:          p.Spec.Priority,
			PriorityClassName: p.Spec.PriorityClassName,
			Overhead:          p.Spec.Overhead,
			Resources:         p.Spec.Resources,
			SchedulerName:     p.Spec.SchedulerName,
			NodeSelector:      p.Spec.NodeSelector,
			Affinity:          p.Spec.Affinity,
			Tolerations:       c.in.tolerationsOf(p.Spec.Tolerations),
		},
		Status: p.Status,
	}
	for i := range p.Spec.Volumes {
		if v := &p.Spec.Volumes[i]; v.PersistentVolumeClaim != nil {
			out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: v.PersistentVolumeClaim}})
		}
	}
	st := &out.Status
	st.HostIPs, st.PodIPs = nil, nil
	st.ContainerStatuses = compactStatuses(st.ContainerStatuses)
	st.InitContainerStatuses = compactStatuses(st.InitContainerStatuses)
	st.EphemeralContainerStatuses = nil
	return out
}

func (c *compactor) containers(in []corev1.Container) []corev1.Container {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i := range in {
		ct := &in[i]
		res := ct.Resources
		res.Requests, res.Limits = c.in.resourcesOf(res.Requests), c.in.resourcesOf(res.Limits)
		out[i] = corev1.Container{Name: ct.Name, Image: ct.Image, Resources: res, RestartPolicy: ct.RestartPolicy}
	}
	return out
}

func compactStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i := range in {
		s := in[i]
		// ContainerID stays: it tells one termination from the next.
		s.ImageID, s.VolumeMounts, s.User = "", nil, nil
		out[i] = s
	}
	return out
}

// compactNode keeps the node's spec (taints, unschedulable), capacity,
// allocatable, conditions, addresses, kubelet endpoint and system info; the
// list of cached images and attached volumes go.
func (c *compactor) node(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: c.meta(&n.ObjectMeta),
		Spec:       n.Spec,
		Status:     n.Status,
	}
	out.Status.Images, out.Status.VolumesInUse, out.Status.VolumesAttached = nil, nil, nil
	return out
}
