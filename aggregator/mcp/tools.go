package mcp

import (
	"context"
	"fmt"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

var (
	nodeSorts = []string{"cpu", "memory", "disk", "gpu"}
	podSorts  = []string{"cpu", "memory", "restarts", "cpuRate", "memoryRate"}
	vmSorts   = []string{"name", "cpu", "memory", "disk"}
	orders    = []string{"asc", "desc"}
)

// addTools registers every tool whose dependencies are there.
func (s *Server) addTools() error {
	errs := []error{
		addTool(s, toolSpec{name: "cluster_overview", title: "Cluster overview",
			description: "The cluster's health in one answer: healthy, stale and pressured nodes, pods by phase, CPU, memory and GPUs used and free, failing sources, and the ranked list of issues. Start here."},
			s.clusterOverview),
		addTool(s, toolSpec{name: "list_nodes", title: "List nodes",
			description: "Nodes with their status and usage rates (cpu, mem, disk, gpu), filtered like GET /api/v1/metrics/nodes. Most relevant first unless sort or order is given: unhealthy or stale, then under pressure, then the highest usage.",
			enums:       map[string][]string{"sort": nodeSorts, "order": orders}},
			s.listNodes),
		addTool(s, toolSpec{name: "get_node", title: "Get node",
			description: "One node: status and pressure, cpu/memory/disk used against capacity and allocatable, conditions, taints, failing sources, its GPUs, its pods (most relevant first) and labels."},
			s.getNode),
		addTool(s, toolSpec{name: "list_pods", title: "List pods",
			description: "Pods with phase, readiness, restarts, usage against limits and the kubelet's reasons, filtered like GET /api/v1/metrics/pods. Most relevant first unless sort or order is given: failing, then most restarts, then highest usage against the limit.",
			enums:       map[string][]string{"sort": podSorts, "order": orders}},
			s.listPods),
		addTool(s, toolSpec{name: "get_pod", title: "Get pod",
			description: "One pod: phase, readiness, restarts, each container's state, reason and last termination (reason, exit code), usage against requests and limits, owner, GPUs, and the VM it runs if it is a virt-launcher pod."},
			s.getPod),
		addTool(s, toolSpec{name: "list_vms", title: "List VMs",
			description: "Virtual machines (KubeVirt and custom VM resources) with status, node, allocation and usage in percent of it, filtered like GET /api/vms. Most relevant first unless sort or order is given: not running, then highest usage.",
			enums:       map[string][]string{"sort": vmSorts, "order": orders}},
			s.listVMs),
		addTool(s, toolSpec{name: "get_vm", title: "Get VM",
			description: "One virtual machine: status, node, allocation, usage, volumes, and its launcher pod (which diagnose_pod diagnoses)."},
			s.getVM),
		addTool(s, toolSpec{name: "gpu_overview", title: "GPU overview",
			description: "Every GPU: model, utilization, memory, temperature, power, uncorrected ECC errors and the pods holding it; hot or erroring GPUs first, then the busiest."},
			s.gpuOverview),
		addTool(s, toolSpec{name: "metric_history", title: "Metric history",
			description: "A node's or a pod's usage over the kept history (metrics.cache_retention), downsampled to a number of points: means, maxima and restarts per stretch, oldest first. Shows whether memory climbs before restarts.",
			enums:       map[string][]string{"kind": {"node", "pod"}}},
			s.metricHistory),
	}
	if s.opts.DiagnosePod != nil {
		errs = append(errs, addTool(s, toolSpec{name: "diagnose_pod", title: "Diagnose pod",
			description: "Why a pod fails, restarts or stays pending, in one call: a verdict decided by documented rules, then its evidence (termination history, OOM kills, events, scheduling, usage against limits), most important first."},
			s.diagnosePod))
	}
	if s.opts.DiagnoseNode != nil {
		errs = append(errs, addTool(s, toolSpec{name: "diagnose_node", title: "Diagnose node",
			description: "What is wrong with a node, in one call: a verdict, then its evidence (conditions and pressure, allocatable against requests, top pods, events, GPU XID/ECC errors)."},
			s.diagnoseNode))
	}
	if s.opts.RecentEvents != nil {
		errs = append(errs, addTool(s, toolSpec{name: "recent_events", title: "Recent events",
			description: "Kubernetes, agent and aggregator events kept well past the API server's hour, filtered like GET /api/v1/events; most severe first, then newest."},
			s.recentEvents))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// addPrompts registers the prompts: ready-made questions that tell the
// model which tools answer them.
func (s *Server) addPrompts() {
	s.sdk.AddPrompt(&sdk.Prompt{
		Name: "why-is-pod-restarting", Title: "Why is my pod restarting?",
		Description: "Find why a pod restarts or crash-loops, with evidence.",
		Arguments: []*sdk.PromptArgument{
			{Name: "namespace", Description: "the pod's namespace", Required: true},
			{Name: "name", Description: "the pod's name", Required: true},
		},
	}, s.whyRestarting)
	s.sdk.AddPrompt(&sdk.Prompt{
		Name: "cluster-health-check", Title: "Cluster health check",
		Description: "Check the whole cluster and list what needs attention, most urgent first.",
	}, s.healthCheck)
	s.sdk.AddPrompt(&sdk.Prompt{
		Name: "gpu-health", Title: "Is this GPU healthy?",
		Description: "Check the GPUs of the cluster or of one node: temperature, ECC and XID errors, utilization, and who holds them.",
		Arguments:   []*sdk.PromptArgument{{Name: "node", Description: "only this node's GPUs (optional)"}},
	}, s.gpuHealth)
}

func promptResult(description, text string) *sdk.GetPromptResult {
	return &sdk.GetPromptResult{
		Description: description,
		Messages:    []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: text}}},
	}
}

