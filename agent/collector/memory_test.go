package collector

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func TestMemorySource(t *testing.T) {
	tests := []struct {
		name     string
		fixture  string
		meminfo  string // replaces the fixture's when set
		remove   bool
		wantCap  int64
		wantUsed int64
		wantErr  string
	}{
		{
			// MemTotal 24683620 kB, MemAvailable 24111772 kB:
			// used 571848 kB = 585572352 B.
			name: "recorded", fixture: "host1",
			wantCap: 24683620 * 1024, wantUsed: 571848 * 1024,
		},
		{
			// MemTotal 32763584 kB, MemAvailable 19528704 kB:
			// used 13234880 kB.
			name: "kubernetes node", fixture: "k8snode",
			wantCap: 32763584 * 1024, wantUsed: 13234880 * 1024,
		},
		{
			// Kernels before 3.14: gopsutil estimates available as free(1)
			// does, MemFree + Cached + SReclaimable = 1000 + 3000 + 100 =
			// 4100 kB (Buffers not included), used 8000 − 4100 = 3900 kB.
			name: "no MemAvailable", fixture: "host1",
			meminfo: "MemTotal: 8000 kB\nMemFree: 1000 kB\nBuffers: 200 kB\nCached: 3000 kB\nSwapCached: 0 kB\nSReclaimable: 100 kB\n",
			wantCap: 8000 * 1024, wantUsed: 3900 * 1024,
		},
		{
			name: "available above total", fixture: "host1",
			meminfo: "MemTotal: 8000 kB\nMemFree: 1000 kB\nMemAvailable: 9000 kB\n",
			wantCap: 8000 * 1024, wantUsed: 0,
		},
		{
			name: "no MemTotal", fixture: "host1",
			meminfo: "MemFree: 1000 kB\nMemAvailable: 900 kB\n",
			wantErr: "no MemTotal",
		},
		{
			name: "garbage", fixture: "host1",
			meminfo: "MemTotal: lots kB\n",
			wantErr: `parsing "lots"`,
		},
		{name: "no file", fixture: "host1", remove: true, wantErr: "read memory info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyFixture(t, tt.fixture)
			if tt.meminfo != "" {
				writeFixture(t, root, "proc/meminfo", tt.meminfo)
			}
			if tt.remove {
				require.NoError(t, os.Remove(filepath.Join(root, "proc/meminfo")))
			}
			var r model.NodeReport
			err := collectInto(t, context.Background(), NewMemorySource(NewHostPaths(root)), &r)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Zero(t, r.Node.MemoryCapacity)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantCap, r.Node.MemoryCapacity)
			assert.Equal(t, tt.wantUsed, r.Node.MemoryUsage)
			assert.InDelta(t, float64(tt.wantUsed)/float64(tt.wantCap)*100, r.Node.MemoryUsageRate, 1e-9)
		})
	}
}
