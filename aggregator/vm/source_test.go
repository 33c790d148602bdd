package vm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

type staticObjects struct{ objs []Object }

func (s *staticObjects) Objects() []Object { return s.objs }
func (s *staticObjects) Status() map[string]model.SourceStatus {
	return map[string]model.SourceStatus{"vm:kubevirt": {Name: "vm:kubevirt", Status: model.SourceOK}}
}

func TestSourceEventsAfterFirstCall(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	vmi := Object{Source: SourceKubeVirt, UID: "vmi-1", Namespace: "vms", Name: "db", VMName: "db",
		CPU: 2000, Memory: 4 << 30, MemoryQuantity: "4Gi", Phase: PhaseRunning, Node: "node-1"}
	objs := &staticObjects{objs: []Object{vmi}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "virt-launcher-db-abcde",
		Labels: map[string]string{LabelCreatedBy: "vmi-1"}, UID: types.UID("pod-1")},
		Spec: corev1.PodSpec{NodeName: "node-1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	usage := map[string]state.Usage{"vms/virt-launcher-db-abcde": {CPU: 500, Memory: 1 << 30}}

	src := NewSource(objs)
	vms, events := src.VMs([]*corev1.Pod{pod}, usage, nil, now)
	require.Len(t, vms, 1)
	assert.Empty(t, events, "no VMStarted for VMs running at start-up")
	require.NotNil(t, vms[0].Metrics)
	assert.InDelta(t, 25.0, vms[0].Metrics.CPUUsage, 1e-9, "500m of 2 cores")

	moved := vmi
	moved.Node = "node-2"
	objs.objs = []Object{moved}
	_, events = src.VMs([]*corev1.Pod{pod}, usage, nil, now.Add(time.Minute))
	require.Len(t, events, 1)
	assert.Equal(t, model.EventVMMoved, events[0].Type)

	objs.objs = nil
	_, events = src.VMs(nil, nil, nil, now.Add(2*time.Minute))
	require.Len(t, events, 1)
	assert.Equal(t, model.EventVMStopped, events[0].Type)
	assert.Contains(t, src.Status(), "vm:kubevirt")
}
