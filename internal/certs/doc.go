// Package certs creates and loads the X.509 material of a Skiff cluster:
// one cluster CA, a certificate per node and a certificate per client,
// all ECDSA P-256.
//
// It depends on the standard library only, so that the CLI, the server and
// tests can share it without pulling in the rest of Skiff.
//
// # Identities
//
// A node certificate names its node twice: CN=<id> for humans and a URI SAN
// skiff://node/<id> (NodeURI) for machines. Peers decide "this is node n2"
// from the URI alone (NodeID), never from the CN or a DNS name: DNS names
// are host names chosen by operators and may be shared, the URI is not. A
// client certificate carries no such URI and only the ClientAuth usage, so
// it can never pass for a node, even though both come from the same CA.
//
// # Files
//
// Create writes one directory, the layout `skiff certs create` prints:
//
//	ca.crt, ca.key        the cluster CA (reused when both already exist)
//	<node>.crt, .key      per node: ServerAuth+ClientAuth, SANs for its hosts
//	<client>.crt, .key    per client: ClientAuth only
//
// Keys are PEM "EC PRIVATE KEY" written with mode 0600; certificates are
// PEM with mode 0644. Every file is written to a temporary name and renamed,
// so a crash never leaves half a key behind. ClientTLS reads (a CA file and
// optionally a client certificate pair) back into a *tls.Config.
package certs
