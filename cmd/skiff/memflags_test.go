package main

import (
	"strings"
	"testing"
)

func TestServerRefusesMemoryBudgetsOutOfRangeNamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{args: []string{"--raft-entry-cache-bytes", "-1"}, flag: "--raft-entry-cache-bytes"},
		{args: []string{"--produce-buffer-bytes", "1000"}, flag: "--produce-buffer-bytes"},
		{env: map[string]string{"SKIFF_FETCH_BUFFER_BYTES": "10"}, flag: "--fetch-buffer-bytes"},
		{args: []string{"--raft-max-append-bytes", "100"}, flag: "--raft-max-append-bytes"},
		{args: []string{"--raft-max-append-entries", "0"}, flag: "--raft-max-append-entries"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd := newServerCommand()
			args := append([]string{"--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0"}, tc.args...)
			cmd.SetArgs(args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("%v %v: error %v, want one naming %s", tc.args, tc.env, err, tc.flag)
			}
		})
	}
}
