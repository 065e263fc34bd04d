package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiff-mq/skiff/client"
)

func testQuotaVerbs(t *testing.T, c *cli) {
	c.mustRun(t, "", "quota", "set", "--principal", "User:alice", "--produce-bytes-per-sec", "204800", "--requests-per-sec", "50")
	c.mustRun(t, "", "quota", "set", "--principal", "User:*", "--fetch-bytes-per-sec", "1048576")

	var list struct {
		Quotas []client.Quota `json:"quotas"`
	}
	if err := json.Unmarshal([]byte(c.mustRun(t, "", "quota", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	want := []client.Quota{
		{Principal: "User:*", FetchBytesPerSec: 1048576},
		{Principal: "User:alice", ProduceBytesPerSec: 204800, RequestsPerSec: 50},
	}
	if len(list.Quotas) != 2 || list.Quotas[0] != want[0] || list.Quotas[1] != want[1] {
		t.Fatalf("quota list %+v, want %+v", list.Quotas, want)
	}
	if out := c.mustRun(t, "", "quota", "list"); !strings.Contains(out, "User:alice") || !strings.Contains(out, "204800") {
		t.Fatalf("quota list table:\n%s", out)
	}

	c.mustRun(t, "", "quota", "delete", "--principal", "User:alice")
	if out := c.mustRun(t, "", "quota", "list"); strings.Contains(out, "User:alice") {
		t.Fatalf("alice's quota still listed after delete:\n%s", out)
	}
	if _, errOut, code := c.run(t, "", "quota", "delete", "--principal", "User:alice"); code == 0 || !strings.Contains(errOut, "User:alice") {
		t.Fatalf("deleting a missing quota: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{
		{"quota", "set", "--principal", "alice", "--requests-per-sec", "1"},
		{"quota", "set", "--principal", "User:bob"},
		{"quota", "set", "--principal", "User:bob", "--requests-per-sec", "-1"},
	} {
		if _, errOut, code := c.run(t, "", args...); code == 0 || errOut == "" {
			t.Errorf("skiff %v: exit %d, stderr %q: want a failure that says why", args, code, errOut)
		}
	}
	c.mustRun(t, "", "quota", "delete", "--principal", "User:*")
}
