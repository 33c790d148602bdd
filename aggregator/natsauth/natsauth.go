// Package natsauth decides what a NATS client may do from its Kubernetes
// identity, for the embedded server (custom client authentication) and for
// an external one (auth callout). The connect token is a ServiceAccount
// token with the product's audience:
//
//   - the agents' ServiceAccount, bound to a pod: publish only that pod's
//     node's report and event subjects, subscribe only to reply inboxes;
//   - any identity the API server allows to get the non-resource URL
//     <path prefix>/nats/subscribe (the chart's reader ClusterRole):
//     subscribe to everything under the subject prefix, replay the
//     product's streams through the JetStream API, publish nothing else;
//   - anything else: refused.
package natsauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// ReadPath follows the path prefix (authn.DefaultPathPrefix) to make the
// non-resource URL whose get permission lets a client subscribe to every
// subject: the chart's reader ClusterRole grants it beside the HTTP API's
// paths, so reading is one permission on both.
const ReadPath = "/nats/subscribe"

// InboxSubjects are reply subjects: an agent may receive replies (JetStream
// acknowledgements), a reader may make requests' replies reach it.
const InboxSubjects = "_INBOX.>"

// Errors, matched with errors.Is; Reason names each for metrics.
var (
	// ErrInvalidToken means the API server rejected the token: unknown,
	// expired, wrong audience, or its bound pod is gone.
	ErrInvalidToken = errors.New("natsauth: token not accepted by the API server")
	// ErrNoRights means the identity is neither a pod-bound agent nor
	// allowed to read.
	ErrNoRights = errors.New("natsauth: identity has no NATS rights")
	// ErrPodUnknown means an agent token's bound pod could not be placed
	// on a node (not found, another UID, not scheduled).
	ErrPodUnknown = errors.New("natsauth: agent token's pod not found on a node")
)

// Reason names a Grant error for the refusal counter: invalid_token,
// no_rights, pod_unknown or unavailable.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrInvalidToken):
		return "invalid_token"
	case errors.Is(err, ErrNoRights):
		return "no_rights"
	case errors.Is(err, ErrPodUnknown):
		return "pod_unknown"
	default:
		return "unavailable"
	}
}

// Role is what a grant lets a client do.
type Role string

// Roles.
const (
	RoleAgent  Role = "agent"
	RoleReader Role = "reader"
)

// Grant is what one connection may do and until when.
type Grant struct {
	Identity *authn.Identity
	Role     Role
	Node     string // agents: the node they speak for
	PodUID   string // agents: the pod the token is bound to
	// Publish and Subscribe are the subjects allowed; an empty Publish
	// allows nothing.
	Publish   []string
	Subscribe []string
}

// String names the grant for logs.
func (g *Grant) String() string {
	if g.Role == RoleAgent {
		return fmt.Sprintf("agent %s for node %s", g.Identity, g.Node)
	}
	return fmt.Sprintf("%s %s", g.Role, g.Identity)
}

// PodLookup finds a pod of the agents' namespace (see PodWatcher).
type PodLookup interface {
	// NodeOf returns the node the pod name with uid runs on; ok is false
	// when no such pod is scheduled.
	NodeOf(ctx context.Context, name, uid string) (node string, ok bool, err error)
}

// Options configure Rules.
type Options struct {
	Reviewer *authn.Reviewer
	// Audience every token must carry (aggregator.token_audience).
	Audience string
	// Prefix of the subjects (nats.subject_prefix).
	Prefix string
	// PathPrefix is put before ReadPath in access reviews
	// (aggregator.authz_prefix); empty: authn.DefaultPathPrefix.
	PathPrefix string
	// AgentNamespace and AgentServiceAccount name the agents' account;
	// empty: no client gets agent rights.
	AgentNamespace, AgentServiceAccount string
	// Pods places agent tokens on their pod's node and checks the pod
	// still exists; nil: no client gets agent rights.
	Pods   PodLookup
	Logger *slog.Logger
}

// Rules turn tokens into grants.
type Rules struct{ o Options }

// New returns the rules.
func New(o Options) *Rules {
	if o.PathPrefix == "" {
		o.PathPrefix = authn.DefaultPathPrefix
	}
	return &Rules{o: o}
}

// Prefix is the subject prefix the grants are built for.
func (r *Rules) Prefix() string { return r.o.Prefix }

