//go:build e2e && fleet

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/kubelet"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/publish"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/reporter"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// The fleet benchmark (make bench-fleet) runs metrics-server and the
// aggregator side by side on one simulated fleet and prints each one's CPU
// and RSS over the same window. It is a measurement, not a test: it fails
// only when the fleet cannot be set up or a side never sees every node.
//
// Parameters, from the environment:
//
//	FLEET_NODES     nodes (default 50)
//	FLEET_PODS      pods per node (default 30)
//	FLEET_INTERVAL  seconds: metrics-server's resolution, the agents' and the aggregator's interval (default 15)
//	FLEET_WARMUP    seconds both sides run with every node seen before the window (default 30)
//	FLEET_WINDOW    seconds of the measured window (default 180)
//	FLEET_OUT       directory for the result table and the aggregator's heap profile (optional)
//	FLEET_AGGREGATOR_FLAGS  extra aggregator flags, space-separated (optional)
//	FLEET_CPU_PROFILE       when set (with FLEET_OUT), the aggregator's CPU profile over the window is saved too; it costs the aggregator a little CPU
//	FLEET_AGGREGATOR_BIN    an aggregator binary to measure instead of one built from this tree (optional: compare releases)
type fleetParams struct {
	nodes, pods              int
	interval, warmup, window time.Duration
	out                      string
	aggFlags                 []string
	aggBin                   string
	cpuProfile               bool
}

func readFleetParams(t *testing.T) fleetParams {
	t.Helper()
	num := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		require.NoError(t, err, name)
		require.Positive(t, n, name)
		return n
	}
	return fleetParams{
		nodes:    num("FLEET_NODES", 50),
		pods:     num("FLEET_PODS", 30),
		interval: time.Duration(num("FLEET_INTERVAL", 15)) * time.Second,
		warmup:   time.Duration(num("FLEET_WARMUP", 30)) * time.Second,
		window:   time.Duration(num("FLEET_WINDOW", 180)) * time.Second,
		out:      os.Getenv("FLEET_OUT"),
		aggFlags: strings.Fields(os.Getenv("FLEET_AGGREGATOR_FLAGS")),
		aggBin:   os.Getenv("FLEET_AGGREGATOR_BIN"),
		// Only with a directory to write it to.
		cpuProfile: os.Getenv("FLEET_CPU_PROFILE") != "" && os.Getenv("FLEET_OUT") != "",
	}
}

func TestFleet(t *testing.T) {
	p := readFleetParams(t)
	t.Logf("fleet: %d nodes × %d pods, interval %s, warm-up %s, window %s", p.nodes, p.pods, p.interval, p.warmup, p.window)
	aggBin := filepath.Dir(p.aggBin)
	if p.aggBin == "" {
		aggBin = buildAggregator(t)
	} else {
		require.Equal(t, "aggregator", filepath.Base(p.aggBin), "FLEET_AGGREGATOR_BIN must name a file called aggregator")
	}
	cp := startControlPlane(t)
	fast := fastClient(t, cp)
	kubeletKP := cp.ca.issue(t, "kubelet", nil, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	tokenFile := writeFile(t, cp.dir, "agent-token", "fleet-agent-token\n")

	setup := time.Now()
	nodes, kubelets := createFleet(t, cp, fast, kubeletKP, p)
	t.Logf("created %d nodes and %d pods in %s", len(nodes), len(nodes)*p.pods, time.Since(setup).Round(time.Second))

	msPort := freePort(t)
	ms := cp.startMetricsServer(t, msPort, "--metric-resolution", p.interval.String())
	cp.registerMetricsServer(t, msPort)

	natsPort := freePort(t)
	secs := strconv.Itoa(int(p.interval / time.Second))
	agg := startAggregator(t, t, aggBin, cp.logs, "aggregator", cp.adminKC, natsPort,
		append([]string{"--interval", secs, "--log-level", "info", "--pprof"}, p.aggFlags...)...)
	startFleetAgents(t, nodes, kubelets, cp.caFile, tokenFile, agg.natsURL, p.interval)

	// Both sides see every node before the warm-up starts.
	ready := time.Now()
	require.Eventually(t, func() bool {
		return !ms.Exited() && !agg.proc.Exited() && metricsServerNodes(cp) == p.nodes && aggregatorNodes(agg) == p.nodes
	}, 10*time.Minute, 2*time.Second, "metrics-server and the aggregator did not both report %d nodes", p.nodes)
	t.Logf("both sides report every node %s after start", time.Since(ready).Round(time.Second))

	time.Sleep(p.warmup) // a measurement window, not a wait for a result
	procs := []*process{ms, agg.proc, cp.apiserver}
	before := sampleAll(t, procs)
	start := time.Now()
	profiled := make(chan struct{})
	if p.cpuProfile {
		go func() {
			defer close(profiled)
			path := filepath.Join(p.out, fmt.Sprintf("fleet-%dx%d-aggregator.cpu", p.nodes, p.pods))
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", agg.api, int(p.window/time.Second)-1)
			if err := fetchToFile(url, path); err != nil {
				t.Errorf("cpu profile: %v", err)
			}
		}()
	} else {
		close(profiled)
	}
	time.Sleep(p.window)
	after := sampleAll(t, procs)
	<-profiled
	elapsed := time.Since(start)
	require.Equal(t, p.nodes, metricsServerNodes(cp), "metrics-server lost nodes during the window")
	require.Equal(t, p.nodes, aggregatorNodes(agg), "the aggregator lost nodes during the window")

	table := fleetTable(p, elapsed, procs, before, after)
	t.Log("\n" + table)
	if p.out != "" {
		require.NoError(t, os.MkdirAll(p.out, 0o755))
		name := fmt.Sprintf("fleet-%dx%d", p.nodes, p.pods)
		require.NoError(t, os.WriteFile(filepath.Join(p.out, name+".md"), []byte(table), 0o644))
		saveURL(t, agg.api+"/debug/pprof/heap", filepath.Join(p.out, name+"-aggregator.heap"))
		saveURL(t, agg.api+"/metrics", filepath.Join(p.out, name+"-aggregator.metrics"))
	}
}

// buildAggregator builds the aggregator as the release does (make
// build-aggregator: static, stripped), so its RSS counts the same
// executable an operator runs; metrics-server is built stripped too.
func buildAggregator(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "aggregator"), "./aggregator")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./aggregator:\n%s", out)
	return dir
}

