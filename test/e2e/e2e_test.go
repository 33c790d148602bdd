//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// env is the whole system under test: the control plane, the simulated
// nodes (Node objects and fake kubelets), the aggregator and the agents.
type env struct {
	root       *testing.T // owns what subtests start for later subtests
	cp         *controlPlane
	logs       string
	productBin string
	kubeletKP  *keyPair
	tokenFile  string // the agents' token: the chart's agent ServiceAccount
	agentToken string
	chartNS    string
	kubelets   map[string]*fakeKubelet
	agents     map[string]*process
	agg        *aggregator
	events     chan *model.Event
	// readerNATSToken is the NATS token of a ServiceAccount bound to the
	// chart's reader role (audience k8s-llm-monitor); apiToken is its
	// token for HTTP.
	readerNATSToken string
}

// The chart's ServiceAccounts and reader roles (deploy/k8s-llm-monitor.yaml).
const (
	aggregatorSA      = "k8s-llm-monitor-aggregator"
	agentSA           = "k8s-llm-monitor-agent"
	readerRole        = "k8s-llm-monitor-reader"
	metricsReaderRole = "k8s-llm-monitor-metrics-reader"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{root: t, kubelets: map[string]*fakeKubelet{}, agents: map[string]*process{}}
	e.productBin = buildProduct(t)
	e.cp = startControlPlane(t)
	e.logs = e.cp.logs
	e.kubeletKP = e.cp.ca.issue(t, "kubelet", nil, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	for _, ns := range []string{"default", "kube-system", "team-a", "team-b"} {
		e.cp.createNamespace(t, ns)
	}
	// The chart's RBAC: the aggregator runs with its ServiceAccount's
	// token, and the fake kubelets authorize the agents' token as a real
	// kubelet does, so a missing rule fails the tests.
	e.chartNS = e.cp.applyChartRBAC(t)
	e.agentToken = e.cp.serviceAccountToken(t, e.chartNS, agentSA)
	e.tokenFile = writeFile(t, e.cp.dir, "agent-token", e.agentToken+"\n")
	// The tests read as a user of the API would: a ServiceAccount bound to
	// the chart's reader role.
	e.cp.createServiceAccount(t, "default", "e2e-reader")
	e.cp.bindClusterRole(t, readerRole, "default", "e2e-reader")
	apiToken = e.cp.serviceAccountToken(t, "default", "e2e-reader")
	e.readerNATSToken = e.cp.tokenFor(t, "default", "e2e-reader", []string{productAudience}, nil)
	return e
}

// aggregatorArgs run the aggregator as the chart does: identities checked
// by the API server on NATS and HTTP. Pods are watched in the tests'
// namespaces only, so the agents' own pods do not count among them.
func (e *env) aggregatorArgs() []string {
	return []string{
		"--nats-auth-mode", "kubernetes", "--http-auth", "kubernetes",
		"--agent-service-account", e.chartNS + "/" + agentSA,
		"--namespaces", "team-a,team-b",
	}
}

// agentPod creates the pod of node's agent (the chart's agent
// ServiceAccount, bound to node) and returns it with its NATS token file:
// a token for the product's audience bound to the pod, as the chart
// projects it.
func (e *env) agentPod(t *testing.T, name, node string) (*corev1.Pod, string) {
	t.Helper()
	pod := e.cp.createPod(t, podSpec{namespace: e.chartNS, name: name, node: node, serviceAccount: agentSA})
	tok := e.cp.tokenFor(t, e.chartNS, agentSA, []string{productAudience}, pod)
	return pod, writeFile(t, e.cp.dir, name+"-nats-token", tok+"\n")
}

// addNode creates a Node served by a new fake kubelet.
func (e *env) addNode(t *testing.T, n nodeSpec) *fakeKubelet {
	t.Helper()
	k := startFakeKubelet(t, e.root, n.name, e.kubeletKP)
	k.authorize = e.cp.kubeletAuthorizer()
	e.kubelets[n.name] = k
	e.cp.createNode(t, n, k.port)
	return k
}

// addPod creates the pod and gives its node's fake kubelet its numbers.
func (e *env) addPod(t *testing.T, p podSpec, fp fakePod) *corev1.Pod {
	t.Helper()
	obj := e.cp.createPod(t, p)
	fp.Namespace, fp.Name, fp.UID, fp.Container = p.namespace, p.name, string(obj.UID), "app"
	fp.Start = obj.Status.StartTime.Time
	e.kubelets[p.node].setPod(fp)
	return obj
}

func (e *env) startAgent(t *testing.T, node string) {
	t.Helper()
	_, natsToken := e.agentPod(t, "agent-"+node, node)
	e.agents[node] = startAgent(t, e.root, e.productBin, e.logs, node, e.kubelets[node], e.cp.caFile, e.tokenFile, natsToken, e.agg.natsURL)
}

// subscribe collects the aggregator's cluster events.
func (e *env) subscribe(t *testing.T) {
	t.Helper()
	nc, err := nats.Connect(e.agg.natsURL, nats.Token(e.readerNATSToken), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	e.events = make(chan *model.Event, 256)
	_, err = nc.Subscribe(wire.ClusterEventSubject(wire.DefaultPrefix), func(m *nats.Msg) {
		ev, err := wire.DecodeClusterEvent(m.Data)
		if err != nil {
			t.Errorf("undecodable cluster event: %v: %s", err, m.Data)
			return
		}
		select {
		case e.events <- ev:
		default:
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// waitEvent waits for a cluster event matching match.
func (e *env) waitEvent(t *testing.T, within time.Duration, what string, match func(*model.Event) bool) *model.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-e.events:
			if match(ev) {
				return ev
			}
		case <-deadline:
			require.FailNow(t, "no cluster event: "+what)
			return nil
		}
	}
}

func (e *env) nodes(t *testing.T) map[string]model.NodeMetrics {
	var l list[model.NodeMetrics]
	code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes", &l)
	if err != nil || code != http.StatusOK {
		return nil
	}
	out := map[string]model.NodeMetrics{}
	for _, n := range l.Items {
		out[n.NodeName] = n
	}
	return out
}

func (e *env) pods(t *testing.T) map[string]model.PodMetrics {
	var l list[model.PodMetrics]
	code, err := getJSON(e.agg.api+"/api/v1/metrics/pods", &l)
	if err != nil || code != http.StatusOK {
		return nil
	}
	out := map[string]model.PodMetrics{}
	for _, p := range l.Items {
		out[p.Namespace+"/"+p.PodName] = p
	}
	return out
}

// Timing: agents and the aggregator run every interval (2 s); a change in
// the API server or on a kubelet shows within about two intervals (agent
// cycle, then aggregator cycle). The deadlines below leave room for a
// loaded 2-core machine.
const settle = 30 * time.Second

func TestE2E(t *testing.T) {
	e := newEnv(t)

	nodes := []nodeSpec{
		{name: "worker-1.e2e", labels: map[string]string{"kubernetes.io/hostname": "worker-1.e2e", "topology.kubernetes.io/zone": "zone-a", "pool": "general"},
			cpu: "8", memory: "32Gi", allocCPU: "7800m", allocMemory: "30Gi"},
		{name: "worker-2.e2e", labels: map[string]string{"kubernetes.io/hostname": "worker-2.e2e", "topology.kubernetes.io/zone": "zone-b", "pool": "batch"},
			cpu: "16", memory: "64Gi", allocCPU: "15500m", allocMemory: "60Gi"},
	}
	for _, n := range nodes {
		e.addNode(t, n)
	}
	type podCase struct {
		spec podSpec
		fake fakePod
	}
	pods := []podCase{
		{podSpec{namespace: "team-a", name: "web-1", node: "worker-1.e2e", labels: map[string]string{"app": "web"},
			cpuRequest: "100m", cpuLimit: "500m", memRequest: "128Mi", memLimit: "256Mi", restarts: 3},
			fakePod{CPU: 250, Memory: 100 << 20, MSCPU: 125, MSMemory: 90 << 20}},
		{podSpec{namespace: "team-a", name: "web-2", node: "worker-2.e2e", labels: map[string]string{"app": "web"},
			cpuRequest: "100m", cpuLimit: "1", memRequest: "128Mi", memLimit: "512Mi"},
			fakePod{CPU: 40, Memory: 200 << 20, MSCPU: 60, MSMemory: 210 << 20}},
		{podSpec{namespace: "team-b", name: "batch-1", node: "worker-1.e2e", labels: map[string]string{"app": "batch"},
			cpuRequest: "1", cpuLimit: "2", memRequest: "1Gi", memLimit: "2Gi", restarts: 1},
			fakePod{CPU: 1500, Memory: 1500 << 20, MSCPU: 1200, MSMemory: 1400 << 20}},
	}
	for _, p := range pods {
		e.addPod(t, p.spec, p.fake)
	}

	// KubeVirt's VMI CRD: the aggregator asks discovery at start-up.
	e.cp.installVMICRD(t)

	natsPort := freePort(t)
	// metrics.k8s.io is not registered yet: pods' usage comes from the
	// agents' kubelet stats until it is.
	aggKC := e.cp.serviceAccountKubeconfig(t, e.chartNS, aggregatorSA)
	e.agg = startAggregator(t, e.root, e.productBin, e.logs, "aggregator", aggKC, natsPort, e.aggregatorArgs()...)
	e.subscribe(t)
	for _, n := range nodes {
		e.startAgent(t, n.name)
	}

	t.Run("nodes carry the Node objects' allocatable and labels", func(t *testing.T) {
		var got map[string]model.NodeMetrics
		require.Eventually(t, func() bool {
			got = e.nodes(t)
			for _, n := range nodes {
				m, ok := got[n.name]
				if !ok || m.UsageSource != "agent" || m.CPUCapacity == 0 || m.Sources["kubelet"].Status != model.SourceOK {
					return false
				}
			}
			return len(got) == len(nodes)
		}, settle, 250*time.Millisecond, "nodes with agent reports: %v", got)
		for _, n := range nodes {
			m := got[n.name]
			assert.Equal(t, milli(n.allocCPU), m.CPUAllocatable, n.name)
			assert.Equal(t, value(n.allocMemory), m.MemoryAllocatable, n.name)
			assert.Equal(t, n.labels, m.Labels, n.name)
			assert.False(t, m.Stale, n.name)
			assert.Equal(t, model.SourceOK, m.Sources["kubelet"].Status, "%s kubelet source: %+v", n.name, m.Sources["kubelet"])
			var one model.NodeMetrics
			code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+n.name, &one)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			assert.Equal(t, n.name, one.NodeName)
		}
		tok, n := e.kubelets["worker-1.e2e"].token()
		assert.Positive(t, n)
		assert.Equal(t, e.agentToken, tok, "the agent sends its token file as a bearer token")
		// The fake kubelets do authorize: a token without the agent's
		// role is refused.
		other := e.cp.serviceAccountToken(t, "team-a", "default")
		code, msg := e.cp.kubeletAuthorizer()(other, "worker-1.e2e")
		assert.Equal(t, http.StatusForbidden, code, msg)
	})

	t.Run("pods carry phase, restarts and kubelet usage", func(t *testing.T) {
		var got map[string]model.PodMetrics
		// CPU is the rate between two readings of the fake kubelet's
		// counter, which grows at exactly the pod's millicores; the
		// summary's whole-second timestamps and integer rounding leave at
		// most 1 millicore of error.
		require.Eventually(t, func() bool {
			got = e.pods(t)
			if len(got) != len(pods) {
				return false
			}
			for _, p := range pods {
				m := got[p.spec.namespace+"/"+p.spec.name]
				if m.UsageSource != "kubelet" || abs(m.CPUUsage-p.fake.CPU) > 1 {
					return false
				}
			}
			return true
		}, settle, 250*time.Millisecond, "pods with kubelet usage")
		for _, p := range pods {
			key := p.spec.namespace + "/" + p.spec.name
			m := got[key]
			assert.Equal(t, "Running", m.Phase, key)
			assert.True(t, m.Ready, key)
			assert.Equal(t, p.spec.restarts, m.Restarts, key)
			assert.Equal(t, p.spec.node, m.NodeName, key)
			assert.Equal(t, int64(p.fake.Memory), m.MemoryUsage, key)
			assert.Equal(t, milli(p.spec.cpuLimit), m.CPULimit, key)
			assert.Equal(t, value(p.spec.memLimit), m.MemoryLimit, key)
			assert.InDelta(t, 100*float64(p.fake.CPU)/float64(m.CPULimit), m.CPUUsageRate, 0.5, key)
			// The API server's admission adds the node's topology labels
			// to a pod bound to it.
			assert.Subset(t, m.Labels, p.spec.labels, key)
			var one model.PodMetrics
			code, err := getJSON(e.agg.api+"/api/v1/metrics/pods/"+key, &one)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, key)
			assert.Equal(t, p.spec.name, one.PodName)
		}
	})

	t.Run("cluster totals and health agree with nodes and pods", func(t *testing.T) {
		var snap model.MetricsSnapshot
		require.Eventually(t, func() bool {
			code, err := getJSON(e.agg.api+"/api/v1/metrics/snapshot", &snap)
			return err == nil && code == http.StatusOK && snap.ClusterMetrics != nil &&
				len(snap.NodeMetrics) == len(nodes) && len(snap.PodMetrics) == len(pods)
		}, settle, 250*time.Millisecond)
		c := snap.ClusterMetrics
		assert.Equal(t, len(nodes), c.TotalNodes)
		assert.Equal(t, len(pods), c.TotalPods)
		assert.Equal(t, len(pods), c.RunningPods)
		assert.Equal(t, map[string]int{"Running": len(pods)}, c.PodsByPhase)
		assert.Zero(t, c.StaleNodes)
		var cpu, mem int64
		healthy := 0
		for _, n := range snap.NodeMetrics {
			cpu += n.CPUCapacity
			mem += n.MemoryCapacity
			if n.Healthy {
				healthy++
			}
		}
		assert.Equal(t, cpu, c.TotalCPU)
		assert.Equal(t, mem, c.TotalMemory)
		assert.Equal(t, healthy, c.HealthyNodes)
		assert.NotEmpty(t, c.HealthStatus)
		for name, st := range c.Sources {
			assert.NotContains(t, strings.ToLower(st.Reason), "forbidden", "source %s: the chart's RBAC is missing a rule", name)
		}

		var cl model.ClusterMetrics
		code, err := getJSON(e.agg.api+"/api/v1/metrics/cluster", &cl)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, len(nodes), cl.TotalNodes)
		for _, p := range []string{"/healthz", "/readyz"} {
			code, err := getJSON(e.agg.api+p, nil)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code, p)
		}
		code, err = getJSON(e.agg.api+"/api/v1/metrics/nodes/no-such-node", nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusNotFound, code)
	})

	t.Run("pods switch to metrics-server usage once it serves, and back when it stops", func(t *testing.T) {
		port := freePort(t)
		ms := e.cp.startMetricsServer(t, port)
		e.cp.registerMetricsServer(t, port)
		// metrics-server needs two scrapes 10 s apart for a CPU rate;
		// its rate is exact up to its nanocore rounding, which the
		// aggregator's millicores round up.
		var got map[string]model.PodMetrics
		require.Eventually(t, func() bool {
			require.False(t, ms.Exited(), "metrics-server exited:\n%s", ms.Tail(40))
			got = e.pods(t)
			if len(got) != len(pods) {
				return false
			}
			for _, p := range pods {
				m := got[p.spec.namespace+"/"+p.spec.name]
				if m.UsageSource != "metrics-server" || abs(m.CPUUsage-p.fake.MSCPU) > 1 {
					return false
				}
			}
			return true
		}, 90*time.Second, 500*time.Millisecond, "pods with metrics-server usage: %v", got)
		for _, p := range pods {
			key := p.spec.namespace + "/" + p.spec.name
			m := got[key]
			assert.Equal(t, int64(p.fake.MSMemory), m.MemoryUsage, key)
			assert.Equal(t, p.spec.restarts, m.Restarts, key)
		}
		var c model.ClusterMetrics
		_, err := getJSON(e.agg.api+"/api/v1/metrics/cluster", &c)
		require.NoError(t, err)
		assert.Equal(t, model.SourceOK, c.Sources["metrics-server"].Status, "%+v", c.Sources)

		ms.Stop()
		require.Eventually(t, func() bool {
			got = e.pods(t)
			if len(got) != len(pods) {
				return false
			}
			for _, p := range pods {
				m := got[p.spec.namespace+"/"+p.spec.name]
				if m.UsageSource != "kubelet" || abs(m.CPUUsage-p.fake.CPU) > 1 {
					return false
				}
			}
			return true
		}, settle, 250*time.Millisecond, "pods back on kubelet usage: %v", got)
		require.Eventually(t, func() bool {
			_, err := getJSON(e.agg.api+"/api/v1/metrics/cluster", &c)
			return err == nil && c.Sources["metrics-server"].Status != model.SourceOK
		}, settle, 250*time.Millisecond)
		assert.NotEmpty(t, c.Sources["metrics-server"].Reason, "the cluster says why metrics-server usage is missing")
	})

	t.Run("a KubeVirt VM shows its launcher pod's usage and its disk", func(t *testing.T) {
		const ns, name, node = "team-a", "vm-1", "worker-1.e2e"
		vmi := e.cp.createVMI(t, ns, name, node, 2, "4Gi", "vm-1-root")
		// The launcher pod (usage from the agent's kubelet stats, as
		// metrics-server was stopped above) and the PVC's volume stats.
		e.addPod(t, podSpec{namespace: ns, name: "virt-launcher-vm-1-x7k2p", node: node,
			labels:     map[string]string{"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": string(vmi.GetUID())},
			cpuRequest: "2", memRequest: "4Gi",
			volumes: []corev1.Volume{{Name: "rootdisk", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "vm-1-root"}}}},
		}, fakePod{CPU: 500, Memory: 1 << 30, MSCPU: 500, MSMemory: 1 << 30,
			Volumes: []fakeVolume{{Name: "rootdisk", PVCNamespace: ns, PVCName: "vm-1-root", Capacity: 20 << 30, Used: 5 << 30}}})

		var vm model.VMMetrics
		require.Eventually(t, func() bool {
			code, err := getJSON(e.agg.api+"/api/vms/"+name, &vm)
			return err == nil && code == http.StatusOK && vm.Metrics != nil && vm.Metrics.DiskUsage != nil &&
				math.Abs(vm.Metrics.CPUUsage-25) < 0.1
		}, settle, 250*time.Millisecond, "VM with usage: %+v", vm)
		// 500m of 2 cores, 1Gi of 4Gi, 5Gi of 20Gi: 25% each.
		assert.Equal(t, "Running", vm.Status)
		assert.Equal(t, int64(2), vm.CPU)
		assert.Equal(t, "4Gi", vm.Memory)
		assert.Equal(t, node, vm.Node)
		assert.InDelta(t, 25, vm.Metrics.CPUUsage, 0.1)
		assert.InDelta(t, 25, vm.Metrics.MemoryUsage, 0.01)
		assert.InDelta(t, 25, *vm.Metrics.DiskUsage, 0.01)
		if assert.NotNil(t, vm.Detail) {
			assert.Equal(t, int64(2000), vm.Detail.AllocatedCPU)
			assert.Equal(t, int64(4<<30), vm.Detail.AllocatedMemory)
			assert.Equal(t, "virt-launcher-vm-1-x7k2p", vm.Detail.LauncherPod)
			assert.Equal(t, int64(20<<30), vm.Detail.DiskCapacity)
		}
		var vms []model.VMMetrics
		code, err := getJSON(e.agg.api+"/api/vms", &vms)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		assert.Len(t, vms, 1)
		var c model.ClusterMetrics
		require.Eventually(t, func() bool {
			_, err := getJSON(e.agg.api+"/api/v1/metrics/cluster", &c)
			return err == nil && c.TotalVMs == 1 && c.RunningVMs == 1
		}, settle, 250*time.Millisecond)
		assert.Equal(t, int64(2000), c.VMAllocatedCPU)
		assert.Equal(t, int64(4<<30), c.VMAllocatedMemory)

		// Stopped: no metrics, a VMStopped event, nothing allocated.
		e.cp.setVMIPhase(t, ns, name, "Succeeded")
		e.waitEvent(t, settle, "VMStopped for "+name, func(ev *model.Event) bool {
			return ev.Type == model.EventVMStopped && strings.Contains(ev.Message, name)
		})
		require.Eventually(t, func() bool {
			code, err := getJSON(e.agg.api+"/api/vms/"+name, &vm)
			return err == nil && code == http.StatusOK && vm.Status == "Succeeded"
		}, settle, 250*time.Millisecond)
		assert.Nil(t, vm.Metrics)
		require.Eventually(t, func() bool {
			_, err := getJSON(e.agg.api+"/api/v1/metrics/cluster", &c)
			return err == nil && c.RunningVMs == 0 && c.VMAllocatedMemory == 0
		}, settle, 250*time.Millisecond)
		assert.Equal(t, 1, c.TotalVMs)
	})

	t.Run("a deleted pod disappears", func(t *testing.T) {
		before := e.pods(t)
		require.Contains(t, before, "team-b/batch-1")
		require.NoError(t, e.cp.client.CoreV1().Pods("team-b").Delete(context.Background(), "batch-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		e.kubelets["worker-1.e2e"].deletePod("team-b", "batch-1")
		require.Eventually(t, func() bool {
			got := e.pods(t)
			_, still := got["team-b/batch-1"]
			return got != nil && !still && len(got) == len(before)-1
		}, settle, 250*time.Millisecond)
		code, err := getJSON(e.agg.api+"/api/v1/metrics/pods/team-b/batch-1", nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusNotFound, code)
	})

	t.Run("an added node appears", func(t *testing.T) {
		n := nodeSpec{name: "worker-3.e2e", labels: map[string]string{"pool": "general"}, cpu: "4", memory: "16Gi", allocCPU: "3900m", allocMemory: "15Gi"}
		e.addNode(t, n)
		e.startAgent(t, n.name)
		require.Eventually(t, func() bool {
			m, ok := e.nodes(t)[n.name]
			return ok && m.UsageSource == "agent" && m.CPUAllocatable == 3900 && m.Labels["pool"] == "general"
		}, settle, 250*time.Millisecond)
		nodes = append(nodes, n)
	})

	var web *browser
	t.Run("the web view shows the nodes with their numbers, and filters", func(t *testing.T) {
		web = startBrowser(t, e.root)
		web.do(t, settle, chromedp.Navigate(e.agg.api+"/"))
		// The API wants a token: the page asks for one and sends it.
		web.do(t, settle, chromedp.WaitVisible(chromedp.CSS("#auth")), chromedp.SendKeys(chromedp.CSS("#token"), apiToken+"\r"))
		eval[bool](t, web, `window.e2eLoaded = true`) // gone if the page reloads
		web.waitFor(t, settle, "every node listed", rowsJS("nodes", "data-node")+` === 'worker-1.e2e,worker-2.e2e,worker-3.e2e'`)
		var c model.ClusterMetrics
		_, err := getJSON(e.agg.api+"/api/v1/metrics/cluster", &c)
		require.NoError(t, err)
		web.waitFor(t, settle, "the node and pod counts", fmt.Sprintf(
			`document.querySelector('[data-card=nodes] b').textContent === '%d' && document.querySelector('[data-card=pods] b').textContent === '%d'`,
			c.TotalNodes, c.TotalPods))
		for name, m := range e.nodes(t) {
			web.waitFor(t, settle, name+"'s CPU capacity", cellJS("nodes", "data-node", name, "cpu")+`.endsWith('/`+cores(m.CPUCapacity)+`')`)
			web.waitFor(t, settle, name+" not stale", cellJS("nodes", "data-node", name, "status")+` !== 'stale'`)
		}
		png, err := chromedp.Run(web.ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(e.logs, "web-view.png"), png, 0o644))
		if path := os.Getenv("WEB_VIEW_SCREENSHOT"); path != "" { // docs/web-view.png
			require.NoError(t, os.WriteFile(path, png, 0o644))
		}

		// A label filter is applied by the server: one node of three.
		web.do(t, settle, chromedp.SendKeys(chromedp.CSS(`#node-filters input[name=label]`), "pool=batch\r"))
		web.waitFor(t, settle, "the label filter", rowsJS("nodes", "data-node")+` === 'worker-2.e2e' && document.querySelector('.pager[data-for=nodes] span').textContent === '1–1 of 1'`)
		eval[bool](t, web, `(f => { f.elements.label.value = ''; return f.dispatchEvent(new Event('change')) })(document.getElementById('node-filters'))`)
		web.waitFor(t, settle, "the filter cleared", rowsJS("nodes", "data-node")+` === 'worker-1.e2e,worker-2.e2e,worker-3.e2e'`)

		// Pods, filtered by name, show the API's restarts.
		web.do(t, settle, chromedp.Click(chromedp.CSS(`#tabs button[data-tab=pods]`)))
		web.do(t, settle, chromedp.SendKeys(chromedp.CSS(`#pod-filters input[name=name]`), "web-1\r"))
		web.waitFor(t, settle, "the pod filter", rowsJS("pods", "data-pod")+` === 'team-a/web-1'`)
		web.waitFor(t, settle, "web-1's restarts", `document.querySelector('#pods tbody tr[data-pod="team-a/web-1"] td:nth-child(5)').textContent === '3'`)
		web.do(t, settle, chromedp.Click(chromedp.CSS(`#tabs button[data-tab=nodes]`)))
	})

	t.Run("a killed agent's node goes stale with a NodeStale event", func(t *testing.T) {
		const node = "worker-2.e2e"
		killed := time.Now()
		e.agents[node].Kill()
		// Stale after 3 missed intervals (6 s), seen at the next
		// aggregator cycle.
		ev := e.waitEvent(t, 3*interval*3+settle/2, "NodeStale for "+node, func(ev *model.Event) bool {
			return ev.Type == model.EventNodeStale && ev.Node == node
		})
		assert.Equal(t, model.SeverityWarning, ev.Severity)
		// Stale means 3 intervals since the last report received, which
		// left before the kill by up to an interval, more on a loaded
		// machine: only a stale node right after the kill is wrong.
		assert.GreaterOrEqual(t, time.Since(killed), interval, "stale before the agent missed a report")
		var m model.NodeMetrics
		code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+node, &m)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		assert.True(t, m.Stale)
		assert.False(t, m.Healthy)
		var c model.ClusterMetrics
		_, err = getJSON(e.agg.api+"/api/v1/metrics/cluster", &c)
		require.NoError(t, err)
		assert.Equal(t, 1, c.StaleNodes)
		assert.Contains(t, fmt.Sprint(c.Issues), node)
	})

	t.Run("the web view shows the stale node without a reload", func(t *testing.T) {
		require.NotNil(t, web, "the web view was opened")
		web.waitFor(t, settle, "worker-2 stale", cellJS("nodes", "data-node", "worker-2.e2e", "status")+` === 'stale'`)
		web.waitFor(t, settle, "one stale node in the summary", `document.querySelector('[data-card=nodes] small').textContent.includes('1 stale')`)
		web.waitFor(t, settle, "the issue listed", `document.getElementById('issues').textContent.includes('worker-2.e2e')`)
		require.True(t, eval[bool](t, web, `window.e2eLoaded === true`), "the page updated itself, without a reload")
		// The events tab lists the aggregator's NodeStale event.
		web.do(t, settle, chromedp.Click(chromedp.CSS(`#tabs button[data-tab=events]`)))
		web.waitFor(t, settle, "the NodeStale event", `Array.from(document.querySelectorAll('#events tbody tr')).some(r => r.textContent.includes('NodeStale') && r.textContent.includes('worker-2.e2e'))`)
		web.do(t, settle, chromedp.Click(chromedp.CSS(`#tabs button[data-tab=nodes]`)))
	})

	t.Run("a kubelet returning errors is reported on its node, and recovers", func(t *testing.T) {
		const node = "worker-1.e2e"
		k := e.kubelets[node]
		k.setFail(true)
		var m model.NodeMetrics
		require.Eventually(t, func() bool {
			code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+node, &m)
			return err == nil && code == http.StatusOK && m.Sources["kubelet"].Status == model.SourceFailed
		}, settle, 250*time.Millisecond, "kubelet source of %s: %+v", node, m.Sources["kubelet"])
		assert.Contains(t, m.Sources["kubelet"].Reason, "500", "the reason names the kubelet's answer")
		assert.False(t, m.Stale, "the agent still reports")
		code, err := getJSON(e.agg.api+"/api/v1/metrics/pods", nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)

		k.setFail(false)
		require.Eventually(t, func() bool {
			p, ok := e.pods(t)["team-a/web-1"]
			code, err := getJSON(e.agg.api+"/api/v1/metrics/nodes/"+node, &m)
			return ok && err == nil && code == http.StatusOK && m.Sources["kubelet"].Status == model.SourceOK &&
				p.UsageSource == "kubelet" && abs(p.CPUUsage-250) <= 1
		}, settle, 250*time.Millisecond, "kubelet source recovered: %+v", m.Sources["kubelet"])
	})

	t.Run("a restarted aggregator serves again and agents come back", func(t *testing.T) {
		e.agg.proc.Stop()
		// Same NATS port: the agents and the subscriber reconnect to it.
		e.agg = startAggregator(t, e.root, e.productBin, e.logs, "aggregator-restarted", aggKC, natsPort, e.aggregatorArgs()...)
		live := []string{"worker-1.e2e", "worker-3.e2e"}
		require.Eventually(t, func() bool {
			got := e.nodes(t)
			for _, n := range live {
				if m, ok := got[n]; !ok || m.UsageSource != "agent" || m.Stale {
					return false
				}
			}
			p, ok := e.pods(t)["team-a/web-1"]
			return ok && p.UsageSource == "kubelet" && abs(p.CPUUsage-250) <= 1 && p.Restarts == 3
		}, settle, 250*time.Millisecond, "nodes and pods after the aggregator restarted")
		// The agent killed earlier is still missing: its node is listed
		// from the API server, without agent data.
		m, ok := e.nodes(t)["worker-2.e2e"]
		require.True(t, ok)
		assert.NotEqual(t, "agent", m.UsageSource)
		// Cluster events flow again to the same subscriber.
		e.cp.setVMIPhase(t, "team-a", "vm-1", "Running")
		e.waitEvent(t, settle, "VMStarted after the restart", func(ev *model.Event) bool {
			return ev.Type == model.EventVMStarted && strings.Contains(ev.Message, "vm-1")
		})
	})
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func milli(q string) int64 { r := resource.MustParse(q); return r.MilliValue() }
func value(q string) int64 { r := resource.MustParse(q); return r.Value() }
