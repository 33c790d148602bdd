package diagnose

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTextWithinBudget(t *testing.T) {
	h := newHarness(t)
	for _, pod := range []string{"shop/big", "shop/api-7d9f-oom", "shop/frontend"} {
		ns, name, _ := strings.Cut(pod, "/")
		dg, err := h.d.Pod(ns, name)
		require.NoError(t, err)
		full := dg.Text(1 << 20)
		require.True(t, strings.HasPrefix(full, strings.ToUpper(dg.Severity)+" pod "+pod+": "+dg.Verdict))
		assert.Equal(t, len(dg.Evidence)+1, strings.Count(full, "\n"), "one line per evidence item")
		for budget := 0; budget <= len(full)+10; budget++ {
			got := dg.Text(budget)
			require.LessOrEqual(t, len(got), budget, "%s at %d bytes", pod, budget)
			require.True(t, utf8.ValidString(got))
			if budget >= len(full) {
				require.Equal(t, full, got)
				continue
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if len(lines) > 1 {
				last := lines[len(lines)-1]
				require.Contains(t, last, "more evidence items left out", "%s at %d bytes", pod, budget)
				kept := len(lines) - 2 // verdict and trailer
				assert.Contains(t, last, "("+strconv.Itoa(len(dg.Evidence)-kept)+" more")
			}
		}
	}
}