// fastClient is the admin client with a rate limit that does not make the
// set-up of thousands of pods the longest part of the run.
func fastClient(t *testing.T, cp *controlPlane) kubernetes.Interface {
	t.Helper()
	cfg := *cp.rest
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := kubernetes.NewForConfig(&cfg)
	require.NoError(t, err)
	return c
}

// createFleet creates the namespaces, nodes (each with its fake kubelet)
// and pods, and returns the node names and their kubelets.
func createFleet(t *testing.T, cp *controlPlane, c kubernetes.Interface, kp *keyPair, p fleetParams) ([]string, map[string]*fakeKubelet) {
	t.Helper()
	const namespaces = 10
	for i := range namespaces {
		cp.createNamespace(t, fmt.Sprintf("team-%02d", i))
	}
	nodes := make([]string, p.nodes)
	kubelets := make(map[string]*fakeKubelet, p.nodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%04d", i)
		kubelets[nodes[i]] = startFakeKubelet(t, t, nodes[i], kp)
	}
	runParallel(t, len(nodes), func(i int) error {
		return createFleetNode(c, nodes[i], i, kubelets[nodes[i]].port)
	})
	runParallel(t, len(nodes)*p.pods, func(i int) error {
		node := nodes[i/p.pods]
		ns := fmt.Sprintf("team-%02d", i%namespaces)
		name := fmt.Sprintf("app-%04d-%02d-%s", i/p.pods, i%p.pods, "x7k2p")
		pod, err := createFleetPod(c, ns, name, node, i)
		if err != nil {
			return err
		}
		kubelets[node].setPod(fakePod{
			Namespace: ns, Name: name, UID: string(pod.UID), Container: "app",
			Start: pod.Status.StartTime.Time,
			CPU:   int64(20 + i%200), Memory: uint64(64+i%512) << 20,
			MSCPU: int64(20 + i%200), MSMemory: uint64(64+i%512) << 20,
		})
		return nil
	})
	return nodes, kubelets
}

// runParallel runs fn(0..n-1) on a few workers and fails on the first error.
func runParallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		require.NoError(t, err)
	default:
	}
}

