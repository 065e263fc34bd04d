package main

import (
	"strings"
	"testing"

	"github.com/skiff-mq/skiff/cluster"
)

func TestServerRefusesLimitsOutOfRangeNamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{args: []string{"--max-request-bytes", "1000"}, flag: "--max-request-bytes"},
		{args: []string{"--max-concurrent-streams", "-3"}, flag: "--max-concurrent-streams"},
		{env: map[string]string{"SKIFF_MAX_CONNECTIONS_PER_IP": "-1"}, flag: "--max-connections-per-ip"},
		{args: []string{"--max-topics", "0"}, flag: "--max-topics"},
		{args: []string{"--max-partitions", "-1"}, flag: "--max-partitions"},
		{args: []string{"--max-group-members", "0"}, flag: "--max-group-members"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd := newServerCommand()
			cmd.SetArgs(tc.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("%v %v: error %v, want one naming %s", tc.args, tc.env, err, tc.flag)
			}
		})
	}
}

func TestServerLimitDefaultsAreValid(t *testing.T) {
	if err := defaultServerLimits().validate(cluster.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
}
