package authn

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn/authntest"
	authorizationv1 "k8s.io/api/authorization/v1"
)

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

func newTestReviewer(t *testing.T, api *authntest.API, clock *fakeClock, o Options) *Reviewer {
	t.Helper()
	o.Now = clock.Now
	return NewReviewer(api.Client(), o)
}

var (
	jwt    = authntest.JWT
	saUser = authntest.ServiceAccount
)

func TestAuthenticateCachesBothAnswers(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	good := jwt(clock.now.Add(time.Hour), "reader")
	api.AddToken(good, authntest.Token{User: saUser("team-a", "reader", nil), Audiences: []string{"k8s-llm-monitor"}})
	r := newTestReviewer(t, api, clock, Options{})
	ctx := context.Background()
	aud := []string{"k8s-llm-monitor"}

	id, err := r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	assert.Equal(t, "system:serviceaccount:team-a:reader", id.Username)
	assert.Equal(t, clock.now.Add(time.Hour), id.Expires)
	_, err = r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	n, _ := api.Counts()
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
	n, _ = api.Counts()
	assert.Equal(t, 3, n, "one review for the forged token")
	clock.step(DefaultDeniedTokenTTL + time.Second)
	_, err = r.Authenticate(ctx, "forged", aud)
	require.ErrorIs(t, err, ErrUnauthenticated)
	_, err = r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	n, _ = api.Counts()
	assert.Equal(t, 4, n, "the rejection expired, the identity did not")

	clock.step(DefaultTokenTTL)
	_, err = r.Authenticate(ctx, good, aud)
	require.NoError(t, err)
	n, _ = api.Counts()
	assert.Equal(t, 5, n, "the identity expired from the cache")
}

func TestAuthenticateNeverCachesBeyondTheTokensExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	tok := jwt(clock.now.Add(5*time.Second), "short")
	api.AddToken(tok, authntest.Token{User: saUser("a", "b", nil)})
	r := newTestReviewer(t, api, clock, Options{})
	_, err := r.Authenticate(context.Background(), tok, nil)
	require.NoError(t, err)
	clock.step(6 * time.Second)
	api.RemoveToken(tok) // the API server now rejects it, as it would an expired token
	_, err = r.Authenticate(context.Background(), tok, nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
}

func TestAuthenticateFailsClosed(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	api.AddToken("t", authntest.Token{User: saUser("a", "b", nil)})
	r := newTestReviewer(t, api, clock, Options{})
	api.SetDown(true)
	for range 2 {
		_, err := r.Authenticate(context.Background(), "t", nil)
		require.ErrorIs(t, err, ErrUnavailable)
	}
	n, _ := api.Counts()
	assert.Equal(t, 2, n, "a failure to ask is not cached")
	api.SetDown(false)
	_, err := r.Authenticate(context.Background(), "t", nil)
	require.NoError(t, err)

	_, err = r.Authenticate(context.Background(), "", nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
	_, err = r.Authenticate(context.Background(), strings.Repeat("x", MaxTokenBytes+1), nil)
	require.ErrorIs(t, err, ErrUnauthenticated)
	n, _ = api.Counts()
	assert.Equal(t, 3, n, "empty and oversized tokens are refused without a review")
}

func TestCachesAreBounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	for _, tok := range []string{"a", "b", "c"} {
		api.AddToken(tok, authntest.Token{User: saUser("ns", tok, nil)})
	}
	r := newTestReviewer(t, api, clock, Options{CacheSize: 2})
	ctx := context.Background()
	for _, tok := range []string{"a", "b", "c", "a"} {
		_, err := r.Authenticate(ctx, tok, nil)
		require.NoError(t, err)
	}
	n, _ := api.Counts()
	assert.Equal(t, 4, n, "a was evicted by c, the least recently used")
}

func TestAuthorizeCachesAllowedLongerThanDenied(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	reader := &Identity{Username: "system:serviceaccount:team-a:reader", UID: "u1", Groups: []string{"g2", "g1"},
		Extra: map[string][]string{"k": {"v"}}}
	api.Grant(reader.Username, "/api/*")
	r := newTestReviewer(t, api, clock, Options{AllowedTTL: time.Minute, DeniedTTL: 10 * time.Second})
	ctx := context.Background()

	ok, _, err := r.Authorize(ctx, reader, "get", "/api/v1/metrics/cluster")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, reader.Groups, api.LastAccessReview().Groups, "the review carries the whole identity")
	assert.Equal(t, authorizationv1.ExtraValue{"v"}, api.LastAccessReview().Extra["k"])
	ok, _, err = r.Authorize(ctx, reader, "get", "/metrics")
	require.NoError(t, err)
	assert.False(t, ok, "/metrics is a permission of its own")

	// Reordered groups are the same identity: answered from the cache.
	same := *reader
	same.Groups = []string{"g1", "g2"}
	ok, _, err = r.Authorize(ctx, &same, "get", "/api/v1/metrics/cluster")
	require.NoError(t, err)
	assert.True(t, ok)
	_, n := api.Counts()
	assert.Equal(t, 2, n)

	// Grants change: the denial is seen again after 10 s, the allowance
	// after a minute.
	api.Grant(reader.Username, "/metrics")
	clock.step(11 * time.Second)
	ok, _, _ = r.Authorize(ctx, reader, "get", "/metrics")
	assert.True(t, ok, "denial expired")
	ok, _, _ = r.Authorize(ctx, reader, "get", "/api/v1/metrics/cluster")
	assert.True(t, ok, "allowance still cached")
	clock.step(time.Minute)
	ok, _, _ = r.Authorize(ctx, reader, "get", "/api/v1/metrics/cluster")
	assert.False(t, ok, "allowance expired")

	api.SetDown(true)
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
