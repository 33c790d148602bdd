package kube

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxInterned bounds each table of an interner; a full table is emptied
// and fills again with what is still in use.
const maxInterned = 4096

// interner lets cached objects share equal labels, resource lists, owner
// references and tolerations: the replicas of a Deployment carry the same
// ones, each decoded into its own maps and slices, and at thousands of
// pods these copies were a fifth of the cache. Sharing is safe because
// cached objects are never modified (client-go's contract for listers),
// and a value is shared only with an equal one. Tables are bounded, so a
// churning cluster cannot grow them; informers of several namespaces call
// it concurrently.
type interner struct {
	mu          sync.Mutex
	labels      map[string]map[string]string
	resources   map[string]corev1.ResourceList
	owners      map[string][]metav1.OwnerReference
	tolerations map[string][]corev1.Toleration
	key         strings.Builder
}

func newInterner() *interner {
	return &interner{
		labels:      map[string]map[string]string{},
		resources:   map[string]corev1.ResourceList{},
		owners:      map[string][]metav1.OwnerReference{},
		tolerations: map[string][]corev1.Toleration{},
	}
}

// intern returns the table's value for key, storing v when there is none.
func intern[V any](table map[string]V, key string, v V) V {
	if old, ok := table[key]; ok {
		return old
	}
	if len(table) >= maxInterned {
		clear(table)
	}
	table[key] = v
	return v
}

func (in *interner) labelsOf(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.key.Reset()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		in.field(k)
		in.field(m[k])
	}
	return intern(in.labels, in.key.String(), m)
}

func (in *interner) resourcesOf(l corev1.ResourceList) corev1.ResourceList {
	if len(l) == 0 {
		return l
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.key.Reset()
	for _, k := range slices.Sorted(maps.Keys(l)) {
		q := l[k]
		in.field(string(k))
		in.field(string(q.Format))
		in.field(q.String())
	}
	return intern(in.resources, in.key.String(), l)
}

func (in *interner) ownersOf(refs []metav1.OwnerReference) []metav1.OwnerReference {
	if len(refs) == 0 {
		return refs
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.key.Reset()
	for _, r := range refs {
		in.field(r.APIVersion)
		in.field(r.Kind)
		in.field(r.Name)
		in.field(string(r.UID))
		in.field(boolPtr(r.Controller))
		in.field(boolPtr(r.BlockOwnerDeletion))
	}
	return intern(in.owners, in.key.String(), refs)
}

func (in *interner) tolerationsOf(ts []corev1.Toleration) []corev1.Toleration {
	if len(ts) == 0 {
		return ts
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.key.Reset()
	for _, t := range ts {
		in.field(t.Key)
		in.field(string(t.Operator))
		in.field(t.Value)
		in.field(string(t.Effect))
		if t.TolerationSeconds == nil {
			in.field("nil")
		} else {
			in.field(strconv.FormatInt(*t.TolerationSeconds, 10))
		}
	}
	return intern(in.tolerations, in.key.String(), ts)
}

// field appends one length-prefixed field to the key, so that no two
// different values give the same key.
func (in *interner) field(s string) {
	in.key.WriteString(strconv.Itoa(len(s)))
	in.key.WriteByte(':')
	in.key.WriteString(s)
}

func boolPtr(b *bool) string {
	switch {
	case b == nil:
		return "nil"
	case *b:
		return "true"
	}
	return "false"
}
