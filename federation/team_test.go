package federation

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs/errgrpc"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func keyPair(t *testing.T, ca *pki.CA, id pki.Identity, usage pki.Usage) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{Identity: id, Usage: usage, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

func descriptionOf(team string) *irxv1.TeamDescription {
	return &irxv1.TeamDescription{
		TeamId: team, Version: 3,
		Contact: &irxv1.TeamContactInformation{Name: strings.ToUpper(team), EmailAddresses: []*irxv1.TeamEmailAddress{{Address: "cert@" + team + ".example"}}},
	}
}

func sign(t *testing.T, d *irxv1.TeamDescription, cert *tls.Certificate) *irxv1.SignedTeamDescription {
	t.Helper()
	s, err := SignTeamDescription(d, cert)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTeamDescriptionSignature: a description verifies only when a node of
// the team it describes signed exactly these bytes with a key certified by
// the CA pinned for that team.
func TestTeamDescriptionSignature(t *testing.T) {
	caA, caB := mustCA(t, "cert-a"), mustCA(t, "cert-b")
	impostorA := mustCA(t, "cert-a") // the right name, not the pinned key
	nodeA := keyPair(t, caA, pki.NodeIdentity("cert-a", "node1"), pki.UsageNode)
	pinnedA, pinnedB := string(caA.CertPEM()), string(caB.CertPEM())

	good := sign(t, descriptionOf("cert-a"), nodeA)
	d, v, err := VerifyTeamDescription(good, "cert-a", pinnedA)
	if err != nil {
		t.Fatalf("a good description is refused: %v", err)
	}
	if !proto.Equal(d, descriptionOf("cert-a")) {
		t.Errorf("verified %v, signed %v", d, descriptionOf("cert-a"))
	}
	if v.GetSigner() != "irx://cert-a/node/node1" || v.GetCaFingerprint() != pki.Fingerprint(caA.Cert) ||
		v.GetSignatureAlgorithm() != TeamSignatureAlgorithm || v.GetSignerExpireTime() == nil || v.GetVerifyTime() == nil {
		t.Errorf("verification %v", v)
	}

	tamper := func(change func(s *irxv1.SignedTeamDescription)) *irxv1.SignedTeamDescription {
		s := proto.CloneOf(good)
		change(s)
		return s
	}
	renamed := descriptionOf("cert-a")
	renamed.Contact.EmailAddresses[0].Address = "attacker@evil.example"
	renamedBytes, _ := proto.Marshal(renamed)

	cases := []struct {
		name   string
		signed *irxv1.SignedTeamDescription
		team   string
		pinned string
		want   string
	}{
		{"description altered", tamper(func(s *irxv1.SignedTeamDescription) { s.Description = renamedBytes }), "cert-a", pinnedA, "does not verify"},
		{"one bit of the description flipped", tamper(func(s *irxv1.SignedTeamDescription) { s.Description[len(s.Description)-1] ^= 1 }), "cert-a", pinnedA, "does not verify"},
		{"signature altered", tamper(func(s *irxv1.SignedTeamDescription) { s.Signature[len(s.Signature)/2] ^= 1 }), "cert-a", pinnedA, "does not verify"},
		{"no signature", tamper(func(s *irxv1.SignedTeamDescription) { s.Signature = nil }), "cert-a", pinnedA, "does not verify"},
		{"another algorithm", tamper(func(s *irxv1.SignedTeamDescription) { s.SignatureAlgorithm = "ECDSA-P256-SHA256" }), "cert-a", pinnedA, "signature algorithm"},
		{"no certificate", tamper(func(s *irxv1.SignedTeamDescription) { s.CertificateChain = nil }), "cert-a", pinnedA, "no signer certificate"},
		{"garbage certificate", tamper(func(s *irxv1.SignedTeamDescription) { s.CertificateChain = [][]byte{[]byte("junk")} }), "cert-a", pinnedA, "signer certificate 0"},
		{"signed under an impostor CA of the same name",
			sign(t, descriptionOf("cert-a"), keyPair(t, impostorA, pki.NodeIdentity("cert-a", "node1"), pki.UsageNode)), "cert-a", pinnedA, "does not verify against the CA pinned"},
		{"a good description checked against another team's CA", good, "cert-a", pinnedB, "does not verify against the CA pinned"},
		{"a good description presented as another team's", good, "cert-b", pinnedB, "does not verify against the CA pinned"},
		{"a pin that holds the signer's CA under another team", good, "cert-b", pinnedA, "not a node of cert-b"},
		{"a node of the team signing another team's description",
			sign(t, descriptionOf("cert-c"), nodeA), "cert-a", pinnedA, `is of team "cert-c"`},
		{"signed by an operator (server and client usage)",
			sign(t, descriptionOf("cert-a"), keyPair(t, caA, pki.OperatorIdentity("cert-a", "alice"), pki.UsageNode)), "cert-a", pinnedA, "not a node of cert-a"},
		{"signed by an operator (client usage)",
			sign(t, descriptionOf("cert-a"), keyPair(t, caA, pki.OperatorIdentity("cert-a", "alice"), pki.UsageClient)), "cert-a", pinnedA, "does not verify against the CA pinned"},
		{"signed by a client-only node certificate",
			sign(t, descriptionOf("cert-a"), keyPair(t, caA, pki.NodeIdentity("cert-a", "node2"), pki.UsageClient)), "cert-a", pinnedA, "does not verify against the CA pinned"},
		{"signed by another node's key, presenting this node's certificate", tamper(func(s *irxv1.SignedTeamDescription) {
			other := sign(t, descriptionOf("cert-a"), keyPair(t, caA, pki.NodeIdentity("cert-a", "node2"), pki.UsageNode))
			s.Signature = other.GetSignature()
		}), "cert-a", pinnedA, "does not verify"},
		{"a signature over the bare description (no context)", tamper(func(s *irxv1.SignedTeamDescription) {
			sum := sha256.Sum256(s.GetDescription())
			sig, err := nodeA.PrivateKey.(crypto.Signer).Sign(rand.Reader, sum[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			s.Signature = sig
		}), "cert-a", pinnedA, "does not verify"},
		{"no pinned CA", good, "cert-a", "", "the CA pinned for cert-a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, _, err := VerifyTeamDescription(tc.signed, tc.team, tc.pinned)
			switch {
			case err == nil:
				t.Fatalf("verified: %v", d)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refused with %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestTeamRequestValidation: TeamService refuses a malformed peer team id
// or read consistency before it reads anything, naming the field.
func TestTeamRequestValidation(t *testing.T) {
	s := &teamService{f: &Federation{}}
	for name, id := range map[string]string{
		"empty":     "",
		"too long":  strings.Repeat("a", 64),
		"uppercase": "CERT-B",
		"slash":     "cert-b/ca",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.GetPeerTeamDescription(t.Context(), &irxv1.GetPeerTeamDescriptionRequest{PeerTeamId: id})
			err = errgrpc.ToStatus(err) // what the services' interceptor answers
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "peer_team_id") {
				t.Fatalf("peer_team_id %q: got %v, want INVALID_ARGUMENT naming peer_team_id", id, err)
			}
		})
	}
	_, err := s.GetTeamDescription(t.Context(), &irxv1.GetTeamDescriptionRequest{Consistency: 99})
	err = errgrpc.ToStatus(err)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "consistency") {
		t.Fatalf("consistency 99: got %v, want INVALID_ARGUMENT naming consistency", err)
	}
}
