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
// certificate). A certificate naming two different nodes names none: Create
// never issues one, and guessing which identity was meant would let one
// certificate pass as two nodes.
func NodeID(cert *x509.Certificate) (string, bool) {
	if cert == nil {
		return "", false
	}
	found := ""
	for _, u := range cert.URIs {
		id, ok := strings.CutPrefix(u.String(), NodeURIPrefix)
		if !ok || validName(id) != nil {
			continue
		}
		if found != "" && found != id {
			return "", false
		}
		found = id
	}
	return found, found != ""
}
