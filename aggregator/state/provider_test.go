package state_test

import (
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
)

// Store is what the HTTP API serves from. The check lives in an external
// test package because api imports state for its history points.
var _ api.Provider = (*state.Store)(nil)
