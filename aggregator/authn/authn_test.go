package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeAPI answers TokenReviews and SubjectAccessReviews as an API server
// would, from a table of tokens and a table of grants, and counts them.
type fakeAPI struct {
	mu      sync.Mutex
	tokens  map[string]fakeToken
	grants  map[string][]string // username -> non-resource paths (a trailing * is a prefix)
	down    bool
	tokenN  int
	accessN int
	lastSAR *authorizationv1.SubjectAccessReviewSpec
}

type fakeToken struct {
	user      authenticationv1.UserInfo
	audiences []string // nil: the API server's own ("api")
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{tokens: map[string]fakeToken{}, grants: map[string][]string{}}
}

func (f *fakeAPI) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tokenN++
		if f.down {
			return true, nil, errors.New("connection refused")
		}
		out := tr.DeepCopy()
		t, ok := f.tokens[tr.Spec.Token]
		if !ok {
			out.Status.Error = "invalid bearer token"
			return true, out, nil
		}
		have := t.audiences
		if have == nil {
			have = []string{"api"}
		}
		want := tr.Spec.Audiences
		if len(want) == 0 {
			want = []string{"api"}
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
		out.Status.Authenticated, out.Status.User = true, t.user
		return true, out, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.accessN++
		f.lastSAR = sar.Spec.DeepCopy()
		if f.down {
			return true, nil, errors.New("connection refused")
		}
		out := sar.DeepCopy()
		nr := sar.Spec.NonResourceAttributes
		if nr == nil || nr.Verb != "get" {
			out.Status.Reason = "only get on non-resource URLs is granted here"
			return true, out, nil
		}
		for _, g := range f.grants[sar.Spec.User] {
			if p, ok := strings.CutSuffix(g, "*"); (ok && strings.HasPrefix(nr.Path, p)) || g == nr.Path {
				out.Status.Allowed = true
				out.Status.Reason = "RBAC: allowed"
				return true, out, nil
			}
		}
		return true, out, nil
	})
	return c
}

func (f *fakeAPI) counts() (tokens, access int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenN, f.accessN
}

func (f *fakeAPI) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// fakeClock is the caches' clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestReviewer(t *testing.T, api *fakeAPI, clock *fakeClock, o Options) *Reviewer {
	t.Helper()
	o.Now = clock.Now
	return NewReviewer(api.client(), o)
}