// createFleetNode creates a Node as a kubeadm kubelet registers it: the
// usual labels and annotations, capacity, conditions, addresses and a list
// of cached images (a real node's status carries dozens).
func createFleetNode(c kubernetes.Interface, name string, i, kubeletPort int) error {
	ctx := context.Background()
	zone := fmt.Sprintf("zone-%c", 'a'+i%3)
	obj, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
			"topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "region-1",
			"node.kubernetes.io/instance-type": "m6i.2xlarge", "pool": "general",
		},
		Annotations: map[string]string{
			"node.alpha.kubernetes.io/ttl":                           "0",
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			"kubeadm.alpha.kubernetes.io/cri-socket":                 "unix:///run/containerd/containerd.sock",
			"csi.volume.kubernetes.io/nodeid":                        fmt.Sprintf(`{"ebs.csi.aws.com":"i-%017x"}`, i),
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	now := metav1.NewTime(time.Now())
	cond := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: "kubelet says " + reason, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	var images []corev1.ContainerImage
	for j := range 40 {
		images = append(images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("registry.example/team/image-%02d@sha256:%064x", j, j), fmt.Sprintf("registry.example/team/image-%02d:v1.%d.0", j, j)},
			SizeBytes: int64(50+j) << 20,
		})
	}
	obj.Status = corev1.NodeStatus{
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		},
		Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("7910m"), corev1.ResourceMemory: resource.MustParse("31Gi"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("95Gi"),
		},
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(kubeletPort)}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID: fmt.Sprintf("%032x", i), SystemUUID: fmt.Sprintf("ec2%029x", i), BootID: fmt.Sprintf("%032x", i+1),
			KernelVersion: "6.8.0-1019-aws", OSImage: "Ubuntu 24.04.1 LTS", ContainerRuntimeVersion: "containerd://1.7.24",
			KubeletVersion: "v1.37.2", KubeProxyVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
		},
		Images: images,
	}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of node %s: %w", name, err)
	}
	return nil
}

// createFleetPod creates a pod as a Deployment's ReplicaSet and a kubelet
// leave it: owner, template labels and annotations, a container with env,
// ports, probes and resources, the projected service account volume, the
// default tolerations, and a Running status.
func createFleetPod(c kubernetes.Interface, ns, name, node string, i int) (*corev1.Pod, error) {
	ctx := context.Background()
	app := fmt.Sprintf("app-%03d", i%97)
	yes, grace, expiry := true, int64(30), int64(3607)
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "pod-template-hash": "x7k2p"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/restartedAt": "2026-11-01T10:00:00Z",
				"prometheus.io/scrape":              "true", "prometheus.io/port": "9090",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-x7k2p",
				UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i%97)), Controller: &yes, BlockOwnerDeletion: &yes}},
		},
		Spec: corev1.PodSpec{
			NodeName:           node,
			ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/team/" + app + ":v1.4.2",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{
					{Name: "LOG_LEVEL", Value: "info"}, {Name: "HTTP_PORT", Value: "8080"},
					{Name: "DATABASE_URL", Value: "postgres://db.shop.svc:5432/shop"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
				LivenessProbe: probe("/healthz"), ReadinessProbe: probe("/readyz"),
				VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &expiry}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
						{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
				}}}}},
			TerminationGracePeriodSeconds: &grace,
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
			},
		},
	}
	obj, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	started := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	podIP := fmt.Sprintf("10.%d.%d.%d", 64+i/65536%64, i/256%256, i%256)
	obj.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}}, StartTime: &started, QOSClass: corev1.PodQOSBurstable,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Ready: true, Started: &yes, RestartCount: int32(i % 3),
			Image: "registry.example/team/" + app + ":v1.4.2", ImageID: fmt.Sprintf("registry.example/team/%s@sha256:%064x", app, i%97),
			ContainerID: fmt.Sprintf("containerd://%064x", i),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
	}
	obj, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of pod %s/%s: %w", ns, name, err)
	}
	return obj, nil
}

// startFleetAgents runs one agent per node inside this process: each is
// built from the agent's own packages as agent/main.go wires them (host
// sources, GPU off, the kubelet source reading its node's fake kubelet,
// the cgroup source, the runner, the reporter) with its own NATS connection, so the aggregator
// receives the same messages over the same number of connections as from
// separate processes. One process rather than N: the agents are not what
// is measured, and a thousand agent processes would not fit beside the
// rest on a small machine. Their starts are spread over one interval, as
// independently started agents would be.
func startFleetAgents(t *testing.T, nodes []string, kubelets map[string]*fakeKubelet, caFile, tokenFile, natsURL string, interval time.Duration) {
	t.Helper()
	logs, err := os.Create(filepath.Join(logDir(t), "agents.log"))
	require.NoError(t, err)
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		logs.Close()
	})
	for i, node := range nodes {
		cfg := agentConfig(t, node, kubelets[node].port, caFile, tokenFile, natsURL, interval)
		sources := collector.NewHostSources(cfg.Agent, logger)
		sources = append(sources, collector.Disabled("gpu", "disabled by configuration (agent.gpu.enabled=false)"))
		k, err := kubelet.New(cfg.Agent.Kubelet, logger)
		require.NoError(t, err)
		sources = append(sources, k, collector.NewCgroupSource(collector.NewHostPaths(cfg.Agent.HostRoot)))
		runner := collector.NewRunner(sources, cfg.Agent.SourceTimeout, logger, nil)
		rep := reporter.New(node, interval, runner, cfg.Agent.Thresholds, logger, nil)
		pub, err := publish.Connect(cfg.NATS, node, logger, nil)
		require.NoError(t, err)
		offset := interval * time.Duration(i) / time.Duration(len(nodes))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pub.Close(5 * time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(offset):
			}
			_ = rep.Run(ctx, pub)
		}()
	}
}

