package chart

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	serializerjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

const (
	releaseNamespace = "k8s-llm-monitor"
	deployFile       = "../../deploy/k8s-llm-monitor.yaml"
)

// serviceMonitorGVK is the Prometheus Operator's kind, which client-go's
// scheme does not know: decoded as unstructured and checked by hand.
var serviceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// strictDecoder decodes YAML into client-go's typed objects and fails on
// unknown and duplicate fields.
var strictDecoder = serializerjson.NewSerializerWithOptions(
	serializerjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	serializerjson.SerializerOptions{Yaml: true, Strict: true})

// object is one decoded document of a render.
type object struct {
	gvk schema.GroupVersionKind
	obj runtime.Object // typed, or *unstructured.Unstructured for a ServiceMonitor
	at  string         // file and document number, for messages
}

func (o object) meta() metav1.Object {
	m, err := metaAccessor(o.obj)
	if err != nil {
		panic(err)
	}
	return m
}

func metaAccessor(obj runtime.Object) (metav1.Object, error) {
	if m, ok := obj.(metav1.Object); ok {
		return m, nil
	}
	return nil, fmt.Errorf("%T has no object metadata", obj)
}

// render is one rendered file.
type render struct {
	name string // "deploy" or the testdata file's base name
	path string
	raw  []byte
	objs []object
}

// decodeDocument decodes one YAML document; ok is false for an empty one
// (comments only).
func decodeDocument(doc []byte) (obj object, ok bool, err error) {
	js, err := utilyaml.ToJSON(doc)
	if err != nil {
		return object{}, false, fmt.Errorf("not YAML: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return object{}, false, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return object{}, false, fmt.Errorf("read apiVersion and kind: %w", err)
	}
	gvk := tm.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return object{}, false, errors.New("no apiVersion or kind")
	}
	if gvk == serviceMonitorGVK {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return object{}, false, err
		}
		return object{gvk: gvk, obj: u}, true, nil
	}
	if !scheme.Scheme.Recognizes(gvk) {
		return object{}, false, fmt.Errorf("%s is not a kind client-go knows; only %s is allowed outside its scheme", gvk, serviceMonitorGVK)
	}
	typed, got, err := strictDecoder.Decode(doc, nil, nil)
	if err != nil {
		return object{}, false, err
	}
	return object{gvk: *got, obj: typed}, true, nil
}

func loadRender(t *testing.T, path string) render {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err, "run `make manifests` to render the chart")
	name := strings.TrimSuffix(filepath.Base(path), ".yaml")
	if path == deployFile {
		name = "deploy"
	}
	r := render{name: name, path: path, raw: raw}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s: document %d", path, i)
		obj, ok, err := decodeDocument(doc)
		require.NoError(t, err, "%s: document %d does not decode strictly", path, i)
		if !ok {
			continue
		}
		obj.at = fmt.Sprintf("%s#%d (%s %s)", filepath.Base(path), i, obj.gvk.Kind, obj.meta().GetName())
		r.objs = append(r.objs, obj)
	}
	require.NotEmpty(t, r.objs, "%s: no objects", path)
	return r
}

// loadRenders reads deploy/k8s-llm-monitor.yaml and every render in
// testdata (not the *.values.yaml inputs).
func loadRenders(t *testing.T) []render {
	t.Helper()
	out := []render{loadRender(t, deployFile)}
	paths, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	sort.Strings(paths)
	for _, p := range paths {
		if strings.HasSuffix(p, ".values.yaml") {
			continue
		}
		out = append(out, loadRender(t, p))
	}
	names := make([]string, len(out))
	for i, r := range out {
		names[i] = r.name
	}
	// The documented examples and the extra branches must all be rendered.
	require.Subset(t, names, []string{"deploy", "external-nats", "external-nats-callout", "gpu-nodes", "vms", "all-features"})
	return out
}

// all returns the render's objects of type T.
func all[T runtime.Object](r render) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the render's object of type T with the given name.
func one[T runtime.Object](t *testing.T, r render, name string) T {
	t.Helper()
	for _, v := range all[T](r) {
		m, err := metaAccessor(v)
		require.NoError(t, err)
		if m.GetName() == name {
			return v
		}
	}
	var zero T
	require.Failf(t, "object not rendered", "%s: no %T named %s", r.name, zero, name)
	return zero
}

// has reports whether the render holds an object of type T with the name.
func has[T runtime.Object](r render, name string) bool {
	for _, v := range all[T](r) {
		if m, err := metaAccessor(v); err == nil && m.GetName() == name {
			return true
		}
	}
	return false
}
