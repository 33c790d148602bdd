// Package wire is the NATS contract between agents, the aggregator and any
// subscriber: subject names and the versioned JSON envelope every message
// travels in.
package wire

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "k8smon"

// SubjectToken turns a node name into one NATS subject token. Node names are
// DNS subdomains and may hold dots, which NATS reads as separators; "_" never
// occurs in a node name, so "." → "_" is reversible.
func SubjectToken(node string) string { return strings.ReplaceAll(node, ".", "_") }

// NodeFromToken reverses SubjectToken.
func NodeFromToken(token string) string { return strings.ReplaceAll(token, "_", ".") }

// NodeReportSubject is where the agent of node publishes its reports.
func NodeReportSubject(prefix, node string) string {
	return prefix + ".node." + SubjectToken(node) + ".report"
}

// NodeEventSubject is where the agent of node publishes its events.
func NodeEventSubject(prefix, node string) string {
	return prefix + ".node." + SubjectToken(node) + ".event"
}

// ClusterEventSubject is where the aggregator publishes cluster events.
func ClusterEventSubject(prefix string) string { return prefix + ".cluster.event" }

// AllNodeReports and AllNodeEvents are the wildcard subscriptions that see
// every node's reports and events.
func AllNodeReports(prefix string) string { return prefix + ".node.*.report" }

// AllNodeEvents is the wildcard subscription that sees every node's events.
func AllNodeEvents(prefix string) string { return prefix + ".node.*.event" }

// NodeFromSubject returns the node name carried by a node report or event
// subject under prefix; a name longer than Kubernetes allows is ErrSubject.
func NodeFromSubject(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".node.")
	if !ok {
		return "", fmt.Errorf("%w: %q is not under %q", ErrSubject, subject, prefix+".node.")
	}
	token, kind, ok := strings.Cut(rest, ".")
	if !ok || token == "" || (kind != "report" && kind != "event") {
		return "", fmt.Errorf("%w: %q is not <prefix>.node.<node>.report|event", ErrSubject, subject)
	}
	if len(token) > MaxNodeNameBytes {
		return "", fmt.Errorf("%w: node name of %d bytes, limit %d", ErrSubject, len(token), MaxNodeNameBytes)
	}
	return NodeFromToken(token), nil
}

// ValidPrefix reports whether p can prefix subjects: non-empty tokens of
// characters other than whitespace, "*" and ">".
func ValidPrefix(p string) error {
	if p == "" {
		return fmt.Errorf("subject prefix is empty")
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return fmt.Errorf("subject prefix %q: tokens must be non-empty without spaces, '*' or '>'", p)
		}
	}
	return nil
}
