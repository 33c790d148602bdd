package mcp

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Numbers in answers: CPU in millicores, memory in binary units, rates
// with one decimal, times in RFC 3339 UTC, as the HTTP API has them.

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
	tib = int64(1) << 40
)

// bytesText writes a byte count in binary units, as Kubernetes quantities
// do: 512Mi, 31.0Gi.
func bytesText(b int64) string {
	switch {
	case b >= tib:
		return strconv.FormatFloat(float64(b)/float64(tib), 'f', 1, 64) + "Ti"
	case b >= gib:
		return strconv.FormatFloat(float64(b)/float64(gib), 'f', 1, 64) + "Gi"
	case b >= mib:
		return strconv.FormatInt(b/mib, 10) + "Mi"
	case b >= kib:
		return strconv.FormatInt(b/kib, 10) + "Ki"
	}
	return strconv.FormatInt(b, 10)
}

// cpuText writes millicores.
func cpuText(m int64) string { return strconv.FormatInt(m, 10) + "m" }

// pctText writes a rate in percent with one decimal.
func pctText(r float64) string { return strconv.FormatFloat(round1(r), 'f', 1, 64) + "%" }

// round1 rounds to one decimal for structured content; a non-finite
// number (which JSON cannot carry) becomes 0.
func round1(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*10) / 10
}

// timeText writes a time in RFC 3339 UTC, seconds precision; "-" for none.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// orDash returns s, or "-" when it is empty, so table cells never vanish.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural writes "1 node", "3 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
