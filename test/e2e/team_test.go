package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/federation"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func teamDescriptionOf(name string) *irxv1.TeamDescription {
	return &irxv1.TeamDescription{
		Document: &irxv1.TeamDocumentInformation{
			DistributionLists: []*irxv1.TeamLink{{Uri: "mailto:cert-info@a.example", Description: "moderated"}},
			Locations:         []*irxv1.TeamLink{{Uri: "https://cert.a.example/rfc2350.txt"}},
		},
		Contact: &irxv1.TeamContactInformation{
			Name:             name,
			Address:          []string{"CERT-A", "1 Main Street", "Town"},
			TimeZone:         "Europe/Madrid",
			TelephoneNumbers: []*irxv1.TeamPhoneNumber{{Number: "+34 912 345 678"}},
			EmailAddresses:   []*irxv1.TeamEmailAddress{{Address: "cert@a.example", Description: "incident reports"}},
			PublicKeys: []*irxv1.TeamPublicKey{{
				Format: irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_OPENPGP, UserId: "CERT-A <cert@a.example>",
				Fingerprint: "1122 3344 5566 7788 99AA BBCC DDEE FF00 1122 3344",
			}},
			OperatingHours: "09:00-17:00 CET, Monday to Friday",
		},
		Charter: &irxv1.TeamCharter{
			MissionStatement:     "To coordinate the response to incidents in A's network.",
			ConstituencyNetworks: &irxv1.Constituency{Cidrs: []string{"192.0.2.0/24"}},
		},
		Services: &irxv1.TeamServices{IncidentTriage: []string{"Report assessment"}},
	}
}

