package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip timing profiles (Config.Profile).
const (
	// ProfileLAN is memberlist.DefaultLANConfig: probe every 1s with a 500ms
	// timeout, suspicion 4*log10(n)s. A crashed node is declared dead after
	// roughly 5-6s in a small cluster.
	ProfileLAN = "lan"
	// ProfileLocal is memberlist.DefaultLocalConfig: 200ms probe timeout,
	// shorter suspicion and TCP timeouts. For tests and single-host clusters.
	ProfileLocal = "local"
)

// Defaults applied to zero fields.
const (
	DefaultBindAddr            = ":9402"
	DefaultJoinRetryInterval   = time.Second
	DefaultDeadNodeReclaimTime = 5 * time.Second
)

// Config configures a Membership. Zero fields take the documented default,
// so Config{Meta: m} is usable; DefaultConfig spells the defaults out.
type Config struct {
	// Meta describes this node; Meta.ID is its memberlist node name. Required.
	Meta Meta

	// BindAddr is the host:port gossip listens on, UDP and TCP on the same
	// port. The host must be an IP literal or empty (all interfaces). Port 0
	// picks a free port (tests); Membership.Addr reports it. Default ":9402".
	BindAddr string

	// AdvertiseAddr is the host:port other nodes reach this one at, when it
	// differs from the bind address (containers, NAT). The host may be a name;
	// it is resolved once at Start. Port 0 means the bound port. Default: the
	// bind IP, or when bound to all interfaces, the first private IP
	// (memberlist fails to start if there is none: set AdvertiseAddr then).
	AdvertiseAddr string

	// Join lists seed addresses (host:port, or host for the bind port). Any one
	// live seed suffices. Start does not wait: a background loop retries
	// until it reaches a node other than itself, so nodes may start in any
	// order. Listing this node's own address is harmless.
	Join []string

	// ReconnectInterval is how often members that failed are contacted
	// again, so a healed network partition merges the cluster back.
	// Default 5s; negative disables it.
	ReconnectInterval time.Duration
	// JoinRetryInterval is the pause between join attempts (plus up to 25%
	// jitter). Default 1s.
	JoinRetryInterval time.Duration

	// JoinTimeout bounds how long the join loop retries before giving up with
	// an error log. Zero (default) retries until Leave/Shutdown: a node whose
	// seeds are down can still be joined by others.
	JoinTimeout time.Duration

	// Profile picks memberlist's timing: ProfileLAN (default) or ProfileLocal.
	Profile string

	// DeadNodeReclaimTime is how long a member must have been dead before
	// another process may take its name at a different address. memberlist's
	// default (0) never allows it: a node restarted at a new IP (a rescheduled
	// container) is rejected as a "conflicting address" until every peer has
	// forgotten the dead entry (GossipToTheDeadTime, 30s on LAN) — long
	// enough for the controller to start moving its replicas. A few seconds
	// after the death is safe: the old process was already declared dead by
	// the cluster, and a short wait keeps two live processes misconfigured
	// with the same id from stealing the name back and forth on every probe.
	// Zero means the default, 5s; negative disables reclaim (memberlist's 0).
	// A left member's name is always reclaimable at once.
	DeadNodeReclaimTime time.Duration

	// Keys turns on gossip encryption (AES-256-GCM, memberlist's keyring):
	// Keys[0] is the primary key, which encrypts; all of them decrypt, so
	// a cluster can rotate keys (see Membership.InstallKey). Each key is
	// KeySize bytes. Incoming and outgoing messages are both verified: a
	// node without a key the cluster holds, or with no key at all, cannot
	// join, and an encrypted node does not accept plain gossip.
	// Default: none, gossip is plain text.
	Keys [][]byte

	// KeyringFile is where the live keyring is persisted (WriteKeyFile,
	// mode 0600) each time a rotation changes it, so a restarted node comes
	// back with the keys the cluster uses now rather than the ones it was
	// first started with. Start only writes it; which file a node starts
	// from is the caller's choice. Default "": rotations are not persisted.
	KeyringFile string

	// ClusterName labels every gossip packet and stream (memberlist's
	// Label, authenticated data when encryption is on): nodes of clusters
	// with different names ignore each other even when joined to each
	// other's addresses. See ValidateClusterName. Default "": no label,
	// which only talks to other unlabelled nodes.
	ClusterName string

	// Logger receives this package's logs and memberlist's, routed by level.
	// Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in except Meta.
func DefaultConfig() Config {
	return Config{
		BindAddr:            DefaultBindAddr,
		JoinRetryInterval:   DefaultJoinRetryInterval,
		ReconnectInterval:   DefaultReconnectInterval,
		Profile:             ProfileLAN,
		DeadNodeReclaimTime: DefaultDeadNodeReclaimTime,
	}
}

func (c Config) withDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.JoinRetryInterval == 0 {
		c.JoinRetryInterval = DefaultJoinRetryInterval
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.DeadNodeReclaimTime == 0 {
		c.DeadNodeReclaimTime = DefaultDeadNodeReclaimTime
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field as a *FieldError. Zero fields are
// valid: they take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Meta.Validate(); err != nil {
		return err
	}
	if host, _, err := splitHostPort(c.BindAddr); err != nil {
		return fieldErr("BindAddr", err)
	} else if host != "" && net.ParseIP(host) == nil {
		return fieldErr("BindAddr", fmt.Errorf("host %q must be an IP address or empty", host))
	}
	if c.AdvertiseAddr != "" {
		host, _, err := splitHostPort(c.AdvertiseAddr)
		if err != nil {
			return fieldErr("AdvertiseAddr", err)
		}
		if host == "" {
			return fieldErr("AdvertiseAddr", errors.New("host is required"))
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fieldErr("AdvertiseAddr", fmt.Errorf("%s cannot be reached by peers", host))
		}
	}
	for i, seed := range c.Join {
		if seed == "" {
			return fieldErr(fmt.Sprintf("Join[%d]", i), errors.New("empty address"))
		}
	}
	if c.JoinRetryInterval < 0 {
		return fieldErr("JoinRetryInterval", fmt.Errorf("negative (%v)", c.JoinRetryInterval))
	}
	if c.JoinTimeout < 0 {
		return fieldErr("JoinTimeout", fmt.Errorf("negative (%v)", c.JoinTimeout))
	}
	if c.Profile != ProfileLAN && c.Profile != ProfileLocal {
		return fieldErr("Profile", fmt.Errorf("%q is not %q or %q", c.Profile, ProfileLAN, ProfileLocal))
	}
	for i, key := range c.Keys {
		if len(key) != KeySize {
			return fieldErr(fmt.Sprintf("Keys[%d]", i), fmt.Errorf("%d bytes, want %d (AES-256)", len(key), KeySize))
		}
		for j := range i {
			if bytes.Equal(c.Keys[j], key) {
				return fieldErr(fmt.Sprintf("Keys[%d]", i), fmt.Errorf("duplicate of Keys[%d]", j))
			}
		}
	}
	if c.KeyringFile != "" && len(c.Keys) == 0 {
		return fieldErr("KeyringFile", errors.New("set without Keys: there is no keyring to persist"))
	}
	if err := ValidateClusterName(c.ClusterName); err != nil {
		return fieldErr("ClusterName", err)
	}
	return nil
}

// splitHostPort is net.SplitHostPort plus a port range check.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not in 0-65535", addr, p)
	}
	return host, port, nil
}