// jwt builds an unsigned JWT with the given exp (the fake API server does
// not check signatures; TokenExpiry does not either).
func jwt(exp time.Time, salt string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d,"sub":%q}`, exp.Unix(), salt))) + ".sig"
}

func saUser(ns, name string, extra map[string]authenticationv1.ExtraValue) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + name, UID: ns + "-" + name + "-uid",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}, Extra: extra}
}

func TestAuthenticateCachesBothAnswers(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := newFakeAPI()
	good := jwt(clock.now.Add(time.Hour), "reader")
	api.tokens[good] = fakeToken{user: saUser("team-a", "reader", nil), audiences: []string{"k8s-llm-monitor"}}
	r := newTestReviewer(t, api, clock, Options{})
	ctx := context.Background()
	aud := []string{"k8s-llm-monitor"}

	id, err := r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	assert.Equal(t, "system:serviceaccount:team-a:reader", id.Username)
	assert.Equal(t, clock.now.Add(time.Hour), id.Expires)
	_, err = r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	n, _ := api.counts()
	assert.Equal(t, 1, n, "the second answer comes from the cache")

	// The same token for another audience is a different question.
	_, err = r.Authenticate(ctx, good, nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
	assert.Contains(t, err.Error(), "audience")

	// Rejections are cached for the shorter TTL.
	for range 3 {
		_, err = r.Authenticate(ctx, "forged", aud)
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	n, _ = api.counts()
	assert.Equal(t, 3, n, "one review for the forged token")
	clock.step(DefaultDeniedTokenTTL + time.Second)
	_, err = r.Authenticate(ctx, "forged", aud)
	require.ErrorIs(t, err, ErrUnauthenticated)
	_, err = r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	n, _ = api.counts()
	assert.Equal(t, 4, n, "the rejection expired, the identity did not")

	clock.step(DefaultTokenTTL)
	_, err = r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	n, _ = api.counts()
	assert.Equal(t, 5, n, "the identity expired from the cache")
}

func TestAuthenticateNeverCachesBeyondTheTokensExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := newFakeAPI()
	tok := jwt(clock.now.Add(5*time.Second), "short")
	api.tokens[tok] = fakeToken{user: saUser("a", "b", nil)}
	r := newTestReviewer(t, api, clock, Options{})
	_, err := r.Authenticate(context.Background(), tok, nil)
	require.NoError(t, err)
	clock.step(6 * time.Second)
	delete(api.tokens, tok) // the API server now rejects it, as it would an expired token
	_, err = r.Authenticate(context.Background(), tok, nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
}

func TestAuthenticateFailsClosed(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := newFakeAPI()
	api.tokens["t"] = fakeToken{user: saUser("a", "b", nil)}
	r := newTestReviewer(t, api, clock, Options{})
	api.setDown(true)
	for range 2 {
		_, err := r.Authenticate(context.Background(), "t", nil)
		require.ErrorIs(t, err, ErrUnavailable)
	}
	n, _ := api.counts()
	assert.Equal(t, 2, n, "a failure to ask is not cached")
	api.setDown(false)
	_, err := r.Authenticate(context.Background(), "t", nil)
	require.NoError(t, err)

	_, err = r.Authenticate(context.Background(), "", nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
	_, err = r.Authenticate(context.Background(), strings.Repeat("x", MaxTokenBytes+1), nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
	n, _ = api.counts()
	assert.Equal(t, 3, n, "empty and oversized tokens are refused without a review")
}

func TestCachesAreBounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := newFakeAPI()
	for _, tok := range []string{"a", "b", "c"} {
		api.tokens[tok] = fakeToken{user: saUser("ns", tok, nil)}
	}
	r := newTestReviewer(t, api, clock, Options{CacheSize: 2})
	ctx := context.Background()
	for _, tok := range []string{"a", "b", "c", "a"} {
		_, err := r.Authenticate(ctx, tok, nil)
		require.NoError(t, err)
	}
	n, _ := api.counts()
	assert.Equal(t, 4, n, "a was evicted by c, the least recently used")
}

func TestAuthorizeCachesAllowedLongerThanDenied(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := newFakeAPI()
	reader := &Identity{Username: "system:serviceaccount:team-a:reader", UID: "u1", Groups: []string{"g2", "g1"},
		Extra: map[string][]string{"k": {"v"}}}
	api.grants[reader.Username] = []string{"/api/*"}
	r := newTestReviewer(t, api, clock, Options{AllowedTTL: time.Minute, DeniedTTL: 10 * time.Second})
	ctx := context.Background()

	ok, _, err := r.Authorize(ctx, reader, "get", "/api/v1/metrics/cluster")
	require.NoError(t, err)
	assert.True(t, ok)
	api.mu.Lock()
	assert.Equal(t, reader.Groups, api.lastSAR.Groups, "the review carries the whole identity")
	assert.Equal(t, authorizationv1.ExtraValue{"v"}, api.lastSAR.Extra["k"])
	api.mu.Unlock()
	ok, _, err = r.Authorize(ctx, reader, "get", "/metrics")
	require.NoError(t, err)
	assert.False(t, ok, "/metrics is a permission of its own")

	// Reordered groups are the same identity: answered from the cache.
	same := *reader
	same.Groups = []string{"g1", "g2"}
	ok, _, err = r.Authorize(ctx, &same, "get", "/api/v1/metrics/cluster")
	require.NoError(t, err)
	assert.True(t, ok)
	_, n := api.counts()
	assert.Equal(t, 2, n)

	// Grants change: the denial is seen again after 10 s, the allowance
	// after a minute.
	api.mu.Lock()
	api.grants[reader.Username] = []string{"/metrics"}
	api.mu.Unlock()
	clock.step(11 * time.Second)
	ok, _, _ = r.Authorize(ctx, reader, "get", "/metrics")
	assert.True(t, ok, "denial expired")
	ok, _, _ = r.Authorize(ctx, reader, "get", "/api/v1/metrics/cluster")
	assert.True(t, ok, "allowance still cached")
	clock.step(time.Minute)
	ok, _, _ = r.Authorize(ctx, reader, "get", "/api/v1/metrics/cluster")
	assert.False(t, ok, "allowance expired")

	api.setDown(true)
	_, _, err = r.Authorize(ctx, reader, "get", "/api/v1/metrics/nodes")
	require.ErrorIs(t, err, ErrUnavailable)
}

func TestIdentity(t *testing.T) {
	pod := map[string][]string{ExtraPodName: {"agent-x"}, ExtraPodUID: {"uid-1"}, ExtraNodeName: {"node.a"}}
	tests := []struct {
		name          string
		id            Identity
		ns, sa        string
		pod, uid, nd  string
		isSA, isBound bool
	}{
		{"pod-bound agent", Identity{Username: "system:serviceaccount:mon:agent", Extra: pod}, "mon", "agent", "agent-x", "uid-1", "node.a", true, true},
		{"plain service account", Identity{Username: "system:serviceaccount:mon:reader"}, "mon", "reader", "", "", "", true, false},
		{"user with forged extras", Identity{Username: "alice", Extra: pod}, "", "", "", "", "", false, false},
		{"malformed", Identity{Username: "system:serviceaccount:mon"}, "", "", "", "", "", false, false},
		{"ambiguous extras", Identity{Username: "system:serviceaccount:mon:agent", Extra: map[string][]string{ExtraPodName: {"a", "b"}, ExtraPodUID: {"u"}}}, "mon", "agent", "", "", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, sa, ok := tt.id.ServiceAccount()
			assert.Equal(t, tt.isSA, ok)
			assert.Equal(t, tt.ns, ns)
			assert.Equal(t, tt.sa, sa)
			p, uid, ok := tt.id.BoundPod()
			assert.Equal(t, tt.isBound, ok)
			assert.Equal(t, tt.pod, p)
			assert.Equal(t, tt.uid, uid)
			assert.Equal(t, tt.nd, tt.id.BoundNode())
		})
	}
}

func TestTokenExpiry(t *testing.T) {
	exp := time.Unix(1_800_000_000, 0)
	assert.Equal(t, exp, TokenExpiry(jwt(exp, "x")))
	for _, bad := range []string{"", "opaque-token", "a.b.c", "a.!!!.c", jwt(time.Unix(0, 0), "zero")} {
		assert.True(t, TokenExpiry(bad).IsZero(), bad)
	}
}
