package kubelet

import (
	"encoding/json"
	"errors"
)

// errNotSummary is a JSON document that is not a stats summary: an empty
// object, null, or an answer from something other than the kubelet.
var errNotSummary = errors.New("not a stats summary: node.nodeName is empty")

// DecodeSummary parses a /stats/summary body. It only decodes; turning the
// kubelet's types into the report's is the mapper's job, so that either can
// change (or be fuzzed) without the other. It never panics, whatever the
// input.
func DecodeSummary(body []byte) (*Summary, error) {
	var s Summary
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, err
	}
	// Every kubelet names its node; a JSON document without one is a
	// proxy's or another server's answer that happens to be JSON.
	if s.Node.NodeName == "" {
		return nil, errNotSummary
	}
	return &s, nil
}
