//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// binDir is where test/e2e/build.sh put kube-apiserver, etcd and
// metrics-server: $E2E_BIN_DIR, else .cache/e2e/bin at the repository root.
func binDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("E2E_BIN_DIR")
	if d == "" {
		abs, err := filepath.Abs("../../.cache/e2e/bin")
		require.NoError(t, err)
		d = abs
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		_, err := os.Stat(filepath.Join(d, b))
		require.NoError(t, err, "control plane not built: run test/e2e/build.sh (or make e2e)")
	}
	return d
}

// controlPlane is etcd and kube-apiserver on loopback with the
// certificates the harness generated.
type controlPlane struct {
	dir, logs  string
	bin        string
	url        string // https://127.0.0.1:port
	ca         *ca
	caFile     string
	admin      *keyPair
	adminKC    string // kubeconfig of a system:masters user
	frontProxy *ca
	rest       *rest.Config
	client     kubernetes.Interface
	apiserver  *process
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	cp := &controlPlane{dir: t.TempDir(), logs: logDir(t), bin: binDir(t)}
	pki := filepath.Join(cp.dir, "pki")
	require.NoError(t, os.MkdirAll(pki, 0o700))

	cp.ca = newCA(t, "e2e-ca")
	cp.caFile = cp.ca.write(t, pki, "ca")
	serving := cp.ca.issue(t, "kube-apiserver", nil,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}).write(t, pki, "apiserver")
	cp.admin = cp.ca.issue(t, "e2e-admin", []string{"system:masters"}, nil, nil).write(t, pki, "admin")
	cp.frontProxy = newCA(t, "e2e-front-proxy-ca")
	fpCA := cp.frontProxy.write(t, pki, "front-proxy-ca")
	fpClient := cp.frontProxy.issue(t, "front-proxy-client", nil, nil, nil).write(t, pki, "front-proxy-client")
	saKey := writeServiceAccountKey(t, pki)

	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	start(t, cp.logs, "etcd", filepath.Join(cp.bin, "etcd"),
		"--data-dir", filepath.Join(cp.dir, "etcd"),
		"--client-url", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--peer-url", fmt.Sprintf("http://127.0.0.1:%d", peerPort))

	cp.url = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	cp.apiserver = start(t, cp.logs, "kube-apiserver", filepath.Join(cp.bin, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", filepath.Join(cp.dir, "certs"),
		"--tls-cert-file", serving.certFile,
		"--tls-private-key-file", serving.keyFile,
		"--client-ca-file", cp.caFile,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--authorization-mode", "Node,RBAC",
		"--endpoint-reconciler-type", "none",
		"--requestheader-client-ca-file", fpCA,
		"--requestheader-allowed-names", "front-proxy-client",
		"--requestheader-username-headers", "X-Remote-User",
		"--requestheader-group-headers", "X-Remote-Group",
		"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
		"--proxy-client-cert-file", fpClient.certFile,
		"--proxy-client-key-file", fpClient.keyFile,
		"--profiling=false",
		"--v", "1",
	)

	cp.adminKC = cp.writeKubeconfig(t, "admin", &clientcmdapi.AuthInfo{
		ClientCertificateData: cp.admin.certPEM, ClientKeyData: cp.admin.keyPEM,
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.adminKC)
	require.NoError(t, err)
	cfg.QPS, cfg.Burst = 100, 200
	cp.rest = cfg
	cp.client, err = kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	// Ready: every post-start hook done (RBAC bootstrap roles, the
	// extension-apiserver-authentication ConfigMap, ...).
	hc := cp.adminHTTP(t)
	start := time.Now()
	require.Eventually(t, func() bool {
		if cp.apiserver.Exited() {
			return true // fail below with the log
		}
		resp, err := hc.Get(cp.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 90*time.Second, 250*time.Millisecond, "kube-apiserver not ready")
	require.False(t, cp.apiserver.Exited(), "kube-apiserver exited:\n%s", cp.apiserver.Tail(40))
	t.Logf("kube-apiserver %s ready in %s", cp.url, time.Since(start).Round(100*time.Millisecond))
	return cp
}

// adminHTTP is an HTTP client that authenticates as the admin.
func (cp *controlPlane) adminHTTP(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cp.ca.certPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cp.admin.tlsCert(t)},
	}}}
}

// writeKubeconfig writes a kubeconfig for the API server with the given
// credentials and returns its path.
func (cp *controlPlane) writeKubeconfig(t *testing.T, name string, auth *clientcmdapi.AuthInfo) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.url, CertificateAuthorityData: cp.ca.certPEM}
	kc.AuthInfos[name] = auth
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	kc.CurrentContext = "e2e"
	p := filepath.Join(cp.dir, name+".kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, p))
	return p
}

// createNamespace creates ns and its default ServiceAccount (there is no
// controller-manager to do it).
func (cp *controlPlane) createNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	_, err := cp.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	_, err = cp.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
}

func hostPort(u string) string {
	return strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
}
