// Package authntest is a Kubernetes API server's TokenReview and
// SubjectAccessReview, answered from tables on a client-go fake clientset,
// for tests of code that delegates identity to Kubernetes.
package authntest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// APIAudience stands for the API server's own audience: a token registered
// without audiences has it, and a review without audiences asks for it.
const APIAudience = "api"

// API answers reviews as an API server would, from Tokens and Grants.
type API struct {
	mu      sync.Mutex
	tokens  map[string]Token
	grants  map[string][]string
	down    bool
	tokenN  int
	accessN int
	lastSAR *authorizationv1.SubjectAccessReviewSpec
}

// Token is what the API server knows of a token.
type Token struct {
	User      authenticationv1.UserInfo
	Audiences []string // nil: APIAudience
}

// New returns an API that knows no token and grants nothing.
func New() *API {
	return &API{tokens: map[string]Token{}, grants: map[string][]string{}}
}

// AddToken makes the API server accept token for user.
func (f *API) AddToken(token string, t Token) {
	f.mu.Lock()
	f.tokens[token] = t
	f.mu.Unlock()
}

// RemoveToken makes the API server reject token, as it does once a token
// expires or its bound pod is deleted.
func (f *API) RemoveToken(token string) {
	f.mu.Lock()
	delete(f.tokens, token)
	f.mu.Unlock()
}

// Grant lets username get the non-resource URLs paths (a trailing * is a
// prefix, as in RBAC), replacing earlier grants.
func (f *API) Grant(username string, paths ...string) {
	f.mu.Lock()
	f.grants[username] = paths
	f.mu.Unlock()
}

// SetDown makes every review fail as an unreachable API server does.
func (f *API) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// Counts returns how many token and access reviews were asked.
func (f *API) Counts() (tokens, access int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenN, f.accessN
}

// LastAccessReview is the spec of the last SubjectAccessReview.
func (f *API) LastAccessReview() *authorizationv1.SubjectAccessReviewSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSAR
}

// Install adds the review reactors to c.
func (f *API) Install(c *fake.Clientset) {
	c.PrependReactor("create", "tokenreviews", f.tokenReview)
	c.PrependReactor("create", "subjectaccessreviews", f.accessReview)
}

// Client is a fake clientset answering reviews through f.
func (f *API) Client(objects ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objects...)
	f.Install(c)
	return c
}

func (f *API) tokenReview(a k8stesting.Action) (bool, runtime.Object, error) {
	tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenN++
	if f.down {
		return true, nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
	}
	out := tr.DeepCopy()
	t, ok := f.tokens[tr.Spec.Token]
	if !ok {
		out.Status.Error = "invalid bearer token"
		return true, out, nil
	}
	have := t.Audiences
	if have == nil {
		have = []string{APIAudience}
	}
	want := tr.Spec.Audiences
	if len(want) == 0 {
		want = []string{APIAudience}
	}
	for _, w := range want {
		if slices.Contains(have, w) {
			out.Status.Audiences = append(out.Status.Audiences, w)
		}
	}
	if len(out.Status.Audiences) == 0 {
		out.Status.Error = "token audiences is invalid for the target audiences"
		return true, out, nil
	}
	if len(tr.Spec.Audiences) == 0 {
		out.Status.Audiences = nil
	}
	out.Status.Authenticated, out.Status.User = true, t.User
	return true, out, nil
}

func (f *API) accessReview(a k8stesting.Action) (bool, runtime.Object, error) {
	sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accessN++
	f.lastSAR = sar.Spec.DeepCopy()
	if f.down {
		return true, nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
	}
	out := sar.DeepCopy()
	nr := sar.Spec.NonResourceAttributes
	if nr == nil || nr.Verb != "get" {
		out.Status.Reason = "only get on non-resource URLs is granted here"
		return true, out, nil
	}
	for _, g := range f.grants[sar.Spec.User] {
		if p, ok := strings.CutSuffix(g, "*"); (ok && strings.HasPrefix(nr.Path, p)) || g == nr.Path {
			out.Status.Allowed, out.Status.Reason = true, "RBAC: allowed"
			return true, out, nil
		}
	}
	return true, out, nil
}

// ServiceAccount is the user of a ServiceAccount token; extra may carry the
// pod and node claims of a pod-bound one (see PodBound).
func ServiceAccount(namespace, name string, extra map[string]authenticationv1.ExtraValue) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{
		Username: "system:serviceaccount:" + namespace + ":" + name, UID: namespace + "-" + name + "-uid",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
		Extra:  extra,
	}
}

// PodBound are the extras of a token bound to pod (uid) on node; node ""
// leaves the node claim out, as API servers before 1.30 do.
func PodBound(pod, uid, node string) map[string]authenticationv1.ExtraValue {
	e := map[string]authenticationv1.ExtraValue{
		"authentication.kubernetes.io/pod-name": {pod},
		"authentication.kubernetes.io/pod-uid":  {uid},
	}
	if node != "" {
		e["authentication.kubernetes.io/node-name"] = authenticationv1.ExtraValue{node}
	}
	return e
}

// JWT is an unsigned JWT with the given exp, distinct per salt: enough for
// code that reads the exp claim of a token the API server vouched for.
func JWT(exp time.Time, salt string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d,"sub":%q}`, exp.Unix(), salt))) + ".sig"
}
