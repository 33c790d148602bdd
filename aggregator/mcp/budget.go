package mcp

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

// BytesPerToken is the size of a token in every budget of this server:
// tokens are estimated as bytes ÷ 4 of the answer as it travels (the JSON
// of the tool result), a usual rate for English text and JSON with the
// tokenizers of current models. Rough, but the same everywhere, so a
// budget means the same thing on every tool and on the HTTP diagnosis.
const BytesPerToken = 4

// Bounds of the max_tokens argument every tool takes.
const (
	DefaultMaxTokens = 2000
	MinMaxTokens     = 100
	MaxMaxTokens     = 50000
)

// EstimateTokens returns the tokens that n bytes of an answer are
// estimated to cost: n ÷ BytesPerToken, rounded up.
func EstimateTokens(n int) int { return (n + BytesPerToken - 1) / BytesPerToken }

// MaxBytes returns the bytes that maxTokens tokens allow: the inverse of
// EstimateTokens, so an answer of at most MaxBytes(t) bytes is estimated
// at most t tokens.
func MaxBytes(maxTokens int) int { return maxTokens * BytesPerToken }

// resolveMaxTokens turns the max_tokens argument into a byte budget: 0
// (absent) is the default, anything outside the bounds is refused.
func resolveMaxTokens(n int) (int, error) {
	switch {
	case n == 0:
		n = DefaultMaxTokens
	case n < MinMaxTokens || n > MaxMaxTokens:
		return 0, invalidf("max_tokens=%d: want %d to %d (default %d)", n, MinMaxTokens, MaxMaxTokens, DefaultMaxTokens)
	}
	return MaxBytes(n), nil
}

// serverInfo identifies the server in every result's _meta, as the SDK
// adds it for clients of protocol 2026-07-28 and later; results carry it
// from the start so that their measured size is their size on the wire.
var serverInfo = &sdk.Implementation{Name: "k8s-llm-monitor", Version: version.Version}

// resultTypeBytes is what the SDK adds to a result for clients of
// protocol 2026-07-28 and later, after it is measured.
const resultTypeBytes = len(`,"resultType":"complete"`)

// newResult is a tool result with its text and structured content.
func newResult(text string, structured any) *sdk.CallToolResult {
	return &sdk.CallToolResult{
		Meta:              sdk.Meta{sdk.MetaKeyServerInfo: serverInfo},
		Content:           []sdk.Content{&sdk.TextContent{Text: text}},
		StructuredContent: structured,
	}
}

// resultSize is the size of a tool result as the SDK sends it: the
// JSON-RPC layer writes the result's own MarshalJSON output, to which the
// SDK may add the result type.
func resultSize(res *sdk.CallToolResult) int {
	b, err := json.Marshal(res)
	if err != nil {
		return 1 << 30 // never fits, so the caller falls back to plain text
	}
	return len(b) + resultTypeBytes
}

// answer is a tool's reply before it is fitted to its budget: a verdict
// line and key: value facts, kept whole, then sections of ranked rows cut
// from the end. Each row has a text line and its structured form.
type answer struct {
	verdict string
	facts   []string
	// data holds the structured fields besides the sections.
	data map[string]any
	// sections are filled in order: a later section gets rows only after
	// every row of the earlier ones fits.
	sections []*section
	// narrow says which arguments narrow the question, for a cut answer.
	narrow string
}

// section is one ranked list of an answer.
type section struct {
	name   string // key of its rows in the structured content
	noun   string // what a row is, plural, for the cut line
	header string // text line above the rows, naming the columns
	rows   []row
	// total counts the items that matched, more than len(rows) when the
	// rest were never turned into rows (a cap or the query's limit).
	total int
}

type row struct {
	line string
	data json.RawMessage
}

func newAnswer(verdict string) *answer {
	return &answer{verdict: verdict, data: map[string]any{}}
}

// fact adds a "key: value" line.
func (a *answer) fact(key, format string, args ...any) {
	a.facts = append(a.facts, key+": "+fmt.Sprintf(format, args...))
}

// section adds a list; its total starts at 0 and grows with add.
func (a *answer) section(name, noun, header string) *section {
	s := &section{name: name, noun: noun, header: header}
	a.sections = append(a.sections, s)
	return s
}

// add appends a row. Values are plain structs of finite numbers, so
// marshalling cannot fail; if it did, the row keeps its text and a null.
func (s *section) add(line string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		b = []byte("null")
	}
	s.rows = append(s.rows, row{line: line, data: b})
	if s.total < len(s.rows) {
		s.total = len(s.rows)
	}
}

