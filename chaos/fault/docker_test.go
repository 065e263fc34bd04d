package fault

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestDockerRunsFaultsScript(t *testing.T) {
	d, err := NewDocker(DockerConfig{Script: "testdata/fake-faults.sh"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := d.Nodes(ctx)
	if err != nil || !slices.Equal(nodes, []string{"skiff-1", "skiff-2", "skiff-3"}) {
		t.Fatalf("Nodes = %v, %v", nodes, err)
	}
	if l, err := d.LeaderOf(ctx, "t", 0); err != nil || l != "skiff-2" {
		t.Fatalf("LeaderOf = %q, %v", l, err)
	}
	if c, err := d.Controller(ctx); err != nil || c != "skiff-3" {
		t.Fatalf("Controller = %q, %v", c, err)
	}
	if err := d.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() (string, error)
		want string
	}{
		{"partition", func() (string, error) {
			return d.run(ctx, "partition", "skiff-1", "skiff-2,skiff-3")
		}, "partition skiff-1 skiff-2,skiff-3"},
	}
	for _, tt := range tests {
		if got, err := tt.call(); err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	for name, inject := range map[string]func() error{
		"kill":      func() error { return d.Kill(ctx, "skiff-1") },
		"partition": func() error { return d.Partition(ctx, []string{"skiff-1"}, []string{"skiff-2", "skiff-3"}) },
		"loss":      func() error { return d.Loss(ctx, "skiff-1", 5) },
		"delay":     func() error { return d.Delay(ctx, "skiff-1", 20*time.Millisecond, 5*time.Millisecond) },
		"heal":      func() error { return d.Heal(ctx) },
	} {
		if err := inject(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDockerMapsExitStatus3ToUnsupported(t *testing.T) {
	d, err := NewDocker(DockerConfig{Script: "testdata/fake-faults.sh", Env: []string{"FAKE_NO_DELAY=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delay(context.Background(), "skiff-1", time.Millisecond, 0); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Delay = %v, want ErrUnsupported", err)
	}
}

func TestDockerConfigValidate(t *testing.T) {
	if _, err := NewDocker(DockerConfig{}); err == nil {
		t.Fatal("NewDocker without a script succeeded")
	}
}
