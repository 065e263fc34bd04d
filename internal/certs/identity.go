package certs

import (
	"crypto/x509"
	"net/url"
	"strings"
)

// NodeURIPrefix is the SAN URI prefix naming a node: skiff://node/<id>.
const NodeURIPrefix = "skiff://node/"

// NodeURI returns the SAN URI for node id.
func NodeURI(id string) *url.URL {
	return &url.URL{Scheme: "skiff", Host: "node", Path: "/" + id}
}

// NodeID returns the node id a certificate names through its
// skiff://node/<id> URI SAN, and false when it names none (a client
// certificate). Only the URI counts, never the CN: a client certificate
// whose CN happens to equal a node id must not pass as that node.
func NodeID(cert *x509.Certificate) (string, bool) {
	if cert == nil {
		return "", false
	}
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, NodeURIPrefix) {
			if id := strings.TrimPrefix(s, NodeURIPrefix); id != "" && !strings.Contains(id, "/") {
				return id, true
			}
		}
	}
	return "", false
}
