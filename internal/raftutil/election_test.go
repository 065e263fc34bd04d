package raftutil

import (
	"testing"

	"github.com/hashicorp/raft"
)

func TestSuccessorIsTheLowestOtherVoter(t *testing.T) {
	srv := func(id string, s raft.ServerSuffrage) raft.Server {
		return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":1"), Suffrage: s}
	}
	cases := []struct {
		name          string
		servers       []raft.Server
		self, dead    raft.ServerID
		wantSuccessor raft.ServerID
		wantSelfAddr  raft.ServerAddress
	}{
		{"lowest other voter", []raft.Server{srv("c", raft.Voter), srv("a", raft.Voter), srv("b", raft.Voter)}, "b", "a", "b", "b:1"},
		{"self is not the lowest", []raft.Server{srv("c", raft.Voter), srv("a", raft.Voter), srv("b", raft.Voter)}, "c", "a", "b", "c:1"},
		{"non-voters never stand", []raft.Server{srv("a", raft.Voter), srv("b", raft.Nonvoter), srv("c", raft.Voter)}, "c", "a", "c", "c:1"},
		{"self not a member", []raft.Server{srv("a", raft.Voter), srv("b", raft.Voter)}, "z", "a", "b", ""},
		{"no other voter", []raft.Server{srv("a", raft.Voter), srv("b", raft.Nonvoter)}, "b", "a", "", "b:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, addr := Successor(raft.Configuration{Servers: tc.servers}, tc.self, tc.dead)
			if got != tc.wantSuccessor || addr != tc.wantSelfAddr {
				t.Fatalf("Successor = %q, %q; want %q, %q", got, addr, tc.wantSuccessor, tc.wantSelfAddr)
			}
		})
	}
}
