// Package pki holds the certificate machinery of an irx node: per-team
// certificate authorities, node and operator certificates, the identities
// carried in their SAN URIs, and the TLS configurations that enforce them.
//
// Trust model. Every team runs its own CA. A certificate names its holder with
// exactly one SAN URI of the form
//
//	irx://<team>/node/<node-id>       a cluster member (server and client auth)
//	irx://<team>/operator/<name>      a human or tool talking to a node
//	irx://<team>/ca/<team>            the team CA itself
//
// Hostnames are deliberately not part of the trust decision: nodes move
// between addresses and are addressed by IP inside a cluster, so the TLS
// configurations built here verify the chain against the team CA and then
// authorise on the SAN identity. In addition every verification requires the
// trust anchor of the chain to be the CA of the team named in the leaf, so
// that a pool holding several teams' CAs never lets one team mint identities
// for another.
//
// The package uses only the standard library, keeps no package-level state,
// and generates ECDSA P-256 keys, which every TLS 1.3 implementation supports.
package pki