// Grant authenticates token and decides its rights. Errors wrap
// ErrInvalidToken, ErrNoRights, ErrPodUnknown or authn.ErrUnavailable.
func (r *Rules) Grant(ctx context.Context, token string) (*Grant, error) {
	id, err := r.o.Reviewer.Authenticate(ctx, token, []string{r.o.Audience})
	switch {
	case errors.Is(err, authn.ErrUnauthenticated):
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	case err != nil:
		return nil, err
	}
	if g, err := r.agent(ctx, id); g != nil || err != nil {
		return g, err
	}
	path := r.o.PathPrefix + ReadPath
	allowed, reason, err := r.o.Reviewer.Authorize(ctx, id, authn.VerbGet, path)
	if err != nil {
		return nil, err
	}
	if !allowed {
		return nil, fmt.Errorf("%w: %s is not an agent bound to a pod and may not get %s: %s", ErrNoRights, id, path, reason)
	}
	return ReaderGrant(id, r.o.Prefix), nil
}

// agent returns the agent grant of a pod-bound token of the agents'
// account; nil, nil when id is not one.
func (r *Rules) agent(ctx context.Context, id *authn.Identity) (*Grant, error) {
	ns, sa, ok := id.ServiceAccount()
	if !ok || r.o.AgentServiceAccount == "" || ns != r.o.AgentNamespace || sa != r.o.AgentServiceAccount {
		return nil, nil
	}
	pod, uid, ok := id.BoundPod()
	if !ok {
		return nil, nil // e.g. kubectl create token for the agents' account: no agent rights
	}
	// The pod must still exist and run on a node; the node claim, when the
	// API server put one in the token, must agree. A cached review of a
	// deleted pod's token is thereby refused at once.
	if r.o.Pods == nil {
		return nil, fmt.Errorf("%w: pods of %s are not watched", ErrPodUnknown, id)
	}
	node, found, err := r.o.Pods.NodeOf(ctx, pod, uid)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: pod %s/%s (uid %s) of %s", ErrPodUnknown, ns, pod, uid, id)
	}
	if claim := id.BoundNode(); claim != "" && claim != node {
		return nil, fmt.Errorf("%w: %s claims node %s, its pod runs on %s", ErrPodUnknown, id, claim, node)
	}
	if errs := validation.IsDNS1123Subdomain(node); len(errs) > 0 {
		return nil, fmt.Errorf("%w: node name %q of %s: %v", ErrPodUnknown, node, id, errs)
	}
	return AgentGrant(id, r.o.Prefix, node, uid), nil
}

// AgentGrant lets an agent publish its node's reports and events and
// receive replies, nothing else.
func AgentGrant(id *authn.Identity, prefix, node, podUID string) *Grant {
	return &Grant{
		Identity: id, Role: RoleAgent, Node: node, PodUID: podUID,
		Publish:   []string{wire.NodeReportSubject(prefix, node), wire.NodeEventSubject(prefix, node)},
		Subscribe: []string{InboxSubjects},
	}
}

// ReaderGrant lets a consumer subscribe to everything under prefix and to
// reply inboxes, and replay the product's streams (ReaderJetStream); it
// publishes no message of its own.
func ReaderGrant(id *authn.Identity, prefix string) *Grant {
	return &Grant{
		Identity: id, Role: RoleReader,
		Publish:   ReaderJetStream(prefix),
		Subscribe: []string{prefix + ".>", InboxSubjects},
	}
}

// ReaderJetStream are the JetStream API requests a reader may make: look
// the product's streams up, and create, follow and remove ephemeral
// consumers on them — what an ordered consumer (nats.go's jetstream
// package, `nats sub --stream`) needs, no more. Streams cannot be created,
// changed, purged or deleted, messages cannot be deleted, and the legacy
// durable endpoint is not allowed; acknowledgements are not needed, since
// ordered consumers acknowledge nothing. docs/security.md says what
// subject permissions cannot refuse.
func ReaderJetStream(prefix string) []string {
	subjects := []string{
		"$JS.API.INFO",         // account info: `nats account info`, clients' checks
		"$JS.API.STREAM.NAMES", // `nats stream ls`
		"$JS.API.STREAM.LIST",
	}
	for _, stream := range []string{streams.ReportsName(prefix), streams.EventsName(prefix)} {
		subjects = append(subjects,
			"$JS.API.STREAM.INFO."+stream,
			"$JS.API.CONSUMER.CREATE."+stream,      // ephemeral consumer, older clients
			"$JS.API.CONSUMER.CREATE."+stream+".>", // named consumer, optionally with its filter
			"$JS.API.CONSUMER.INFO."+stream+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+stream+".*", // pull: the jetstream package's ordered consumer
			"$JS.API.CONSUMER.DELETE."+stream+".*",   // an ordered consumer removes its previous one
			"$JS.FC."+stream+".>",                    // push: flow control replies (`nats sub --stream`)
		)
	}
	return subjects
}