// agentConfig is the configuration the agent binary would load from these
// flags.
func agentConfig(t *testing.T, node string, kubeletPort int, caFile, tokenFile, natsURL string, interval time.Duration) *config.Config {
	t.Helper()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.RegisterAgentFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"--node-name", node,
		"--kubelet-url", fmt.Sprintf("https://127.0.0.1:%d", kubeletPort),
		"--kubelet-ca-file", caFile,
		"--kubelet-token-file", tokenFile,
		"--disable-gpu",
		"--host-root", "/",
		"--nats-url", natsURL,
		"--interval", strconv.Itoa(int(interval / time.Second)),
	}))
	cfg, err := config.Load(fs)
	require.NoError(t, err)
	require.Empty(t, cfg.ValidateAgent())
	return cfg
}

// metricsServerNodes is how many nodes metrics.k8s.io lists, 0 on error.
func metricsServerNodes(cp *controlPlane) int {
	var l struct {
		Items []struct{} `json:"items"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := cp.client.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").DoRaw(ctx)
	if err != nil || json.Unmarshal(raw, &l) != nil {
		return 0
	}
	return len(l.Items)
}

// aggregatorNodes is how many nodes the aggregator lists with an agent's
// report, 0 on error.
func aggregatorNodes(a *aggregator) int {
	var l list[struct {
		UsageSource string `json:"usageSource"`
	}]
	if code, err := getJSON(a.api+"/api/v1/metrics/nodes", &l); err != nil || code != http.StatusOK {
		return 0
	}
	n := 0
	for _, item := range l.Items {
		if item.UsageSource == "agent" {
			n++
		}
	}
	return n
}

// procSample is a process's CPU time and memory at one moment.
type procSample struct {
	ticks            uint64 // utime + stime, in USER_HZ ticks
	rss, anon, files int64  // KiB: VmRSS, RssAnon, RssFile
}

// userHZ is the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Kubernetes runs on.
const userHZ = 100

func sampleAll(t *testing.T, procs []*process) []procSample {
	t.Helper()
	out := make([]procSample, len(procs))
	for i, p := range procs {
		s, err := sampleProcess(p.Cmd.Process.Pid)
		require.NoError(t, err, p.Name)
		out[i] = s
	}
	return out
}

func sampleProcess(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which may hold spaces: state is the
	// first, utime and stime the 12th and 13th.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	s.ticks = utime + stime
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n
		case "RssAnon":
			s.anon = n
		case "RssFile":
			s.files = n
		}
	}
	return s, nil
}

// fleetTable renders the result: per process CPU (millicores over the
// window) and RSS at its end, per node, and the aggregator ÷ metrics-server
// ratios. procs[0] is metrics-server, procs[1] the aggregator.
func fleetTable(p fleetParams, elapsed time.Duration, procs []*process, before, after []procSample) string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "fleet %d nodes × %d pods, interval %s, window %s, %d CPUs, load average at the end %s\n\n",
		p.nodes, p.pods, p.interval, elapsed.Round(time.Second), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&b, "| process | CPU (mCPU) | per node | RSS (MiB) | anon / file | RSS per node (KiB) |\n|---|---|---|---|---|---|\n")
	mcpu := make([]float64, len(procs))
	for i, pr := range procs {
		mcpu[i] = float64(after[i].ticks-before[i].ticks) / userHZ / elapsed.Seconds() * 1000
		fmt.Fprintf(&b, "| %s | %.1f | %.3f | %.1f | %.1f / %.1f | %.0f |\n", pr.Name, mcpu[i], mcpu[i]/float64(p.nodes),
			float64(after[i].rss)/1024, float64(after[i].anon)/1024, float64(after[i].files)/1024, float64(after[i].rss)/float64(p.nodes))
	}
	fmt.Fprintf(&b, "| **aggregator ÷ metrics-server** | **%.2f** | | **%.2f** | %.2f / %.2f | |\n",
		mcpu[1]/mcpu[0], float64(after[1].rss)/float64(after[0].rss),
		float64(after[1].anon)/float64(after[0].anon), float64(after[1].files)/float64(after[0].files))
	return b.String()
}

func saveURL(t *testing.T, url, path string) {
	t.Helper()
	require.NoError(t, fetchToFile(url, path))
}

func fetchToFile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
