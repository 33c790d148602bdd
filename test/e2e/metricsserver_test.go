//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// registerMetricsServer points v1beta1.metrics.k8s.io at a metrics-server
// on 127.0.0.1:port: an APIService whose Service is an ExternalName for
// localhost (the API server refuses loopback Endpoints).
func (cp *controlPlane) registerMetricsServer(t *testing.T, port int) {
	t.Helper()
	ctx := context.Background()
	_, err := cp.client.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port)}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	dyn, err := dynamic.NewForConfig(cp.rest)
	require.NoError(t, err)
	_, err = dyn.Resource(apiServiceGVR).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.metrics.k8s.io"},
		"spec": map[string]any{
			"group": "metrics.k8s.io", "version": "v1beta1",
			"service":               map[string]any{"namespace": "kube-system", "name": "metrics-server", "port": int64(port)},
			"insecureSkipTLSVerify": true,
			"groupPriorityMinimum":  int64(100),
			"versionPriority":       int64(100),
		},
	}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
}

// startMetricsServer runs the real metrics-server against the API server;
// it scrapes each node's fake kubelet at the node's InternalIP and kubelet
// port every 10 s (its minimum resolution). extra flags come last and win.
func (cp *controlPlane) startMetricsServer(t *testing.T, port int, extra ...string) *process {
	t.Helper()
	args := []string{
		"--secure-port", strconv.Itoa(port),
		"--bind-address", "127.0.0.1",
		"--cert-dir", filepath.Join(cp.dir, "metrics-server"),
		"--kubeconfig", cp.adminKC,
		"--authentication-kubeconfig", cp.adminKC,
		"--authorization-kubeconfig", cp.adminKC,
		"--kubelet-insecure-tls",
		"--kubelet-preferred-address-types", "InternalIP",
		"--kubelet-use-node-status-port",
		"--metric-resolution", "10s",
		"--kubelet-request-timeout", "5s",
		"--v", "1",
	}
	return start(t, cp.logs, "metrics-server", filepath.Join(cp.bin, "metrics-server"), append(args, extra...)...)
}
