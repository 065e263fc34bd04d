package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DockerConfig configures the Docker backend.
type DockerConfig struct {
	// Script is the path of scripts/faults.sh.
	Script string
	// Env is added to the script's environment (SKIFF_PROJECT,
	// SKIFF_PORT_PREFIX, SKIFF_BIN, ...).
	Env []string
	// HealthyTimeout bounds WaitHealthy beyond its context. Default 120s.
	HealthyTimeout time.Duration
}

// Validate reports every invalid field.
func (c DockerConfig) Validate() error {
	var errs []error
	if c.Script == "" {
		errs = append(errs, errors.New("docker fault config: Script (path of scripts/faults.sh) is required"))
	}
	if c.HealthyTimeout < 0 {
		errs = append(errs, errors.New("docker fault config: HealthyTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Docker injects faults into the compose cluster by running
// scripts/faults.sh, the one place that knows how (docker kill, pause,
// network disconnect, iptables in a node's namespace, the delaying proxy).
type Docker struct {
	cfg DockerConfig
}

var _ Cluster = (*Docker)(nil)

// NewDocker returns the Docker backend.
func NewDocker(cfg DockerConfig) (*Docker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HealthyTimeout == 0 {
		cfg.HealthyTimeout = 120 * time.Second
	}
	return &Docker{cfg: cfg}, nil
}

// run runs faults.sh VERB ARGS and returns its standard output.
func (d *Docker) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{d.cfg.Script}, args...)...)
	cmd.Env = append(cmd.Environ(), d.cfg.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			return "", fmt.Errorf("faults.sh %s: %w", strings.Join(args, " "), ErrUnsupported)
		}
		return "", fmt.Errorf("faults.sh %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// shell runs a bash snippet with scripts/faults.sh sourced.
func (d *Docker) shell(ctx context.Context, snippet string) (string, error) {
	// $0 must not be the script, or sourcing it would run it as a command.
	cmd := exec.CommandContext(ctx, "bash", "-c", ". \"$1\"; "+snippet, "skiff-chaos", d.cfg.Script)
	cmd.Env = append(cmd.Environ(), d.cfg.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", snippet, err, lastLine(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func (d *Docker) Nodes(ctx context.Context) ([]string, error) {
	out, err := d.shell(ctx, "skiff_nodes")
	if err != nil {
		return nil, err
	}
	if out == "" {
		return nil, errors.New("docker: no cluster nodes found")
	}
	return strings.Fields(out), nil
}

func (d *Docker) Kill(ctx context.Context, node string) error {
	_, err := d.run(ctx, "kill", node)
	return err
}

func (d *Docker) Stop(ctx context.Context, node string) error {
	_, err := d.run(ctx, "stop", node)
	return err
}

func (d *Docker) Start(ctx context.Context, node string) error {
	_, err := d.run(ctx, "start", node)
	return err
}

func (d *Docker) Pause(ctx context.Context, node string) error {
	_, err := d.run(ctx, "pause", node)
	return err
}

func (d *Docker) Resume(ctx context.Context, node string) error {
	_, err := d.run(ctx, "unpause", node)
	return err
}

func (d *Docker) Isolate(ctx context.Context, node string) error {
	_, err := d.run(ctx, "isolate", node)
	return err
}

func (d *Docker) Partition(ctx context.Context, a, b []string) error {
	_, err := d.run(ctx, "partition", strings.Join(a, ","), strings.Join(b, ","))
	return err
}

func (d *Docker) Loss(ctx context.Context, node string, percent float64) error {
	_, err := d.run(ctx, "loss", node, strconv.FormatFloat(percent, 'f', -1, 64))
	return err
}

func (d *Docker) Delay(ctx context.Context, node string, latency, jitter time.Duration) error {
	_, err := d.run(ctx, "delay", node, strconv.FormatInt(latency.Milliseconds(), 10), strconv.FormatInt(jitter.Milliseconds(), 10))
	return err
}

func (d *Docker) Heal(ctx context.Context) error {
	_, err := d.run(ctx, "heal-all")
	return err
}

func (d *Docker) StartAll(ctx context.Context) error {
	_, err := d.run(ctx, "start-all")
	return err
}

func (d *Docker) WaitHealthy(ctx context.Context) error {
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return err
	}
	secs := int(d.cfg.HealthyTimeout / time.Second)
	if dl, ok := ctx.Deadline(); ok {
		secs = min(secs, max(int(time.Until(dl)/time.Second), 1))
	}
	_, err = d.shell(ctx, fmt.Sprintf("skiff_wait_for %d 'a whole cluster' skiff_cluster_ok %d", secs, len(nodes)))
	return err
}

func (d *Docker) LeaderOf(ctx context.Context, topic string, partition int32) (string, error) {
	out, err := d.run(ctx, "leader-of", topic, strconv.Itoa(int(partition)))
	if err == nil && out == "" {
		err = fmt.Errorf("docker: no leader known for %s/%d", topic, partition)
	}
	return out, err
}

func (d *Docker) Controller(ctx context.Context) (string, error) {
	out, err := d.run(ctx, "leader-of-controller")
	if err == nil && out == "" {
		err = errors.New("docker: no controller known")
	}
	return out, err
}

var (
	_ Disk     = (*Docker)(nil)
	_ Operator = (*Docker)(nil)
)

func (d *Docker) DiskNodes(ctx context.Context) ([]string, error) {
	out, err := d.run(ctx, "disk-nodes")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

func (d *Docker) FillDisk(ctx context.Context, node string, leave int64) error {
	_, err := d.run(ctx, "fill-disk", node, strconv.FormatInt(leave, 10))
	return err
}

func (d *Docker) FreeDisk(ctx context.Context, node string) error {
	_, err := d.run(ctx, "free-disk", node)
	return err
}

func (d *Docker) AddNode(ctx context.Context) (string, error) {
	out, err := d.run(ctx, "add-node")
	if err == nil && out == "" {
		err = errors.New("docker: add-node named no node")
	}
	return lastLine(out), err
}

func (d *Docker) Decommission(ctx context.Context, node string) error {
	_, err := d.run(ctx, "decommission", node)
	return err
}

func (d *Docker) Maintenance(ctx context.Context, node string, on bool) error {
	state := "off"
	if on {
		state = "on"
	}
	_, err := d.run(ctx, "maintenance", node, state)
	return err
}

func (d *Docker) Remove(ctx context.Context, node string) error {
	_, err := d.run(ctx, "remove", node)
	return err
}

func (d *Docker) Replace(ctx context.Context, node string) error {
	_, err := d.run(ctx, "recreate", node)
	return err
}

func (d *Docker) Status(ctx context.Context) (Status, error) {
	out, err := d.run(ctx, "cluster-status")
	if err != nil {
		return Status{}, err
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return Status{}, fmt.Errorf("docker: cluster-status: %w", err)
	}
	return st, nil
}
