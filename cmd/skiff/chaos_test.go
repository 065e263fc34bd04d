package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/chaos/history"
)

func writeHistory(t *testing.T, events ...history.Event) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := history.NewWriter(f)
	for _, e := range events {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func TestChaosCheckExitsNonZeroOnAnomalies(t *testing.T) {
	t0 := time.Unix(1000, 0)
	send := history.Event{Time: t0, Type: history.SendEvent, Process: "p0", Topic: "t", Value: "a", Seq: 1}
	ack := history.Event{Time: t0, Type: history.AckEvent, Process: "p0", Topic: "t", Value: "a", Seq: 1}
	final := history.Event{Time: t0, Type: history.FinalEvent, Topic: "t", Value: "a"}
	tests := []struct {
		name    string
		events  []history.Event
		output  string
		wantErr bool
		want    string
	}{
		{"valid", []history.Event{send, ack, final}, "text", false, "history: VALID"},
		{"lost write", []history.Event{send, ack}, "text", true, "lost writes           1"},
		{"json", []history.Event{send, ack}, "json", true, `"lost_writes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeHistory(t, tt.events...)
			var out bytes.Buffer
			root := newRootCommand()
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs([]string{"chaos", "check", "--history", path, "-o", tt.output})
			err := root.Execute()
			if tt.wantErr != errors.Is(err, errAnomalies) {
				t.Fatalf("Execute() = %v, want anomalies: %v", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, out.String())
			}
			if tt.output == "json" {
				var rep history.Report
				if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.LostWrites.Count != 1 {
					t.Fatalf("JSON report %v, lost %d", err, rep.LostWrites.Count)
				}
			}
		})
	}
}

func TestChaosScenariosListsTheSuite(t *testing.T) {
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"chaos", "scenarios"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"leader-kill", "majority-partition", "kill-all-restart"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("scenarios lack %s:\n%s", want, out.String())
		}
	}
}

// scripts/chaos.sh reads what a scenario needs of its cluster from this
// output: disk-full must get a node with a small disk.
func TestChaosScenariosJSONSaysWhatEachNeeds(t *testing.T) {
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"chaos", "scenarios", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Name  string   `json:"name"`
		Needs []string `json:"needs"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	needs := map[string][]string{}
	for _, s := range got {
		needs[s.Name] = s.Needs
	}
	tests := []struct {
		scenario string
		want     []string
	}{
		{"disk-full", []string{"small-disk"}},
		{"leader-kill", nil},
		{"decommission-under-load", nil},
		{"add-node-rebalance", nil},
		{"maintenance-rolling-upgrade", nil},
	}
	for _, tt := range tests {
		n, ok := needs[tt.scenario]
		if !ok {
			t.Fatalf("scenario %s not listed in %s", tt.scenario, out.String())
		}
		if !slices.Equal(n, tt.want) {
			t.Errorf("%s needs %q, want %q", tt.scenario, n, tt.want)
		}
	}
}

func TestChaosRunHelpNamesGroupConsumerFlags(t *testing.T) {
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"chaos", "run", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--group-consumers int", "(default 2)", "--group string"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("help lacks %q:\n%s", want, out.String())
		}
	}
}
