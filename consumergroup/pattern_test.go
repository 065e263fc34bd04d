package consumergroup

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestCompilePatternMatches(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"orders", []string{"orders"}, []string{"order", "orders.eu", "x.orders", "Orders"}},
		{"orders.*", []string{"orders.eu", "orders.us"}, []string{"orders", "orders.eu.x", "payments.eu", "ordersx.eu"}},
		{"*.completed", []string{"orders.completed", "a.completed"}, []string{"completed", "a.b.completed", "orders.completed.x"}},
		{"*", []string{"orders", "a-b_c"}, []string{"a.b"}},
		{"*.*", []string{"a.b"}, []string{"a", "a.b.c"}},
		{"#", []string{"orders", "a.b.c", "x"}, nil},
		{"orders.#", []string{"orders", "orders.eu", "orders.eu.x"}, []string{"order", "ordersx", "x.orders"}},
		{"#.completed", []string{"completed", "a.completed", "a.b.completed"}, []string{"completed.a", "incompleted", "a.completedx"}},
		{"a.#.z", []string{"a.z", "a.b.z", "a.b.c.z", "a.z.z"}, []string{"a", "z", "a.z.b", "b.a.z"}},
		{"#.b.#", []string{"b", "a.b", "b.c", "a.b.c", "x.b.y.b.z"}, []string{"a", "a.bb.c"}},
		{"#.#", []string{"a", "a.b.c"}, nil},
		{"*.#", []string{"a", "a.b", "a.b.c"}, nil},
		{"#.*.x", []string{"a.x", "a.b.x", "x.x"}, []string{"x", "a.x.y"}},
		{"a.*.#.*", []string{"a.b.c", "a.b.c.d.e"}, []string{"a.b", "a", "b.c.d"}},
		{"#.a.#.a.#", []string{"a.a", "x.a.y.a.z", "a.a.a"}, []string{"a", "x.a.y"}},
		{"__consumer_offsets", []string{"__consumer_offsets"}, []string{"consumer_offsets"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			m, err := CompilePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if m.String() != tt.pattern {
				t.Fatalf("String() = %q", m.String())
			}
			for _, topic := range tt.match {
				if !m.Match(topic) {
					t.Errorf("%q does not match %q", tt.pattern, topic)
				}
			}
			for _, topic := range tt.noMatch {
				if m.Match(topic) {
					t.Errorf("%q matches %q", tt.pattern, topic)
				}
			}
		})
	}
}

func TestCompilePatternRejects(t *testing.T) {
	tests := []struct {
		pattern string
		errHas  string // part of the error telling what to fix
	}{
		{"", "empty subscription pattern"},
		{".", "empty word"},
		{"a..b", "word 2: empty word"},
		{".a", "word 1: empty word"},
		{"a.", "word 2: empty word"},
		{"a*", `"*" and "#" must stand alone`},
		{"orders.#x", `"#x" mixes a wildcard`},
		{"**", "mixes a wildcard"},
		{"a b", `contains ' '`},
		{"orders/eu", `contains '/'`},
		{"ördérs", "topic names use only letters, digits"},
		{"a.b?", `contains '?'`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			m, err := CompilePattern(tt.pattern)
			if err == nil {
				t.Fatalf("compiled to %v, want an error", m)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error %q does not say %q", err, tt.errHas)
			}
		})
	}
}

func TestCompileRegex(t *testing.T) {
	m, err := CompileRegex(`orders-(eu|us)`)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{
		"orders-eu": true, "orders-us": true,
		"orders-eu2": false, "old-orders-eu": false, "orders-": false,
	} {
		if got := m.Match(topic); got != want {
			t.Errorf("Match(%q) = %v, want %v", topic, got, want)
		}
	}
	// Alternation binds inside the anchors: "a|b" must not match "ax".
	alt, err := CompileRegex(`a|b`)
	if err != nil {
		t.Fatal(err)
	}
	if alt.Match("ax") || alt.Match("xb") || !alt.Match("b") {
		t.Error(`"a|b" is not anchored as a whole`)
	}
	for _, bad := range []struct{ expr, errHas string }{
		{"", "empty subscription regular expression"},
		{"orders-(", "missing closing )"},
		{"a**", "invalid nested repetition"},
	} {
		if _, err := CompileRegex(bad.expr); err == nil || !strings.Contains(err.Error(), bad.errHas) {
			t.Errorf("CompileRegex(%q) error %v, want one saying %q", bad.expr, err, bad.errHas)
		}
	}
}

