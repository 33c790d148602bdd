package collector

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// BenchmarkHostCycle is one agent cycle of the four host sources on this
// machine's real /proc and filesystems: Collect and Apply each.
func BenchmarkHostCycle(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads Linux procfs")
	}
	paths := NewHostPaths("/")
	srcs := []Source{
		NewCPUSource(paths),
		NewMemorySource(paths),
		NewDiskSource(paths, nil, "/", nil),
		NewNetworkSource(paths),
	}
	ctx := context.Background()
	var r model.NodeReport
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range srcs {
			apply, err := s.Collect(ctx)
			// Back-to-back cycles often see no CPU tick in between.
			if err != nil && !errors.Is(err, ErrUnavailable) {
				b.Fatalf("%s: %v", s.Name(), err)
			}
			if apply != nil {
				apply(&r)
			}
		}
	}
}

// BenchmarkSource measures each source alone on this machine.
func BenchmarkSource(b *testing.B) {
	paths := NewHostPaths("/")
	for _, s := range []Source{
		NewCPUSource(paths),
		NewMemorySource(paths),
		NewDiskSource(paths, nil, "/", nil),
		NewNetworkSource(paths),
	} {
		b.Run(s.Name(), func(b *testing.B) {
			ctx := context.Background()
			var r model.NodeReport
			b.ReportAllocs()
			for b.Loop() {
				apply, err := s.Collect(ctx)
				if err != nil && !errors.Is(err, ErrUnavailable) {
					b.Fatal(err)
				}
				if apply != nil {
					apply(&r)
				}
			}
		})
	}
}