// TestTeamDescriptionSignedAcrossFederation: A (three nodes) stores its
// RFC 2350 description through any node; B fetches it over federation
// from A's peer-facing listener and gets it only once A accepts B as a
// peer and has published one; what B gets is A's current version, signed
// by a node of A, verified against the CA B pinned for A, and still
// verifiable offline from the signed bytes.
func TestTeamDescriptionSignedAcrossFederation(t *testing.T) {
	a := startTeam(t, "cert-a", 3)
	b := startTeam(t, "cert-b", 1)
	teamsA := make([]irxv1.TeamServiceClient, len(a.nodes))
	for i, n := range a.nodes {
		conn, err := n.Dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		teamsA[i] = irxv1.NewTeamServiceClient(conn)
	}
	connB, err := b.nodes[0].Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { connB.Close() })
	teamB := irxv1.NewTeamServiceClient(connB)
	fetch := func() (*irxv1.GetPeerTeamDescriptionResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return teamB.GetPeerTeamDescription(ctx, &irxv1.GetPeerTeamDescriptionRequest{PeerTeamId: "cert-a"})
	}

	// Nothing yet, and bad input stores nothing.
	if _, err := teamsA[0].GetTeamDescription(ctxT(t), &irxv1.GetTeamDescriptionRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetTeamDescription before any: %v, want NOT_FOUND", err)
	}
	bad := teamDescriptionOf("")
	bad.Contact.EmailAddresses[0].Address = "CERT-A <cert@a.example>"
	bad.Document.Locations[0].Uri = "rfc2350.txt"
	_, err = teamsA[1].UpdateTeamDescription(ctxT(t), &irxv1.UpdateTeamDescriptionRequest{Description: bad})
	assertInvalid(t, err, "description.contact.name", "description.contact.email_addresses[0].address", "description.document.locations[0].uri")
	_, err = teamsA[1].UpdateTeamDescription(ctxT(t), &irxv1.UpdateTeamDescriptionRequest{})
	assertInvalid(t, err, "description")
	if _, err := teamsA[0].GetTeamDescription(ctxT(t), &irxv1.GetTeamDescriptionRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("bad input stored something: %v", err)
	}

	// B knows A, but A does not know B: A's listener refuses B.
	b.peerWith(t, a, true)
	if _, err := fetch(); status.Code(err) != codes.Unavailable {
		t.Fatalf("fetch from a team that does not accept us: %v, want UNAVAILABLE", err)
	}
	a.peerWith(t, b, false)
	eventually(t, 30*time.Second, "A has not published a description", func() error {
		if _, err := fetch(); status.Code(err) != codes.NotFound {
			return err
		}
		return nil
	})

	// A stores version 1 through every node in turn (followers forward to
	// the leader); output-only fields from the client are ignored.
	var stored *irxv1.TeamDescription
	for i, tc := range teamsA {
		d := teamDescriptionOf("CERT-A")
		d.TeamId, d.Version = "cert-z", 99
		resp, err := tc.UpdateTeamDescription(ctxT(t), &irxv1.UpdateTeamDescriptionRequest{Description: d, ExpectedVersion: int64(i)})
		if err != nil {
			t.Fatalf("UpdateTeamDescription at node %d: %v", i+1, err)
		}
		stored = resp.GetDescription()
		if stored.GetTeamId() != "cert-a" || stored.GetVersion() != int64(i+1) || stored.GetUpdateTime() == nil {
			t.Fatalf("stored through node %d: %s v%d at %v", i+1, stored.GetTeamId(), stored.GetVersion(), stored.GetUpdateTime())
		}
	}
	_, err = teamsA[0].UpdateTeamDescription(ctxT(t), &irxv1.UpdateTeamDescriptionRequest{Description: teamDescriptionOf("CERT-A"), ExpectedVersion: 1})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("a stale expected_version: %v, want ABORTED", err)
	}
	for i, tc := range teamsA {
		resp, err := tc.GetTeamDescription(ctxT(t), &irxv1.GetTeamDescriptionRequest{})
		if err != nil || !proto.Equal(resp.GetDescription(), stored) {
			t.Fatalf("node %d reads %v, %v; want %v", i+1, resp.GetDescription(), err, stored)
		}
	}

	// B fetches and verifies it.
	caA, err := a.nodes[0].CACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.ParseCertPEM([]byte(caA))
	if err != nil {
		t.Fatal(err)
	}
	var got *irxv1.GetPeerTeamDescriptionResponse
	eventually(t, 30*time.Second, "B gets A's current description", func() error {
		resp, err := fetch()
		if err != nil {
			return err
		}
		if !proto.Equal(resp.GetDescription(), stored) {
			return status.Errorf(codes.Unknown, "B got %v", resp.GetDescription())
		}
		got = resp
		return nil
	})
	v := got.GetVerification()
	if !strings.HasPrefix(v.GetSigner(), "irx://cert-a/node/node") || v.GetCaFingerprint() != pki.Fingerprint(caCert) ||
		v.GetSignatureAlgorithm() != federation.TeamSignatureAlgorithm || v.GetEndpoint() != a.nodes[0].FedAddr {
		t.Errorf("verification %v; A's CA is %s", v, pki.Fingerprint(caCert))
	}
	// The signed bytes verify again without the connection, and only as A's.
	if d, _, err := federation.VerifyTeamDescription(got.GetSignedDescription(), "cert-a", caA); err != nil || !proto.Equal(d, stored) {
		t.Errorf("offline verification: %v, %v", d, err)
	}
	caB, err := b.nodes[0].CACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := federation.VerifyTeamDescription(got.GetSignedDescription(), "cert-a", caB); err == nil {
		t.Error("A's description verified against B's CA")
	}

	// An update at A reaches B on the next fetch.
	next := teamDescriptionOf("CERT-A (national CSIRT of A)")
	if _, err := teamsA[2].UpdateTeamDescription(ctxT(t), &irxv1.UpdateTeamDescriptionRequest{Description: next}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "B gets version 4", func() error {
		resp, err := fetch()
		if err != nil {
			return err
		}
		if resp.GetDescription().GetVersion() != 4 || resp.GetDescription().GetContact().GetName() != "CERT-A (national CSIRT of A)" {
			return status.Errorf(codes.Unknown, "B got v%d %q", resp.GetDescription().GetVersion(), resp.GetDescription().GetContact().GetName())
		}
		return nil
	})

	// Unknown peers and bad requests.
	if _, err := teamB.GetPeerTeamDescription(ctxT(t), &irxv1.GetPeerTeamDescriptionRequest{PeerTeamId: "cert-nobody"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown peer: %v, want NOT_FOUND", err)
	}
	_, err = teamB.GetPeerTeamDescription(ctxT(t), &irxv1.GetPeerTeamDescriptionRequest{})
	assertInvalid(t, err, "peer_team_id")
	// A has B as a peer without endpoints: it cannot fetch B's.
	if _, err := teamsA[0].GetPeerTeamDescription(ctxT(t), &irxv1.GetPeerTeamDescriptionRequest{PeerTeamId: "cert-b"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a peer without endpoints: %v, want FAILED_PRECONDITION", err)
	}
}
