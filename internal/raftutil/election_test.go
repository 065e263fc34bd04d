package raftutil

import (
	"testing"

	"github.com/hashicorp/raft"
)

func TestMostCompleteIsTheLongestLogThenTheLowestID(t *testing.T) {
	cases := []struct {
		name  string
		cands []Candidate
		want  raft.ServerID
	}{
		{"none", nil, ""},
		{"one", []Candidate{{"b", 7}}, "b"},
		{"longest log wins over a lower id", []Candidate{{"a", 5}, {"c", 9}, {"b", 8}}, "c"},
		{"tie: lowest id", []Candidate{{"c", 9}, {"b", 9}, {"a", 3}}, "b"},
		{"order does not matter", []Candidate{{"b", 9}, {"a", 3}, {"c", 9}}, "b"},
		{"empty logs: lowest id", []Candidate{{"z", 0}, {"y", 0}}, "y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := MostComplete(tc.cands); got != tc.want {
				t.Fatalf("MostComplete(%v) = %q, want %q", tc.cands, got, tc.want)
			}
		})
	}
}