// rowCount is the number of rows over all sections.
func (a *answer) rowCount() int {
	n := 0
	for _, s := range a.sections {
		n += len(s.rows)
	}
	return n
}

// result renders the answer with its first k rows (in section order).
func (a *answer) result(k int) *sdk.CallToolResult {
	var text strings.Builder
	text.WriteString(a.verdict)
	for _, f := range a.facts {
		text.WriteString("\n")
		text.WriteString(f)
	}
	structured := make(map[string]any, len(a.data)+len(a.sections)+3)
	for key, v := range a.data {
		structured[key] = v
	}
	structured["verdict"] = a.verdict
	var cuts []string
	leftOut := map[string]int{}
	for _, s := range a.sections {
		n := min(k, len(s.rows))
		k -= n
		if n > 0 && s.header != "" {
			text.WriteString("\n")
			text.WriteString(s.header)
		}
		items := make([]json.RawMessage, n)
		for i := range n {
			text.WriteString("\n")
			text.WriteString(s.rows[i].line)
			items[i] = s.rows[i].data
		}
		structured[s.name] = items
		if left := s.total - n; left > 0 {
			leftOut[s.name] = left
			cuts = append(cuts, fmt.Sprintf("%d of %d %s", left, s.total, s.noun))
		}
	}
	if len(cuts) > 0 {
		line := "left out: " + strings.Join(cuts, ", ") + "; raise max_tokens"
		if a.narrow != "" {
			line += ", or narrow with " + a.narrow
		}
		text.WriteString("\n")
		text.WriteString(line)
		structured["leftOut"] = leftOut
		if a.narrow != "" {
			structured["narrowWith"] = a.narrow
		}
	}
	return newResult(text.String(), structured)
}

// fitter is a tool's answer, rendered within a byte budget.
type fitter interface {
	fit(maxBytes int) *sdk.CallToolResult
}

// fit renders the answer with as many rows as maxBytes allows: the
// verdict and facts always (cut only when they alone are too large), then
// rows in rank order, and a last line saying what was left out.
func (a *answer) fit(maxBytes int) *sdk.CallToolResult {
	res, _ := a.fitRows(maxBytes)
	return res
}

// fitRows is fit, also returning how many rows the result holds.
func (a *answer) fitRows(maxBytes int) (*sdk.CallToolResult, int) {
	// Each row costs at least its line and its JSON: an upper bound on
	// the rows that can fit, so a 150 000-row list is never rendered whole.
	hi, cost := 0, 0
rows:
	for _, s := range a.sections {
		for _, r := range s.rows {
			cost += len(r.line) + len(r.data)
			if cost > maxBytes {
				break rows
			}
			hi++
		}
	}
	if res := a.result(hi); resultSize(res) <= maxBytes {
		return res, hi
	}
	// Largest k in [0, hi) that fits: sizes grow with k (up to the few
	// digits of the cut line), and every k returned was measured.
	lo, best := 0, -1
	for top := hi - 1; lo <= top; {
		mid := (lo + top) / 2
		if resultSize(a.result(mid)) <= maxBytes {
			best, lo = mid, mid+1
		} else {
			top = mid - 1
		}
	}
	if best >= 0 {
		return a.result(best), best
	}
	return a.squeeze(maxBytes), 0
}

// squeeze fits an answer whose verdict and facts alone exceed maxBytes:
// facts are dropped from the end, then the text is cut.
func (a *answer) squeeze(maxBytes int) *sdk.CallToolResult {
	short := *a
	for f := len(a.facts) - 1; f >= 0; f-- {
		short.facts = a.facts[:f]
		if res := short.result(0); resultSize(res) <= maxBytes {
			return res
		}
	}
	const note = "\n(answer cut to fit max_tokens: raise max_tokens)"
	text := a.verdict
	for _, f := range a.facts {
		text += "\n" + f
	}
	build := func(n int) *sdk.CallToolResult {
		t := truncate(text, n)
		return newResult(t+note, map[string]any{"verdict": truncate(a.verdict, n), "truncated": true})
	}
	lo, top, best := 0, len(text), 0
	for lo <= top {
		mid := (lo + top) / 2
		if resultSize(build(mid)) <= maxBytes {
			best, lo = mid, mid+1
		} else {
			top = mid - 1
		}
	}
	return build(best)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
