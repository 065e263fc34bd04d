package metadata

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// InternalTopicPrefix starts the names of internal topics
// ("__consumer_offsets"); users cannot create topics named so.
const InternalTopicPrefix = "__"

// ValidateTopicName checks a topic name a user asks for: 1 to 249 of
// [a-zA-Z0-9._-], not "." or "..", and not starting with "__" (reserved for
// internal topics, which the node creates itself). The error is an
// *InvalidArgumentError on field "name".
func ValidateTopicName(name string) error {
	return validateTopicName("name", name, false)
}

// validateTopicName is ValidateTopicName, allowing the internal prefix when
// internal is set.
func validateTopicName(field, name string, internal bool) error {
	if name == "" {
		return invalid(field, "topic name is empty")
	}
	if len(name) > MaxTopicNameLength {
		return invalid(field, "topic name is %d characters long, at most %d allowed", len(name), MaxTopicNameLength)
	}
	if name == "." || name == ".." {
		return invalid(field, "topic name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isTopicNameByte(c) {
			return invalid(field, "topic name %q: character %q at %d is not one of [a-zA-Z0-9._-]", name, rune(c), i)
		}
	}
	if !internal && strings.HasPrefix(name, InternalTopicPrefix) {
		return invalid(field, "topic name %q: names starting with %q are reserved for internal topics", name, InternalTopicPrefix)
	}
	return nil
}

func isTopicNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validateBrokerID accepts any printable, space-free UTF-8 id of at most
// MaxBrokerIDLength bytes: node ids are generated or chosen by operators
// and name Raft servers, so only what would break logs, paths or
// addresses is refused.
func validateBrokerID(field, id string) error {
	if id == "" {
		return invalid(field, "broker id is empty")
	}
	if len(id) > MaxBrokerIDLength {
		return invalid(field, "broker id is %d bytes long, at most %d allowed", len(id), MaxBrokerIDLength)
	}
	return validatePrintable(field, id)
}

func validatePrintable(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '/' || r == '\\' {
			return invalid(field, "%q: character %q is not allowed", s, r)
		}
	}
	return nil
}

// validateAddr accepts "" (not advertised) or host:port.
func validateAddr(field, addr string) error {
	if addr == "" {
		return nil
	}
	if len(addr) > 512 {
		return invalid(field, "address is %d bytes long, at most 512 allowed", len(addr))
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return invalid(field, "%q: want host:port", addr)
	}
	return nil
}

// ValidateBroker checks a broker registration: a valid id, addresses empty
// or host:port, a rack of at most 255 printable characters.
func ValidateBroker(b Broker) error {
	if err := validateBrokerID("broker.id", b.ID); err != nil {
		return err
	}
	for _, f := range []struct{ field, addr string }{
		{"broker.grpc_addr", b.GRPCAddr},
		{"broker.raft_addr", b.RaftAddr},
		{"broker.http_addr", b.HTTPAddr},
		{"broker.gossip_addr", b.GossipAddr},
	} {
		if err := validateAddr(f.field, f.addr); err != nil {
			return err
		}
	}
	if len(b.Listeners) > MaxListeners {
		return invalid("broker.listeners", "%d listeners, at most %d allowed", len(b.Listeners), MaxListeners)
	}
	for name, addr := range b.Listeners {
		if err := ValidateListenerName(name); err != nil {
			return err
		}
		if addr == "" {
			return invalid("broker.listeners."+name, "no address advertised")
		}
		if err := validateAddr("broker.listeners."+name, addr); err != nil {
			return err
		}
	}
	if b.Rack != "" {
		if len(b.Rack) > 255 {
			return invalid("broker.rack", "rack is %d bytes long, at most 255 allowed", len(b.Rack))
		}
		if err := validatePrintable("broker.rack", b.Rack); err != nil {
			return err
		}
	}
	return nil
}

// MaxListeners bounds a broker's named client listeners.
const MaxListeners = 16

// ValidateListenerName checks a listener name: 1 to 32 of a-z, 0-9, '-'
// and '_', as Kafka's listener names (case aside).
func ValidateListenerName(name string) error {
	if name == "" || len(name) > 32 {
		return invalid("broker.listeners", "listener name %q: want 1 to 32 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return invalid("broker.listeners", "listener name %q: only a-z, 0-9, '-' and '_' allowed", name)
		}
	}
	return nil
}

// validateReplicas checks one replica list against the registered brokers:
// 1..MaxReplicationFactor distinct registered broker ids.
func validateReplicas(field string, replicas []string, brokers map[string]Broker) error {
	if len(replicas) < 1 || len(replicas) > MaxReplicationFactor {
		return invalid(field, "%d replicas: must be in [1, %d]", len(replicas), MaxReplicationFactor)
	}
	for i, id := range replicas {
		if err := validateBrokerID(field, id); err != nil {
			return err
		}
		if slices.Contains(replicas[:i], id) {
			return invalid(field, "broker %q listed twice: replicas must be distinct", id)
		}
		if _, ok := brokers[id]; !ok {
			return fmt.Errorf("%s: %w %q", field, ErrUnknownBroker, id)
		}
	}
	return nil
}
