package consumergroup

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Matcher selects topic names.
type Matcher interface {
	Match(topic string) bool
	String() string
}

// regexPrefix marks a subscription written as a regular expression.
const regexPrefix = "re:"

// internalPrefix starts the names of internal topics such as
// __consumer_offsets, which patterns only match when they name them.
const internalPrefix = "__"

// CompilePattern compiles an AMQP topic-exchange pattern over dot-separated
// names: "*" matches exactly one word, "#" matches zero or more words, other
// words match literally. Examples: "orders.*" matches "orders.eu" but neither
// "orders" nor "orders.eu.x"; "*.completed" matches "eu.completed"; "#"
// matches everything; "orders.#" matches "orders", "orders.eu" and
// "orders.eu.x"; "#.completed" matches "completed" and "a.b.completed".
//
// Literal words use the characters of topic names other than the dot:
// letters, digits, '_' and '-'. A wildcard is a whole word: "a*" is an
// error, not a prefix match (use a regular expression for that).
func CompilePattern(p string) (Matcher, error) {
	if p == "" {
		return nil, errors.New(`empty subscription pattern: name topics with words separated by dots, "*" for one word or "#" for any number`)
	}
	words := strings.Split(p, ".")
	for i, w := range words {
		if err := checkPatternWord(w); err != nil {
			return nil, fmt.Errorf("subscription pattern %q, word %d: %w", p, i+1, err)
		}
	}
	// "#.#" matches what "#" matches; collapsing runs keeps the matcher's
	// backtracking short.
	words = slices.CompactFunc(words, func(a, b string) bool { return a == "#" && b == "#" })
	return &patternMatcher{pattern: p, words: words}, nil
}

func checkPatternWord(w string) error {
	switch {
	case w == "":
		return errors.New(`empty word: remove the leading, trailing or doubled dot`)
	case w == "*" || w == "#":
		return nil
	case strings.ContainsAny(w, "*#"):
		return fmt.Errorf(`%q mixes a wildcard with other characters: "*" and "#" must stand alone between dots (use "re:" and a regular expression for partial words)`, w)
	}
	for _, r := range w {
		if !isTopicChar(r) {
			return fmt.Errorf("%q contains %q: topic names use only letters, digits, '.', '_' and '-'", w, r)
		}
	}
	return nil
}

func isTopicChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-'
}

// patternMatcher is a compiled AMQP topic pattern.
type patternMatcher struct {
	pattern string
	words   []string // "*", "#" or a literal; no two "#" in a row
}

// Match compares word by word. "#" is handled like "*" in a shell glob:
// on a mismatch the last "#" absorbs one more word and matching resumes
// after it. Only the last "#" needs retrying, because whatever an earlier
// one could absorb the later one can too, so the cost is
// O(len(words) * len(topic words)) at worst and linear in practice.
func (m *patternMatcher) Match(topic string) bool {
	tw := strings.Split(topic, ".")
	pi, ti := 0, 0
	star, resume := -1, 0 // position of the last "#" and the topic word it resumes at
	for ti < len(tw) {
		switch {
		case pi < len(m.words) && m.words[pi] == "#":
			star, resume = pi, ti
			pi++
		case pi < len(m.words) && (m.words[pi] == "*" || m.words[pi] == tw[ti]):
			pi++
			ti++
		case star >= 0:
			resume++
			pi, ti = star+1, resume
		default:
			return false
		}
	}
	for pi < len(m.words) && m.words[pi] == "#" {
		pi++
	}
	return pi == len(m.words)
}

func (m *patternMatcher) String() string { return m.pattern }

// namesInternal reports whether the pattern's first word is literally an
// internal topic's name, the only way a pattern selects internal topics.
func (m *patternMatcher) namesInternal() bool {
	return strings.HasPrefix(m.words[0], internalPrefix)
}

// CompileRegex compiles a Go RE2 regular expression that must match the
// whole topic name: "orders-.*" matches "orders-eu" but not "old-orders-eu".
func CompileRegex(expr string) (Matcher, error) {
	if expr == "" {
		return nil, errors.New(`empty subscription regular expression: write one after "re:", e.g. "re:orders-.*"`)
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("subscription regular expression %q: %w", expr, err)
	}
	return &regexMatcher{expr: expr, re: re}, nil
}

// regexMatcher is a compiled, fully anchored regular expression.
type regexMatcher struct {
	expr string
	re   *regexp.Regexp
}

func (m *regexMatcher) Match(topic string) bool { return m.re.MatchString(topic) }

// String returns the subscription as ParseSubscription reads it back:
// "re:" and the expression.
func (m *regexMatcher) String() string { return regexPrefix + m.expr }

// namesInternal reports whether every name the expression matches starts
// with the literal internal prefix.
func (m *regexMatcher) namesInternal() bool {
	prefix, _ := m.re.LiteralPrefix()
	return strings.HasPrefix(prefix, internalPrefix)
}

// ParseSubscription picks the form: a pattern starting with "re:" is a
// regular expression (the rest of the string, see CompileRegex), anything
// else an AMQP pattern (see CompilePattern). The Matcher's String returns s.
func ParseSubscription(s string) (Matcher, error) {
	if expr, ok := strings.CutPrefix(s, regexPrefix); ok {
		return CompileRegex(expr)
	}
	return CompilePattern(s)
}

// MatchTopics returns the sorted, distinct topic names m matches. Internal
// topics (names starting with "__") are skipped unless the pattern names
// them literally: an AMQP pattern whose first word starts with "__", a
// regular expression whose every match starts with "__", or, for other
// Matchers, a String equal to the topic's name.
func MatchTopics(m Matcher, topics []string) []string {
	internal := false
	if n, ok := m.(interface{ namesInternal() bool }); ok {
		internal = n.namesInternal()
	}
	var out []string
	for _, t := range topics {
		if strings.HasPrefix(t, internalPrefix) && !internal && t != m.String() {
			continue
		}
		if m.Match(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