func TestParseSubscription(t *testing.T) {
	tests := []struct {
		in      string
		matches string
		misses  string
		wantErr bool
	}{
		{in: "orders.*", matches: "orders.eu", misses: "orders"},
		{in: "re:orders\\..*", matches: "orders.eu.x", misses: "orders"},
		{in: "re:.*", matches: "anything"},
		{in: "re:", wantErr: true},
		{in: "re:(", wantErr: true},
		{in: "", wantErr: true},
		{in: "re", matches: "re", misses: "rex"}, // a literal word
		{in: "orders.re:x", wantErr: true},       // ':' is not a topic character
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseSubscription(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parsed to %v, want an error", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.String() != tt.in {
				t.Errorf("String() = %q, want the subscription back", m.String())
			}
			if tt.matches != "" && !m.Match(tt.matches) {
				t.Errorf("does not match %q", tt.matches)
			}
			if tt.misses != "" && m.Match(tt.misses) {
				t.Errorf("matches %q", tt.misses)
			}
		})
	}
}

func TestMatchTopics(t *testing.T) {
	topics := []string{"orders.us", "__consumer_offsets", "orders.eu", "payments", "__internal.orders", "orders.eu", "orders"}
	tests := []struct {
		sub  string
		want []string
	}{
		{"orders.*", []string{"orders.eu", "orders.us"}},
		{"#", []string{"orders", "orders.eu", "orders.us", "payments"}},
		{"*", []string{"orders", "payments"}},
		{"#.orders", []string{"orders"}},
		{"__consumer_offsets", []string{"__consumer_offsets"}},
		{"__internal.*", []string{"__internal.orders"}},
		{"re:.*", []string{"orders", "orders.eu", "orders.us", "payments"}},
		{"re:.*orders.*", []string{"orders", "orders.eu", "orders.us"}},
		{"re:__.*", []string{"__consumer_offsets", "__internal.orders"}},
		{"re:__consumer_offsets", []string{"__consumer_offsets"}},
		{"nothing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.sub, func(t *testing.T) {
			m, err := ParseSubscription(tt.sub)
			if err != nil {
				t.Fatal(err)
			}
			if got := MatchTopics(m, topics); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("MatchTopics = %q, want %q", got, tt.want)
			}
		})
	}
}

// referenceRegex translates an AMQP pattern to a regular expression over
// "." + topic, where every word is "." followed by the word.
func referenceRegex(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, w := range strings.Split(pattern, ".") {
		switch w {
		case "*":
			b.WriteString(`\.[^.]*`)
		case "#":
			b.WriteString(`(?:\.[^.]*)*`)
		default:
			b.WriteString(`\.` + regexp.QuoteMeta(w))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func TestPropertyPatternAgreesWithRegexTranslation(t *testing.T) {
	// Few distinct words, so that literals often hit.
	word := rapid.SampledFrom([]string{"a", "b", "ab", "x-1"})
	rapid.Check(t, func(t *rapid.T) {
		pw := rapid.SliceOfN(rapid.OneOf(word, rapid.SampledFrom([]string{"*", "#"})), 1, 6).Draw(t, "pattern")
		tw := rapid.SliceOfN(rapid.OneOf(word, rapid.Just("")), 1, 8).Draw(t, "topic")
		pattern, topic := strings.Join(pw, "."), strings.Join(tw, ".")
		m, err := CompilePattern(pattern)
		if err != nil {
			t.Fatalf("valid pattern %q rejected: %v", pattern, err)
		}
		if got, want := m.Match(topic), referenceRegex(pattern).MatchString("."+topic); got != want {
			t.Fatalf("%q on %q: Match = %v, reference = %v", pattern, topic, got, want)
		}
	})
}

func TestPropertyPatternRejectsExactlyMalformedWords(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pattern := rapid.StringOfN(rapid.SampledFrom([]rune("ab.*#-_ /")), 0, 10, -1).Draw(t, "pattern")
		valid := pattern != ""
		for _, w := range strings.Split(pattern, ".") {
			valid = valid && (w == "*" || w == "#" || regexp.MustCompile(`^[a-zA-Z0-9_-]+$`).MatchString(w))
		}
		if _, err := CompilePattern(pattern); (err == nil) != valid {
			t.Fatalf("CompilePattern(%q) error %v, want valid=%v", pattern, err, valid)
		}
	})
}

func BenchmarkPatternMatch(b *testing.B) {
	m, err := CompilePattern("#.orders.*.#.completed")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m.Match("eu.west.orders.retail.2026.q3.completed")
	}
}
