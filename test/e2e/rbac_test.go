//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// chartManifest is the chart rendered with its default values.
const chartManifest = "../../deploy/k8s-llm-monitor.yaml"

// applyChartRBAC creates the ServiceAccounts, (Cluster)Roles and
// (Cluster)RoleBindings of the rendered chart, in its namespace, and
// returns that namespace. Workloads are not applied: the harness runs the
// binaries itself.
func (cp *controlPlane) applyChartRBAC(t *testing.T) string {
	t.Helper()
	f, err := os.Open(chartManifest)
	require.NoError(t, err, "the rendered chart (make manifests)")
	defer f.Close()
	ctx := context.Background()
	c := cp.client
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	namespace := ""
	applied := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			continue // a kind client-go does not know (ServiceMonitor): not RBAC
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			namespace = o.Namespace
			cp.createNamespace(t, o.Namespace)
			_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			cp.createNamespace(t, o.Namespace)
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			cp.createNamespace(t, o.Namespace)
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			continue
		}
		require.NoError(t, err, "apply %T from %s", obj, chartManifest)
		applied++
	}
	require.NotEmpty(t, namespace, "no ServiceAccount in %s", chartManifest)
	t.Logf("applied %d RBAC objects of the chart in namespace %s", applied, namespace)
	return namespace
}

// serviceAccountToken is a TokenRequest token of the ServiceAccount
// ns/name, as a pod would have mounted.
func (cp *controlPlane) serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	return cp.tokenFor(t, ns, name, nil, nil)
}

// productAudience is the audience of NATS tokens (the chart's default).
const productAudience = "k8s-llm-monitor"

// tokenFor is a TokenRequest token of the ServiceAccount ns/name for
// audiences (nil: the API server's own), bound to pod when it is not nil,
// as the kubelet projects one into a pod.
func (cp *controlPlane) tokenFor(t *testing.T, ns, name string, audiences []string, pod *corev1.Pod) string {
	t.Helper()
	exp := int64(3600)
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp, Audiences: audiences}
	if pod != nil {
		spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := cp.client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	require.NoError(t, err)
	return tr.Status.Token
}

// bindClusterRole binds the ClusterRole role to the ServiceAccount ns/name.
func (cp *controlPlane) bindClusterRole(t *testing.T, role, ns, name string) {
	t.Helper()
	_, err := cp.client.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-" + ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// createServiceAccount creates ns/name.
func (cp *controlPlane) createServiceAccount(t *testing.T, ns, name string) {
	t.Helper()
	_, err := cp.client.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// kubeletAuthorizer decides kubelet requests as a kubelet with
// --authentication-token-webhook and --authorization-mode=Webhook: a
// TokenReview of the bearer token, then a SubjectAccessReview of get on
// nodes/stats for the node. Like the kubelet, it caches allowed decisions
// (for 2 minutes), which also keeps the agents' 1 s source deadline clear
// of the API round trips on a loaded machine.
func (cp *controlPlane) kubeletAuthorizer() func(token, node string) (int, string) {
	var mu sync.Mutex
	allowed := map[string]time.Time{} // token + node -> until
	return func(token, node string) (int, string) {
		key := token + "\x00" + node
		mu.Lock()
		until, ok := allowed[key]
		mu.Unlock()
		if ok && time.Now().Before(until) {
			return http.StatusOK, ""
		}
		code, msg := cp.authorizeKubelet(token, node)
		if code == http.StatusOK {
			mu.Lock()
			allowed[key] = time.Now().Add(2 * time.Minute)
			mu.Unlock()
		}
		return code, msg
	}
}

func (cp *controlPlane) authorizeKubelet(token, node string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if token == "" {
		return http.StatusUnauthorized, "no bearer token"
	}
	tr, err := cp.client.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, "token not authenticated: " + tr.Status.Error
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := cp.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, Groups: u.Groups, UID: u.UID, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "stats", Name: node},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, fmt.Sprintf("Forbidden (user=%s, verb=get, resource=nodes, subresource=stats)", u.Username)
	}
	return http.StatusOK, ""
}

// serviceAccountKubeconfig writes a kubeconfig holding a TokenRequest token
// of the ServiceAccount ns/name, as the pod would have mounted.
func (cp *controlPlane) serviceAccountKubeconfig(t *testing.T, ns, name string) string {
	t.Helper()
	return cp.writeKubeconfig(t, name, &clientcmdapi.AuthInfo{Token: cp.serviceAccountToken(t, ns, name)})
}