// promptArg reads an argument, bounded like tool arguments.
func promptArg(req *sdk.GetPromptRequest, name string, required bool) (string, error) {
	v := strings.TrimSpace(req.Params.Arguments[name])
	switch {
	case v == "" && required:
		return "", fmt.Errorf("argument %s is required", name)
	case len(v) > maxNameLen:
		return "", fmt.Errorf("argument %s: longer than %d bytes", name, maxNameLen)
	case strings.ContainsAny(v, " \n\t\"'`"):
		return "", fmt.Errorf("argument %s=%q: not a Kubernetes name", name, v)
	}
	return v, nil
}

func (s *Server) whyRestarting(_ context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	ns, err := promptArg(req, "namespace", true)
	if err != nil {
		return nil, err
	}
	name, err := promptArg(req, "name", true)
	if err != nil {
		return nil, err
	}
	steps := fmt.Sprintf("Why does pod %s/%s keep restarting?\n", ns, name)
	if s.opts.DiagnosePod != nil {
		steps += fmt.Sprintf("1. Call diagnose_pod with namespace=%s name=%s: it gives a verdict and its evidence (termination history with reasons and exit codes, OOM kills, probe failures, events).\n", ns, name)
	} else {
		steps += fmt.Sprintf("1. Call get_pod with namespace=%s name=%s: read each container's last termination reason and exit code and its memory against the limit.\n", ns, name)
	}
	steps += fmt.Sprintf("2. Call metric_history with kind=pod namespace=%s name=%s to see whether memory climbs to the limit before each restart.\n", ns, name)
	if s.opts.RecentEvents != nil {
		steps += fmt.Sprintf("3. If the cause is still unclear, call recent_events with namespace=%s pod=%s.\n", ns, name)
	}
	steps += "Answer with the cause in one sentence, the evidence that shows it, and the fix. Exit code 137 is a kill signal, not necessarily an OOM kill: say OOM only when the evidence shows one."
	return promptResult("Find why a pod restarts", steps), nil
}

func (s *Server) healthCheck(_ context.Context, _ *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	text := "Check the health of the Kubernetes cluster.\n" +
		"1. Call cluster_overview.\n" +
		"2. For unhealthy or pressured nodes call list_nodes with healthy=false, then pressure=true.\n" +
		"3. For failing pods call list_pods (most relevant first) or list_pods phase=!Running.\n"
	if s.opts.DiagnoseNode != nil || s.opts.DiagnosePod != nil {
		text += "4. Diagnose the worst node and the worst pod with diagnose_node and diagnose_pod.\n"
	}
	text += "Report what needs attention, most urgent first, one line each with the evidence; say plainly when the cluster is healthy."
	return promptResult("Check the cluster's health", text), nil
}

func (s *Server) gpuHealth(_ context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	node, err := promptArg(req, "node", false)
	if err != nil {
		return nil, err
	}
	text := "Are the GPUs healthy?\n1. Call gpu_overview"
	if node != "" {
		text = fmt.Sprintf("Are the GPUs of node %s healthy?\n1. Call gpu_overview with node=%s", node, node)
	}
	text += ": temperature, uncorrected ECC errors, utilization and the pods holding each GPU.\n"
	if s.opts.RecentEvents != nil {
		text += "2. Call recent_events"
		if node != "" {
			text += " with node=" + node
		}
		text += " and look for GPU XID and ECC events.\n"
	}
	if node != "" && s.opts.DiagnoseNode != nil {
		text += fmt.Sprintf("3. Call diagnose_node with name=%s.\n", node)
	}
	text += "Say for each GPU with a problem what it is and which pods it affects; say plainly when all are healthy."
	return promptResult("Check GPU health", text), nil
}
