package metadata

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"Orders.v2_eu-west-1", true},
		{strings.Repeat("a", 249), true},
		{"_single_underscore", true},
		{"", false},
		{strings.Repeat("a", 250), false},
		{".", false},
		{"..", false},
		{"...", true},
		{"with space", false},
		{"slash/name", false},
		{"colon:name", false},
		{"ünïcode", false},
		{"__consumer_offsets", false},
	}
	for _, tc := range tests {
		err := ValidateTopicName(tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("ValidateTopicName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		var ia *InvalidArgumentError
		if err != nil && (!errors.As(err, &ia) || ia.Field != "name") {
			t.Errorf("ValidateTopicName(%q) = %v, want field name", tc.name, err)
		}
	}
	if err := validateTopicName("name", "__consumer_offsets", true); err != nil {
		t.Errorf("internal name refused: %v", err)
	}
}

func TestLimits(t *testing.T) {
	l := DefaultLimits()
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		partitions, rf int
		field          string
	}{
		{1, 1, ""},
		{10_000, 7, ""},
		{0, 3, "partitions"},
		{10_001, 3, "partitions"},
		{-1, 3, "partitions"},
		{3, 0, "replication_factor"},
		{3, 8, "replication_factor"},
	}
	for _, tc := range tests {
		err := l.ValidatePartitions(tc.partitions)
		if err == nil {
			err = l.ValidateReplicationFactor(tc.rf)
		}
		var ia *InvalidArgumentError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("(%d, %d): %v", tc.partitions, tc.rf, err)
		case tc.field != "" && (!errors.As(err, &ia) || ia.Field != tc.field):
			t.Errorf("(%d, %d): err = %v, want field %s", tc.partitions, tc.rf, err, tc.field)
		}
	}
	for _, bad := range []Limits{{MaxPartitions: 0, MaxReplicationFactor: 3}, {MaxPartitions: MaxPartitionsCeiling + 1, MaxReplicationFactor: 3}, {MaxPartitions: 10, MaxReplicationFactor: 8}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func TestValidateBroker(t *testing.T) {
	tests := []struct {
		b     Broker
		field string
	}{
		{Broker{ID: "node-1", GRPCAddr: "10.0.0.1:9400", RaftAddr: "[::1]:9401", Rack: "eu-west-1a"}, ""},
		{Broker{ID: "n"}, ""},
		{Broker{}, "broker.id"},
		{Broker{ID: "has space"}, "broker.id"},
		{Broker{ID: "a/b"}, "broker.id"},
		{Broker{ID: strings.Repeat("x", 129)}, "broker.id"},
		{Broker{ID: "n", GRPCAddr: "no-port"}, "broker.grpc_addr"},
		{Broker{ID: "n", RaftAddr: "x"}, "broker.raft_addr"},
		{Broker{ID: "n", HTTPAddr: "x"}, "broker.http_addr"},
		{Broker{ID: "n", GossipAddr: "x"}, "broker.gossip_addr"},
		{Broker{ID: "n", Rack: "a\nb"}, "broker.rack"},
	}
	for _, tc := range tests {
		err := ValidateBroker(tc.b)
		var ia *InvalidArgumentError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v", tc.b, err)
		case tc.field != "" && (!errors.As(err, &ia) || ia.Field != tc.field):
			t.Errorf("%+v: err = %v, want field %s", tc.b, err, tc.field)
		}
	}
}
