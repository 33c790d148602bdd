// Package authn delegates identity to the Kubernetes API server, the way a
// kubelet or metrics-server does: a TokenReview says who a bearer token
// belongs to, a SubjectAccessReview says whether that identity may do
// something. Both answers are cached briefly (bounded LRU, one TTL for
// allowed and a shorter one for denied, as the kubelet's webhook caches do)
// so that reconnect storms and busy HTTP clients do not hammer the API
// server; failures to ask are never cached and never let anything through.
package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
)

// Errors, matched with errors.Is.
var (
	// ErrUnauthenticated means the API server does not accept the token
	// (unknown, expired, wrong audience, bound object gone) or there was
	// none.
	ErrUnauthenticated = errors.New("authn: token not authenticated")
	// ErrUnavailable means the API server could not be asked; the request
	// must be refused, not let through.
	ErrUnavailable = errors.New("authn: API server unavailable for a review")
)

// Defaults, as the kubelet's webhook caches but shorter: a revoked binding
// or a deleted ServiceAccount takes effect within a minute.
const (
	DefaultTokenTTL       = time.Minute
	DefaultDeniedTokenTTL = 10 * time.Second
	DefaultAllowedTTL     = time.Minute
	DefaultDeniedTTL      = 10 * time.Second
	DefaultCacheSize      = 4096
	DefaultTimeout        = 5 * time.Second
	// MaxTokenBytes bounds a bearer token; a ServiceAccount token is about
	// 1 KiB, and larger input is refused without asking the API server.
	MaxTokenBytes = 16 << 10
)

// Extra keys the API server sets on a pod-bound ServiceAccount token's
// user (TokenReview status.user.extra).
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName = "authentication.kubernetes.io/node-name"
)

// Identity is who a token belongs to, as a TokenReview answered.
type Identity struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string][]string
	// Expires is the token's exp claim when it is a JWT, else zero.
	Expires time.Time
}

// ServiceAccount returns the namespace and name of a ServiceAccount
// identity ("system:serviceaccount:<namespace>:<name>").
func (id *Identity) ServiceAccount() (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(id.Username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}

// extra returns the single value of an extra key, "" when absent or
// ambiguous.
func (id *Identity) extra(key string) string {
	if v := id.Extra[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// BoundPod returns the pod a ServiceAccount token is bound to. Only the
// API server sets these extras on ServiceAccount tokens, so they are
// trusted for ServiceAccount identities only.
func (id *Identity) BoundPod() (name, uid string, ok bool) {
	if _, _, sa := id.ServiceAccount(); !sa {
		return "", "", false
	}
	name, uid = id.extra(ExtraPodName), id.extra(ExtraPodUID)
	if name == "" || uid == "" {
		return "", "", false
	}
	return name, uid, true
}

// BoundNode returns the node of the pod a ServiceAccount token is bound
// to, when the API server put it in the token (Kubernetes 1.30 and later).
func (id *Identity) BoundNode() string {
	if _, _, ok := id.BoundPod(); !ok {
		return ""
	}
	return id.extra(ExtraNodeName)
}

// String names the identity for logs.
func (id *Identity) String() string {
	if pod, _, ok := id.BoundPod(); ok {
		return id.Username + " (pod " + pod + ")"
	}
	return id.Username
}

// Options tune a Reviewer; zero values take the defaults.
type Options struct {
	TokenTTL       time.Duration // authenticated tokens, never beyond their expiry
	DeniedTokenTTL time.Duration // rejected tokens
	AllowedTTL     time.Duration // allowed access decisions
	DeniedTTL      time.Duration // denied access decisions
	CacheSize      int           // entries per cache
	Timeout        time.Duration // one review
	// Registerer receives the review counters; nil skips them.
	Registerer prometheus.Registerer
	// Now is the clock of the caches (tests).
	Now func() time.Time
}

// Reviewer asks the API server, through a cache.
type Reviewer struct {
	client    kubernetes.Interface
	o         Options
	tokens    *cache.LRUExpireCache
	decisions *cache.LRUExpireCache
	reviews   *prometheus.CounterVec
	hits      *prometheus.CounterVec
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// NewReviewer returns a Reviewer asking through client. Its rate limiter
// (rest.Config QPS and Burst) bounds how often the API server is asked.
func NewReviewer(client kubernetes.Interface, o Options) *Reviewer {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.TokenTTL, DefaultTokenTTL)
	def(&o.DeniedTokenTTL, DefaultDeniedTokenTTL)
	def(&o.AllowedTTL, DefaultAllowedTTL)
	def(&o.DeniedTTL, DefaultDeniedTTL)
	def(&o.Timeout, DefaultTimeout)
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reviewer{
		client:    client,
		o:         o,
		tokens:    cache.NewLRUExpireCacheWithClock(o.CacheSize, clockFunc(o.Now)),
		decisions: cache.NewLRUExpireCacheWithClock(o.CacheSize, clockFunc(o.Now)),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "auth", Name: "reviews_total",
			Help: "TokenReviews and SubjectAccessReviews sent to the API server, by review and result (allowed, denied, error).",
		}, []string{"review", "result"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "auth", Name: "cache_hits_total",
			Help: "Review decisions answered from the cache, by review.",
		}, []string{"review"}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(r.reviews, r.hits)
	}
	return r
}

// tokenEntry is a cached TokenReview answer: an identity, or a rejection.
type tokenEntry struct {
	id     *Identity
	reason string
}

// Authenticate returns who token belongs to. audiences are those the token
// must be valid for (one is enough); none means the API server's own. It
// returns ErrUnauthenticated (wrapped with the reason) or ErrUnavailable.
func (r *Reviewer) Authenticate(ctx context.Context, token string, audiences []string) (*Identity, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: no usable bearer token", ErrUnauthenticated)
	}
	key := hashKey(append([]string{token}, audiences...)...)
	if v, ok := r.tokens.Get(key); ok {
		r.hits.WithLabelValues("token").Inc()
		e := v.(tokenEntry)
		if e.id == nil {
			return nil, fmt.Errorf("%w: %s", ErrUnauthenticated, e.reason)
		}
		return e.id, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	tr, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		r.reviews.WithLabelValues("token", "error").Inc()
		return nil, fmt.Errorf("%w: token review: %v", ErrUnavailable, err)
	}
	st := tr.Status
	if !st.Authenticated || !intersects(audiences, st.Audiences) {
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		if st.Authenticated {
			reason = "token not valid for audience " + strings.Join(audiences, ",")
		}
		r.reviews.WithLabelValues("token", "denied").Inc()
		r.tokens.Add(key, tokenEntry{reason: reason}, r.o.DeniedTokenTTL)
		return nil, fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
	}
	r.reviews.WithLabelValues("token", "allowed").Inc()
	id := &Identity{Username: st.User.Username, UID: st.User.UID, Groups: st.User.Groups, Expires: TokenExpiry(token)}
	if len(st.User.Extra) > 0 {
		id.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			id.Extra[k] = []string(v)
		}
	}
	ttl := r.o.TokenTTL
	if !id.Expires.IsZero() {
		ttl = min(ttl, id.Expires.Sub(r.o.Now()))
	}
	if ttl > 0 {
		r.tokens.Add(key, tokenEntry{id: id}, ttl)
	}
	return id, nil
}

