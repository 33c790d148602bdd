package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// nodeList and podList decode list responses.
type nodeList struct {
	Count int                  `json:"count"`
	Total int                  `json:"total"`
	Items []*model.NodeMetrics `json:"items"`
}

type podList struct {
	Count int                 `json:"count"`
	Total int                 `json:"total"`
	Items []*model.PodMetrics `json:"items"`
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(body, &v), string(body))
	return v
}

func gibs(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/float64(gib)) }
func mibs(b int64) string { return fmt.Sprintf("%d MiB", b/mib) }

// seedQuestions are the questions seed 000 says an LLM must be able to
// answer, each with the one request that answers it and the answer derived
// from the response on the fixture cluster. docs/questions.md shows the
// same requests and answers.
var seedQuestions = []struct {
	question string
	request  string
	answer   func(t *testing.T, body []byte) string
	want     string
}{
	{
		question: "What is node-3's CPU usage rate?",
		request:  "/api/v1/metrics/nodes/node-3",
		answer: func(t *testing.T, body []byte) string {
			n := decode[model.NodeMetrics](t, body)
			return fmt.Sprintf("%.1f%% (%dm of %dm)", n.CPUUsageRate, n.CPUUsage, n.CPUCapacity)
		},
		want: "87.5% (7000m of 8000m)",
	},
	{
		question: "Which nodes are the most loaded?",
		request:  "/api/v1/metrics/nodes?sort=cpu&limit=3",
		answer: func(t *testing.T, body []byte) string {
			var parts []string
			for _, n := range decode[nodeList](t, body).Items {
				parts = append(parts, fmt.Sprintf("%s %.1f%%", n.NodeName, n.CPUUsageRate))
			}
			return strings.Join(parts, ", ")
		},
		want: "node-3 87.5%, node-2 70.0%, node-1 35.0%",
	},
	{
		question: "Is node-2 under resource pressure?",
		request:  "/api/v1/metrics/nodes?pressure=true",
		answer: func(t *testing.T, body []byte) string {
			for _, n := range decode[nodeList](t, body).Items {
				if n.NodeName == "node-2" {
					return "yes: " + strings.Join(n.PressureReasons(model.DefaultThresholds()), ", ")
				}
			}
			return "no"
		},
		want: "yes: memory usage 93.1% >= 90.0%",
	},
	{
		question: "How many healthy nodes does the cluster have?",
		request:  "/api/v1/metrics/cluster",
		answer: func(t *testing.T, body []byte) string {
			c := decode[model.ClusterMetrics](t, body)
			return fmt.Sprintf("%d of %d", c.HealthyNodes, c.TotalNodes)
		},
		want: "3 of 5",
	},
	{
		question: "Which pods use more than 90% of their memory limit?",
		request:  "/api/v1/metrics/pods?minMemoryLimitRate=90&sort=memoryRate",
		answer: func(t *testing.T, body []byte) string {
			var parts []string
			for _, p := range decode[podList](t, body).Items {
				parts = append(parts, fmt.Sprintf("%s %.1f%% of %s", p.Key(), p.MemoryUsageRate, mibs(p.MemoryLimit)))
			}
			return strings.Join(parts, ", ")
		},
		want: "default/my-pod 97.7% of 512 MiB, default/web-2 93.8% of 512 MiB",
	},
	{
		question: "How many pods are running in the default namespace?",
		request:  "/api/v1/metrics/pods?namespace=default&phase=Running",
		answer: func(t *testing.T, body []byte) string {
			return fmt.Sprint(decode[podList](t, body).Count)
		},
		want: "4",
	},
	{
		question: "Why does my-pod keep restarting?",
		request:  "/api/v1/metrics/pods/default/my-pod",
		answer: func(t *testing.T, body []byte) string {
			p := decode[model.PodMetrics](t, body)
			c := p.Containers[0]
			return fmt.Sprintf("%d restarts; container %s last terminated %s (exit code %d) and is in %s; memory %s is %.1f%% of its %s limit",
				p.Restarts, c.Name, c.LastTerminationReason, c.LastExitCode, c.Reason, mibs(p.MemoryUsage), p.MemoryUsageRate, mibs(p.MemoryLimit))
		},
		want: "7 restarts; container app last terminated OOMKilled (exit code 137) and is in CrashLoopBackOff; memory 500 MiB is 97.7% of its 512 MiB limit",
	},
	{
		question: "Which node is pod xyz on, and what does it use?",
		request:  "/api/v1/metrics/pods?name=xyz",
		answer: func(t *testing.T, body []byte) string {
			l := decode[podList](t, body)
			require.Equal(t, 1, l.Count)
			p := l.Items[0]
			return fmt.Sprintf("%s on %s: cpu %dm (%.1f%% of limit), memory %s (%.1f%% of limit)",
				p.Key(), p.NodeName, p.CPUUsage, p.CPUUsageRate, mibs(p.MemoryUsage), p.MemoryUsageRate)
		},
		want: "default/xyz on node-3: cpu 302m (30.2% of limit), memory 256 MiB (25.0% of limit)",
	},
	{
		question: "What is the cluster's overall CPU usage rate?",
		request:  "/api/v1/metrics/cluster",
		answer: func(t *testing.T, body []byte) string {
			c := decode[model.ClusterMetrics](t, body)
			return fmt.Sprintf("%.1f%% (%dm of %dm)", c.CPUUsageRate, c.UsedCPU, c.TotalCPU)
		},
		want: "42.5% (17000m of 40000m)",
	},
	{
		question: "How healthy is the cluster, and what are its issues?",
		request:  "/api/v1/metrics/cluster",
		answer: func(t *testing.T, body []byte) string {
			c := decode[model.ClusterMetrics](t, body)
			return c.HealthStatus + ": " + strings.Join(c.Issues, "; ")
		},
		want: "warning: node node-2 is under pressure: memory usage 93.1% >= 90.0%; node node-4 is not ready; " +
			"pod default/batch-1 failed: Evicted; " +
			"pod default/my-pod is restarting: 7 restarts, last terminated OOMKilled, container app in CrashLoopBackOff, memory at 97.7% of its limit",
	},
	{
		question: "How much capacity is left in the cluster?",
		request:  "/api/v1/metrics/cluster",
		answer: func(t *testing.T, body []byte) string {
			c := decode[model.ClusterMetrics](t, body)
			return fmt.Sprintf("cpu %dm of %dm, memory %s of %s, GPUs %d of %d",
				c.TotalCPU-c.UsedCPU, c.TotalCPU, gibs(c.TotalMemory-c.UsedMemory), gibs(c.TotalMemory), c.AvailableGPUs, c.TotalGPUs)
		},
		want: "cpu 23000m of 40000m, memory 88.6 GiB of 160.0 GiB, GPUs 2 of 4",
	},
	{
		question: "How many pods are not Running?",
		request:  "/api/v1/metrics/pods?phase=!Running",
		answer: func(t *testing.T, body []byte) string {
			l := decode[podList](t, body)
			var parts []string
			for _, p := range l.Items {
				parts = append(parts, p.Key()+" "+p.Phase)
			}
			return fmt.Sprintf("%d: %s", l.Count, strings.Join(parts, ", "))
		},
		want: "2: default/batch-1 Failed, default/pending-1 Pending",
	},
}

func TestQuestions(t *testing.T) {
	h := New(fixtureStore(t), Options{})
	for _, q := range seedQuestions {
		t.Run(q.question, func(t *testing.T) {
			rec := get(h, q.request)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, q.want, q.answer(t, rec.Body.Bytes()))
		})
	}
}

// TestQuestionsDocumented keeps docs/questions.md in step with the test:
// every question's request and answer must appear there.
func TestQuestionsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/questions.md")
	require.NoError(t, err)
	for _, q := range seedQuestions {
		assert.Contains(t, string(doc), "GET "+q.request, q.question)
		assert.Contains(t, string(doc), q.want, q.question)
	}
}
