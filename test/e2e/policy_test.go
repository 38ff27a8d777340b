package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

func sampleYAML(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "policy", "testdata", "sample.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// pseudonymPolicy gives peer every intruder and private-site value as a
// pseudonym, with a partner-level record so it is disclosed.
func pseudonymPolicy(peer string) *irxv1.DisclosurePolicy {
	return &irxv1.DisclosurePolicy{
		PeerTeamId:     peer,
		RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling:     irxv1.Tlp_TLP_AMBER,
		Rules: []*irxv1.ClassRule{
			{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE},
			{InfoClass: irxv1.InfoClass_INFO_CLASS_STATISTICAL, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD},
		},
	}
}

func partnerIncident() *irxv1.Incident {
	inc := sample(7)
	inc.Restriction = irxv1.Restriction_RESTRICTION_PARTNER
	return inc
}

func TestPolicyServiceVersionsAndPreview(t *testing.T) {
	n := irxdtest.StartNode(t, irxdBin)
	conn, err := n.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	policies := irxv1.NewPolicyServiceClient(conn)
	c := dial(t, n)
	ctx := ctxT(t)

	v1, err := policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: sampleYAML(t)})
	if err != nil {
		t.Fatalf("SetPolicy from YAML: %v", err)
	}
	if v1.GetPolicy().GetPeerTeamId() != "cert-b" || v1.GetPolicy().GetVersion() != 1 || v1.GetPolicy().GetCreateTime() == nil {
		t.Fatalf("stored policy: %v", v1.GetPolicy())
	}

	// A bad policy is refused with the line, and stores nothing.
	_, err = policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: "peer_team_id: cert-b\nrecipient_class: response_team\ntlp_ceiling: amber\nrules:\n  intruder: teleport\n"})
	assertInvalid(t, err, "policy_yaml")
	if !strings.Contains(status.Convert(err).Message(), "line 5") {
		t.Errorf("YAML error does not name the line: %v", err)
	}
	_, err = policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{Policy: &irxv1.DisclosurePolicy{PeerTeamId: "cert-b"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("incomplete policy: %v", err)
	}

	v2, err := policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{Policy: pseudonymPolicy("cert-b")})
	if err != nil || v2.GetPolicy().GetVersion() != 2 {
		t.Fatalf("second version: %v, %v", v2, err)
	}
	versions, err := policies.ListPolicyVersions(ctx, &irxv1.ListPolicyVersionsRequest{PeerTeamId: "cert-b"})
	if err != nil || len(versions.GetPolicies()) != 2 || !proto.Equal(versions.GetPolicies()[0], v1.GetPolicy()) {
		t.Fatalf("versions: %v, %v", versions, err)
	}
	old, err := policies.GetPolicy(ctx, &irxv1.GetPolicyRequest{PeerTeamId: "cert-b", Version: 1})
	if err != nil || !proto.Equal(old.GetPolicy(), v1.GetPolicy()) {
		t.Fatalf("version 1 is not kept as it was: %v, %v", old, err)
	}
	if _, err := policies.GetPolicy(ctx, &irxv1.GetPolicyRequest{PeerTeamId: "cert-z"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown peer: %v, want NOT_FOUND", err)
	}
	if _, err := policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{Policy: pseudonymPolicy("cert-c")}); err != nil {
		t.Fatal(err)
	}
	all, err := policies.ListPolicies(ctx, &irxv1.ListPoliciesRequest{})
	if err != nil || len(all.GetPolicies()) != 2 || all.GetPolicies()[0].GetVersion() != 2 || all.GetPolicies()[1].GetPeerTeamId() != "cert-c" {
		t.Fatalf("ListPolicies: %v, %v", all, err)
	}

	// Preview: the same stored incident for two peers under pseudonymising
	// policies gives each its own stable tokens, and the attacker's address
	// never appears in either view.
	inc := create(t, c, partnerIncident())
	preview := func(peer string) *irxv1.PreviewDisclosureResponse {
		t.Helper()
		resp, err := policies.PreviewDisclosure(ctx, &irxv1.PreviewDisclosureRequest{PeerTeamId: peer, Subject: &irxv1.PreviewDisclosureRequest_IncidentId{IncidentId: inc.GetId()}})
		if err != nil {
			t.Fatalf("PreviewDisclosure(%s): %v", peer, err)
		}
		return resp
	}
	b1, b2, c1 := preview("cert-b"), preview("cert-b"), preview("cert-c")
	if b1.GetPolicyVersion() != 2 || b1.GetView() == nil {
		t.Fatalf("preview: version %d, view %v, explanation %v", b1.GetPolicyVersion(), b1.GetView(), b1.GetExplanation())
	}
	tokB := b1.GetView().GetAttackingHosts()[0].GetAddresses()[0]
	tokC := c1.GetView().GetAttackingHosts()[0].GetAddresses()[0]
	if tokB == "198.51.100.7" || tokC == "198.51.100.7" || tokB == tokC {
		t.Errorf("pseudonyms: cert-b %q, cert-c %q", tokB, tokC)
	}
	if !proto.Equal(b1, b2) {
		t.Errorf("the same preview twice differs")
	}
	if len(b1.GetView().GetVictimHosts()) != 0 || len(b1.GetView().GetContacts()) != 0 {
		t.Errorf("classes without a rule leaked: %v", b1.GetView())
	}
	if len(b1.GetExplanation().GetFields()) == 0 || len(b1.GetExplanation().GetReasons()) == 0 {
		t.Errorf("no explanation: %v", b1.GetExplanation())
	}

	// An older version and an inline incident can be previewed too.
	byOld, err := policies.PreviewDisclosure(ctx, &irxv1.PreviewDisclosureRequest{PeerTeamId: "cert-b", PolicyVersion: 1, Subject: &irxv1.PreviewDisclosureRequest_IncidentId{IncidentId: inc.GetId()}})
	if err != nil || byOld.GetPolicyVersion() != 1 {
		t.Fatalf("preview under version 1: %v, %v", byOld, err)
	}
	inline, err := policies.PreviewDisclosure(ctx, &irxv1.PreviewDisclosureRequest{PeerTeamId: "cert-b", Subject: &irxv1.PreviewDisclosureRequest_Incident{Incident: partnerIncident()}})
	if err != nil || inline.GetView() == nil {
		t.Fatalf("inline preview: %v, %v", inline, err)
	}
	_, err = policies.PreviewDisclosure(ctx, &irxv1.PreviewDisclosureRequest{PeerTeamId: "cert-b", Subject: &irxv1.PreviewDisclosureRequest_Incident{Incident: &irxv1.Incident{}}})
	assertInvalid(t, err, "incident.tlp")
	_, err = policies.PreviewDisclosure(ctx, &irxv1.PreviewDisclosureRequest{PeerTeamId: "cert-b"})
	assertInvalid(t, err, "incident_id")
}

