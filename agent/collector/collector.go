// Package collector reads the node's own data sources (CPU, memory, disks,
// network) and runs every source of the agent, each under its own deadline,
// into one node report.
package collector

import (
	"context"
	"errors"
	"fmt"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// ErrUnavailable marks a source that is absent on this node (no GPU driver,
// kubelet disabled): reported as "unavailable" with its reason, not as a
// failure. Sources wrap it: fmt.Errorf("%w: libnvidia-ml.so.1 not found", ErrUnavailable).
var ErrUnavailable = errors.New("source unavailable")

// Apply writes a source's part into the report. The runner calls the
// Apply functions one after another once every source has returned, so a
// source never touches the report concurrently with another.
type Apply func(r *model.NodeReport)

// Source is one data source of the agent.
type Source interface {
	// Name is the source's name in reports, logs and metrics: cpu, memory,
	// disk, network, gpu, kubelet.
	Name() string
	// Collect reads the source under ctx. It returns what to apply to the
	// report; on error, Apply may still carry partial data (nil if none).
	Collect(ctx context.Context) (Apply, error)
}

// Disabled returns a source that is always unavailable for reason, so a
// source switched off by configuration still shows in every report's status.
func Disabled(name, reason string) Source { return disabled{name: name, reason: reason} }

type disabled struct{ name, reason string }

func (d disabled) Name() string { return d.name }

func (d disabled) Collect(context.Context) (Apply, error) {
	return nil, fmt.Errorf("%w: %s", ErrUnavailable, d.reason)
}
