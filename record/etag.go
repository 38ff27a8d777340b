package record

import (
	"crypto/sha256"
	"encoding/hex"

	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// PeerEtag names a peer's configuration as the team stores it (AIP-154):
// a digest of its deterministic encoding without what a node derives
// when it answers (status, policy, CA fingerprint, the etag itself), so
// every node computes the same one from the same stored peer, and a
// replica that stores no etag stores the same bytes.
func PeerEtag(p *irxv1.Peer) string {
	c := proto.CloneOf(p)
	c.Etag, c.Status, c.CaFingerprint = "", nil, ""
	c.PolicyVersion, c.RecipientClass, c.Constituency = 0, 0, nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		// A stored peer always encodes; one that does not has no etag an
		// update could name.
		return "unencodable"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