// intersects reports whether the token is valid for one of the requested
// audiences; with none requested the API server checked its own.
func intersects(want, got []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if slices.Contains(got, w) {
			return true
		}
	}
	return false
}

// decision is a cached SubjectAccessReview answer.
type decision struct {
	allowed bool
	reason  string
}

// Authorize asks whether id may use verb on the non-resource URL path, and
// returns the decision and the API server's reason. An error wraps
// ErrUnavailable.
func (r *Reviewer) Authorize(ctx context.Context, id *Identity, verb, path string) (bool, string, error) {
	key := hashKey(append(identityKey(id), verb, path)...)
	if v, ok := r.decisions.Get(key); ok {
		r.hits.WithLabelValues("access").Inc()
		d := v.(decision)
		return d.allowed, d.reason, nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(id.Extra))
	for k, v := range id.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	sar, err := r.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: id.Username, UID: id.UID, Groups: id.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		r.reviews.WithLabelValues("access", "error").Inc()
		return false, "", fmt.Errorf("%w: subject access review: %v", ErrUnavailable, err)
	}
	d := decision{allowed: sar.Status.Allowed && !sar.Status.Denied, reason: sar.Status.Reason}
	ttl := r.o.DeniedTTL
	result := "denied"
	if d.allowed {
		ttl, result = r.o.AllowedTTL, "allowed"
	}
	r.reviews.WithLabelValues("access", result).Inc()
	r.decisions.Add(key, d, ttl)
	return d.allowed, d.reason, nil
}

// identityKey lists everything a SubjectAccessReview decides on, in a
// stable order.
func identityKey(id *Identity) []string {
	groups := slices.Clone(id.Groups)
	sort.Strings(groups)
	keys := make([]string, 0, len(id.Extra))
	for k := range id.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []string{id.Username, id.UID, strings.Join(groups, "\x01")}
	for _, k := range keys {
		out = append(out, k+"\x02"+strings.Join(id.Extra[k], "\x01"))
	}
	return out
}

// hashKey keys the caches by a digest, so that tokens are not kept as map
// keys and no separator inside a value can make two keys equal.
func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
