package vm

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

func TestParseVMIFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Object
	}{
		{
			// 2 cores x 1 socket x 2 threads = 4 vCPUs = 4000m; guest
			// memory wins over the larger pod request.
			file: "vmi-running.yaml",
			want: Object{
				Source: SourceKubeVirt, UID: uidUbuntu, Namespace: "vms", Name: "ubuntu-vm", VMName: "ubuntu-vm",
				CPU: 4000, Memory: 8 * gib, MemoryQuantity: "8Gi", Phase: "Running", Node: "worker-1",
				Interfaces: []Interface{{Name: "default", IP: "10.244.1.23"}},
				PVCs:       []PVC{{Name: "ubuntu-vm-root"}, {Name: "ubuntu-vm-data"}},
			},
		},
		{
			// cores 2, sockets and threads default to 1.
			file: "vmi-pending.yaml",
			want: Object{
				Source: SourceKubeVirt, UID: uidWin, Namespace: "vms", Name: "win-vm", VMName: "win-vm",
				CPU: 2000, Memory: 4 * gib, MemoryQuantity: "4Gi", Phase: "Scheduling",
				PVCs: []PVC{{Name: "win-vm-root"}},
			},
		},
		{
			// No topology: requests.cpu "2" (not limits "4"); no guest
			// memory: requests.memory.
			file: "vmi-requests.yaml",
			want: Object{
				Source: SourceKubeVirt, UID: uidFedora, Namespace: "dev", Name: "fedora-vm", VMName: "fedora-vm",
				CPU: 2000, Memory: 2 * gib, MemoryQuantity: "2Gi", Phase: "Running", Node: "worker-2",
				Interfaces: []Interface{{Name: "default", IP: "10.244.2.7"}},
				PVCs:       []PVC{{Name: "fedora-vm-block"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseVMI(loadObject(t, tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseCustomWukong(t *testing.T) {
	got, err := ParseCustom(wukongResource, loadObject(t, "wukong.yaml"))
	require.NoError(t, err)
	assert.Equal(t, Object{
		Source: "wukong", UID: uidWukong, Namespace: "default", Name: "ubuntu", VMName: "ubuntu-vm-dual-network-dhcp",
		CPU: 4000, Memory: 8 * gib, MemoryQuantity: "8Gi", Phase: "Running", Node: "worker-2",
		PVCs: []PVC{
			{Name: "ubuntu-vm-dual-network-dhcp-system", Capacity: 20 * gib},
			{Name: "ubuntu-vm-dual-network-dhcp-data", Capacity: 50 * gib},
		},
	}, got)
}

func TestParseCustomValues(t *testing.T) {
	tests := []struct {
		name   string
		fields config.CustomVMFields
		obj    string
		want   Object
	}{
		{
			name:   "missing paths are tolerated",
			fields: wukongResource.Fields,
			obj:    `{"metadata":{"name":"bare","namespace":"ns","uid":"u1"}}`,
			want:   Object{Source: "wukong", UID: "u1", Namespace: "ns", Name: "bare", VMName: "bare", Phase: "Unknown"},
		},
		{
			name:   "unset paths are not read; vmName defaults to metadata.name",
			fields: config.CustomVMFields{},
			obj:    `{"metadata":{"name":"vm","namespace":"ns"},"spec":{"cpu":4,"memory":"8Gi"}}`,
			want:   Object{Source: "wukong", Namespace: "ns", Name: "vm", VMName: "vm", Phase: "Unknown"},
		},
		{
			name:   "cpu as a quantity string, memory as bytes",
			fields: config.CustomVMFields{CPU: "spec.cpu", Memory: "spec.memory"},
			obj:    `{"metadata":{"name":"vm","namespace":"ns"},"spec":{"cpu":"1500m","memory":3221225472}}`,
			want:   Object{Source: "wukong", Namespace: "ns", Name: "vm", VMName: "vm", CPU: 1500, Memory: 3 * gib, MemoryQuantity: "3Gi", Phase: "Unknown"},
		},
		{
			name:   "cpu as a whole-number string",
			fields: config.CustomVMFields{CPU: "spec.cpu"},
			obj:    `{"metadata":{"name":"vm"},"spec":{"cpu":"8"}}`,
			want:   Object{Source: "wukong", Name: "vm", VMName: "vm", CPU: 8000, Phase: "Unknown"},
		},
		{
			name:   "volume items without a PVC name are skipped, capacity may be bytes",
			fields: wukongResource.Fields,
			obj:    `{"metadata":{"name":"vm"},"status":{"volumes":[{"name":"cdrom"},{"pvcName":"d1","capacity":1073741824}]}}`,
			want:   Object{Source: "wukong", Name: "vm", VMName: "vm", Phase: "Unknown", PVCs: []PVC{{Name: "d1", Capacity: gib}}},
		},
		{
			name:   "status null",
			fields: wukongResource.Fields,
			obj:    `{"metadata":{"name":"vm"},"status":null}`,
			want:   Object{Source: "wukong", Name: "vm", VMName: "vm", Phase: "Unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := wukongResource
			r.Fields = tt.fields
			got, err := ParseCustom(r, decodeJSON(t, tt.obj))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name   string
		custom bool
		obj    string
	}{
		{name: "vmi without name", obj: `{"metadata":{"namespace":"ns"}}`},
		{name: "vmi cores not a number", obj: `{"metadata":{"name":"a"},"spec":{"domain":{"cpu":{"cores":"two"}}}}`},
		{name: "vmi cores zero", obj: `{"metadata":{"name":"a"},"spec":{"domain":{"cpu":{"cores":0}}}}`},
		{name: "vmi bad cpu request", obj: `{"metadata":{"name":"a"},"spec":{"domain":{"resources":{"requests":{"cpu":"lots"}}}}}`},
		{name: "vmi bad guest memory", obj: `{"metadata":{"name":"a"},"spec":{"domain":{"memory":{"guest":"8 GB"}}}}`},
		{name: "vmi negative memory", obj: `{"metadata":{"name":"a"},"spec":{"domain":{"memory":{"guest":"-1Gi"}}}}`},
		{name: "vmi domain not an object", obj: `{"metadata":{"name":"a"},"spec":{"domain":"x"}}`},
		{name: "vmi volumes not a list", obj: `{"metadata":{"name":"a"},"spec":{"volumes":{"a":1}}}`},
		{name: "vmi volume item not an object", obj: `{"metadata":{"name":"a"},"spec":{"volumes":["a"]}}`},
		{name: "vmi claim name not a string", obj: `{"metadata":{"name":"a"},"spec":{"volumes":[{"persistentVolumeClaim":{"claimName":3}}]}}`},
		{name: "vmi phase not a string", obj: `{"metadata":{"name":"a"},"status":{"phase":1}}`},
		{name: "vmi interfaces not a list", obj: `{"metadata":{"name":"a"},"status":{"interfaces":"eth0"}}`},
		{name: "custom cpu a bool", custom: true, obj: `{"metadata":{"name":"a"},"spec":{"cpu":true}}`},
		{name: "custom cpu negative", custom: true, obj: `{"metadata":{"name":"a"},"spec":{"cpu":-2}}`},
		{name: "custom memory not a quantity", custom: true, obj: `{"metadata":{"name":"a"},"spec":{"memory":"eight"}}`},
		{name: "custom spec a string", custom: true, obj: `{"metadata":{"name":"a"},"spec":"x"}`},
		{name: "custom vmName a number", custom: true, obj: `{"metadata":{"name":"a"},"status":{"vmName":7}}`},
		{name: "custom volumes not a list", custom: true, obj: `{"metadata":{"name":"a"},"status":{"volumes":"pvc"}}`},
		{name: "custom capacity not a quantity", custom: true, obj: `{"metadata":{"name":"a"},"status":{"volumes":[{"pvcName":"p","capacity":"big"}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := decodeJSON(t, tt.obj)
			var err error
			if tt.custom {
				_, err = ParseCustom(wukongResource, u)
			} else {
				_, err = ParseVMI(u)
			}
			require.ErrorIs(t, err, errMalformed)
		})
	}
}

// TestParseFloatNumbers covers objects decoded by plain encoding/json,
// where every number is a float64.
func TestParseFloatNumbers(t *testing.T) {
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"metadata":{"name":"a"},"spec":{"domain":{"cpu":{"cores":2,"threads":2}}}}`), &m))
	o, err := ParseVMI(&unstructured.Unstructured{Object: m})
	require.NoError(t, err)
	assert.Equal(t, int64(4000), o.CPU)

	require.NoError(t, json.Unmarshal([]byte(`{"metadata":{"name":"a"},"spec":{"domain":{"cpu":{"cores":1.5}}}}`), &m))
	_, err = ParseVMI(&unstructured.Unstructured{Object: m})
	require.ErrorIs(t, err, errMalformed)
}

func decodeJSON(t testing.TB, s string) *unstructured.Unstructured {
	t.Helper()
	obj, _, err := unstructured.UnstructuredJSONScheme.Decode([]byte(addKind(s)), nil, nil)
	require.NoError(t, err)
	return obj.(*unstructured.Unstructured)
}

// addKind gives test objects the apiVersion and kind the decoder insists
// on; they play no part in parsing.
func addKind(s string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return s
	}
	if _, ok := m["kind"]; !ok {
		m["apiVersion"], m["kind"] = "test.io/v1", "Thing"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// FuzzParse feeds arbitrary objects to both parsers: outside input must
// never panic them, only be rejected.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachineInstance","metadata":{"name":"a"},"spec":{"domain":{"cpu":{"cores":2}}}}`))
	f.Add([]byte(`{"apiVersion":"wukong.io/v1","kind":"Wukong","metadata":{"name":"a"},"spec":{"cpu":4,"memory":"8Gi"},"status":{"volumes":[{"pvcName":"p","capacity":"1Gi"}]}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"X","metadata":{"name":"a"},"spec":{"domain":{"resources":{"requests":{"cpu":1e300}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(data, nil, nil)
		if err != nil {
			return
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		if o, err := ParseVMI(u); err == nil {
			assertSane(t, o)
		}
		if o, err := ParseCustom(wukongResource, u); err == nil {
			assertSane(t, o)
		}
	})
}

func assertSane(t *testing.T, o Object) {
	if o.Name == "" || o.CPU < 0 || o.Memory < 0 {
		t.Fatalf("accepted an impossible object: %+v", o)
	}
}