// memberlistConfig translates a validated, defaulted Config. The delegates
// are filled in by Start.
func (c Config) memberlistConfig(ctx context.Context) (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch c.Profile {
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = c.Meta.ID

	host, port, _ := splitHostPort(c.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	// With BindPort 0, memberlist overwrites AdvertisePort with the port it
	// bound, which is what we want.
	mc.AdvertisePort = port

	if c.AdvertiseAddr != "" {
		ahost, aport, _ := splitHostPort(c.AdvertiseAddr)
		ip, err := resolveIP(ctx, ahost)
		if err != nil {
			return nil, fmt.Errorf("membership: AdvertiseAddr: %w", err)
		}
		mc.AdvertiseAddr = ip.String()
		if aport != 0 {
			mc.AdvertisePort = aport
		}
	}

	if c.DeadNodeReclaimTime > 0 {
		mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	} else {
		mc.DeadNodeReclaimTime = 0
	}
	mc.Label = c.ClusterName
	if len(c.Keys) > 0 {
		keys := make([][]byte, len(c.Keys))
		for i, k := range c.Keys {
			keys[i] = bytes.Clone(k)
		}
		kr, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			return nil, fmt.Errorf("membership: keyring: %w", err)
		}
		mc.Keyring = kr
	}
	// memberlist's defaults are already true; they are spelled out because
	// turning them off is how memberlist "upshifts" a running cluster to
	// encryption, and Skiff wants the opposite guarantee: an encrypted node
	// neither sends nor accepts plain gossip, so a node without the key can
	// never become a member.
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Logger = log.New(&logWriter{logger: c.Logger}, "", 0)
	mc.LogOutput = nil
	return mc, nil
}

// resolveIP returns host as an IP, resolving a name (preferring IPv4, as
// container networks usually are) because memberlist only accepts literals.
func resolveIP(ctx context.Context, host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return a.IP, nil
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %q: no addresses", host)
	}
	return addrs[0].IP, nil
}
