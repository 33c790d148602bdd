//go:build fault

// Package fault is the fault suite: real nats-server processes (built from
// the module proxy by build.sh) and the real agent and aggregator binaries
// on loopback, with NATS killed, restarted and paused, the aggregator
// killed, a NATS cluster losing a server and two aggregator replicas on one
// NATS. Every case counts what the agents produced against what the
// Reports stream and the aggregators hold.
//
// Run it with `make fault` (the quick cases, part of CI) or `make e2e`
// (the slow ones too); see docs/testing.md.
package fault
