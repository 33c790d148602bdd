package model

import (
	"math"
	"unicode/utf8"
)

// MaxEventMessageBytes bounds Event.Message wherever an event travels or is
// logged: a longer message is cut at a UTF-8 boundary and ends in "…".
const MaxEventMessageBytes = 1024

// TruncateMessage cuts an event message to MaxEventMessageBytes.
func TruncateMessage(s string) string { return Truncate(s, MaxEventMessageBytes) }

// Truncate returns s if it holds at most n bytes, else its longest prefix
// that ends on a rune boundary and, with "…" appended, fits in n bytes.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if n < len(ellipsis) {
		return s[:cut]
	}
	return s[:cut] + ellipsis
}

// AddSaturating returns a+b, held at math.MaxInt64 or math.MinInt64 where
// the sum would wrap: a cluster total is better too small by the excess than
// negative.
func AddSaturating(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

// MulSaturating returns a*b, held at math.MaxInt64 or math.MinInt64 where
// the product would wrap.
func MulSaturating(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		if (a > 0) == (b > 0) {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return p
}

// Finite returns f, or 0 when f is NaN or ±Inf, which JSON cannot encode: a
// value that cannot be shown is shown as unknown (0) rather than failing the
// whole answer.
func Finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}