// Policies and the team's pseudonymisation secret are replicated state:
// every node of a team computes the same view, byte for byte.
func TestPolicyViewsAgreeAcrossNodes(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	leader, _ := roles(t, nodes)
	// Start with a follower: it forwards the write and must hand back the
	// leader's answer.
	nodes = append(nodes[leader+1:], nodes[:leader+1]...)
	var previews []*irxv1.PreviewDisclosureResponse
	var id string
	for i, n := range nodes {
		conn, err := n.Dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		policies := irxv1.NewPolicyServiceClient(conn)
		if i == 0 {
			set, err := policies.SetPolicy(ctxT(t), &irxv1.SetPolicyRequest{Policy: pseudonymPolicy("cert-b")})
			if err != nil || set.GetPolicy().GetVersion() != 1 || set.GetPolicy().GetPeerTeamId() != "cert-b" {
				t.Fatalf("SetPolicy on a follower: %v, %v", set, err)
			}
			id = create(t, clientOf(conn), partnerIncident()).GetId()
		}
		resp, err := policies.PreviewDisclosure(ctxT(t), &irxv1.PreviewDisclosureRequest{PeerTeamId: "cert-b", Subject: &irxv1.PreviewDisclosureRequest_IncidentId{IncidentId: id}})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		previews = append(previews, resp)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(previews[0])
	for i, p := range previews[1:] {
		got, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p)
		if string(got) != string(want) {
			t.Errorf("node %d computes another view than node 0", i+1)
		}
	}
}
