package fsm

import (
	"bytes"
	"errors"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

func testPolicy(peer string) *irxv1.DisclosurePolicy {
	return &irxv1.DisclosurePolicy{
		PeerTeamId:     peer,
		RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling:     irxv1.Tlp_TLP_GREEN,
		Rules:          []*irxv1.ClassRule{{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD}},
	}
}

func setPolicyLog(h *harness, p *irxv1.DisclosurePolicy, secret []byte) *Result {
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: &irxv1.SetPolicyCommand{Policy: p, TeamSecret: secret}}}))
}

func TestSetPolicyNumbersVersionsAndKeepsFirstSecret(t *testing.T) {
	h := newHarness(t)
	first := bytes.Repeat([]byte{1}, TeamSecretLength)
	if res := setPolicyLog(h, testPolicy("cert-b"), nil); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("first policy without a secret: %v", res.Err)
	}
	if _, err := h.f.PseudonymKey("cert-b"); !errors.Is(err, ErrNoTeamSecret) {
		t.Fatalf("key before any secret: %v", err)
	}
	r1 := setPolicyLog(h, testPolicy("cert-b"), first)
	if r1.Err != nil || r1.Policy.GetVersion() != 1 || r1.Policy.GetCreateTime() == nil {
		t.Fatalf("v1: %v", r1)
	}
	keyB, err := h.f.PseudonymKey("cert-b")
	if err != nil {
		t.Fatal(err)
	}
	// A racing proposer's secret is ignored: the first applied stays.
	r2 := setPolicyLog(h, testPolicy("cert-b"), bytes.Repeat([]byte{2}, TeamSecretLength))
	if r2.Err != nil || r2.Policy.GetVersion() != 2 {
		t.Fatalf("v2: %v", r2)
	}
	if again, _ := h.f.PseudonymKey("cert-b"); !bytes.Equal(again, keyB) {
		t.Fatal("the team secret changed")
	}
	if keyC, _ := h.f.PseudonymKey("cert-c"); bytes.Equal(keyC, keyB) || bytes.Contains(keyB, first) {
		t.Fatal("per-peer keys are not distinct derivations")
	}

	bad := testPolicy("cert-b")
	bad.TlpCeiling = 0
	res := setPolicyLog(h, bad, nil)
	var perr *record.ValidationError
	if !errors.As(res.Err, &perr) {
		t.Fatalf("invalid policy: %v", res.Err)
	}
	got, err := h.f.Policy("cert-b", 0)
	if err != nil || got.GetVersion() != 2 {
		t.Fatalf("latest after a refused version: %v, %v", got, err)
	}
	if v1, err := h.f.Policy("cert-b", 1); err != nil || v1.GetTlpCeiling() != irxv1.Tlp_TLP_GREEN {
		t.Fatalf("version 1: %v, %v", v1, err)
	}
	if _, err := h.f.Policy("cert-b", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("version 3: %v", err)
	}
	versions, next, err := h.f.PolicyVersions("cert-b", 1, "")
	if err != nil || len(versions) != 1 || next == "" {
		t.Fatalf("page 1: %v %q %v", versions, next, err)
	}
	versions, next, err = h.f.PolicyVersions("cert-b", 1, next)
	if err != nil || len(versions) != 1 || versions[0].GetVersion() != 2 || next != "" {
		t.Fatalf("page 2: %v %q %v", versions, next, err)
	}
	setPolicyLog(h, testPolicy("cert-a"), nil)
	all, _, err := h.f.Policies(0, "")
	if err != nil || len(all) != 2 || all[0].GetPeerTeamId() != "cert-a" || all[1].GetVersion() != 2 {
		t.Fatalf("latest per peer: %v, %v", all, err)
	}
}

func TestLeaderNoopChangesNothingButTheIndex(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	before := contentDigest(t, h.f)
	res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}))
	if res.Err != nil || res.Incident != nil {
		t.Fatalf("noop: %v", res)
	}
	if contentDigest(t, h.f) != before {
		t.Fatal("a no-op changed the state")
	}
}
