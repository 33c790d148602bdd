//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	vmiGVR = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances"}
)

func (cp *controlPlane) dynamic(t *testing.T) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(cp.rest)
	require.NoError(t, err)
	return d
}

// installVMICRD installs KubeVirt's VirtualMachineInstance CRD with a
// minimal schema (every field preserved) and waits until it is served.
func (cp *controlPlane) installVMICRD(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	d := cp.dynamic(t)
	_, err := d.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "virtualmachineinstances.kubevirt.io"},
		"spec": map[string]any{
			"group": "kubevirt.io",
			"scope": "Namespaced",
			"names": map[string]any{
				"plural": "virtualmachineinstances", "singular": "virtualmachineinstance",
				"kind": "VirtualMachineInstance", "listKind": "VirtualMachineInstanceList", "shortNames": []any{"vmi", "vmis"},
			},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		list, err := cp.client.Discovery().ServerResourcesForGroupVersion("kubevirt.io/v1")
		if err != nil {
			return false
		}
		for _, r := range list.APIResources {
			if r.Name == "virtualmachineinstances" {
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "VMI CRD not served")
}

// createVMI creates a running VMI on node with cores vCPUs, guest memory
// and one PVC-backed disk.
func (cp *controlPlane) createVMI(t *testing.T, ns, name, node string, cores int64, memory, pvc string) *unstructured.Unstructured {
	t.Helper()
	obj, err := cp.dynamic(t).Resource(vmiGVR).Namespace(ns).Create(context.Background(), &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "VirtualMachineInstance",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"domain": map[string]any{
				"cpu":    map[string]any{"cores": cores, "sockets": int64(1), "threads": int64(1)},
				"memory": map[string]any{"guest": memory},
			},
			"volumes": []any{map[string]any{"name": "rootdisk", "persistentVolumeClaim": map[string]any{"claimName": pvc}}},
		},
		"status": map[string]any{
			"phase":      "Running",
			"nodeName":   node,
			"interfaces": []any{map[string]any{"name": "default", "ipAddress": "10.244.1.20"}},
		},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	return obj
}

// setVMIPhase changes a VMI's status.phase (the CRD has no status
// subresource, so the whole object is updated).
func (cp *controlPlane) setVMIPhase(t *testing.T, ns, name, phase string) {
	t.Helper()
	ctx := context.Background()
	r := cp.dynamic(t).Resource(vmiGVR).Namespace(ns)
	obj, err := r.Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, unstructured.SetNestedField(obj.Object, phase, "status", "phase"))
	_, err = r.Update(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
}
