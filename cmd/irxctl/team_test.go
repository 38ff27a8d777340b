package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestTeamDescriptionThroughIrxctl: A publishes the sample description
// with "team set", reads it back and re-applies its own "team get -o yaml"
// output; B, peered with A, renders A's description fetched over
// federation with the verified signer and A's pinned CA on top.
func TestTeamDescriptionThroughIrxctl(t *testing.T) {
	a := launchTeam(t, "cert-a")
	b := launchTeam(t, "cert-b")
	atA, atB := cliAt(t, a.APIAddr), cliAt(t, b.APIAddr)
	sample, err := filepath.Abs(filepath.Join("testdata", "team.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	mustFail(t, atA("", "team", "get"), 1, "irxctl: NotFound: ", "team set -f FILE")
	mustFail(t, atA("", "team", "set"), 2, "-f FILE is required")
	mustFail(t, atA("contact: {name: X, email_addresses: [{address: 'X <x@a.example>'}]}\n", "team", "set", "-f", "-"), 1,
		"irxctl: InvalidArgument: ", "description.contact.email_addresses[0].address")
	mustFail(t, atA("contact: {nme: X}\n", "team", "set", "-f", "-"), 1, "stdin: ", "nme")

	r := mustSucceed(t, atA("", "team", "set", "-f", sample))
	// TEAM VERSION UPDATED NAME
	if !regexp.MustCompile(`(?m)^cert-a\s+1\s+\S+\s+CERT-A: the A University`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "cert@example.org") {
		t.Errorf("team set:\n%s", r.stdout)
	}
	// "team get -o yaml" is what "team set" takes: edit and re-apply.
	r = mustSucceed(t, atA("", "team", "get", "-o", "yaml"))
	edited := strings.Replace(r.stdout, "Zoe Doe", "Zoe Doe-Smith", 1)
	if edited == r.stdout || !strings.Contains(r.stdout, "version: \"1\"") {
		t.Fatalf("team get -o yaml:\n%s", r.stdout)
	}
	mustFail(t, atA(edited, "team", "set", "-f", "-", "--expected-version", "7"), 1, "irxctl: Aborted: ")
	r = mustSucceed(t, atA(edited, "team", "set", "-f", "-", "--expected-version", "1", "-o", "json"))
	var d irxv1.TeamDescription
	if err := protojson.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("team set -o json: %v\n%s", err, r.stdout)
	}
	if d.GetVersion() != 2 || d.GetTeamId() != "cert-a" || d.GetContact().GetMembers()[0].GetName() != "Zoe Doe-Smith" {
		t.Errorf("after re-applying: %v", &d)
	}

	// A's own rendering: every section of the template, in order.
	r = mustSucceed(t, atA("", "team", "describe"))
	sections := []string{
		"1. Document Information", "1.1 Date of Last Update", "1.2 Distribution List for Notifications",
		"1.3 Locations where this Document May Be Found", "1.4 Authenticating this Document",
		"2. Contact Information", "2.1 Name of the Team", "2.2 Address", "2.3 Time Zone", "2.4 Telephone Number",
		"2.5 Facsimile Number", "2.6 Other Telecommunication", "2.7 Electronic Mail Address",
		"2.8 Public Keys and Encryption Information", "2.9 Team Members", "2.10 Other Information",
		"2.11 Points of Customer Contact", "3. Charter", "3.1 Mission Statement", "3.2 Constituency",
		"3.3 Sponsorship and/or Affiliation", "3.4 Authority", "4. Policies",
		"4.1 Types of Incidents and Level of Support", "4.2 Co-operation, Interaction and Disclosure of Information",
		"4.3 Communication and Authentication", "5. Services", "5.1 Incident Response", "5.1.1 Incident Triage",
		"5.1.2 Incident Coordination", "5.1.3 Incident Resolution", "5.2 Proactive Activities",
		"6. Incident Reporting Forms", "7. Disclaimers",
	}
	inOrder := func(out string) {
		t.Helper()
		at := 0
		for _, s := range sections {
			i := strings.Index(out[at:], "\n"+s+"\n")
			if i < 0 {
				t.Fatalf("no section %q (in order) in:\n%s", s, out)
			}
			at += i + 1
		}
	}
	inOrder(r.stdout)
	for _, want := range []string{"This is version 2 of the description of team cert-a", "Zoe Doe-Smith, coordinator", "+34 912 345 678", "AS64500"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("team describe lacks %q:\n%s", want, r.stdout)
		}
	}

	// B fetches A's: only once it can reach A as a peer.
	mustFail(t, atB("", "team", "describe", "--peer", "cert-a"), 1, "irxctl: NotFound: ")
	caFile := func(n string) string { return filepath.Join(n, "pki", pki.DevCACertFile) }
	mustSucceed(t, atA("", "peer", "create", "--team", "cert-b", "--peer-ca-file", caFile(b.DataDir)))
	mustSucceed(t, atB("", "peer", "create", "--team", "cert-a", "--peer-ca-file", caFile(a.DataDir), "--endpoint", a.FedAddr))
	caPEM, err := os.ReadFile(caFile(a.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	r = within(t, 30*time.Second, "B renders A's description", func() result { return atB("", "team", "describe", "--peer", "cert-a") },
		func(r result) bool { return r.code == 0 })
	first, _, _ := strings.Cut(strings.SplitN(r.stdout, "\n", 4)[3], "\n")
	if want := "signature verified: signed by irx://cert-a/node/node1, chain to pinned CA " + pki.Fingerprint(caCert); first != want {
		t.Errorf("first line after the title %q, want %q\n%s", first, want, r.stdout)
	}
	inOrder(r.stdout)
	if !strings.Contains(r.stdout, "This is version 2 of the description of team cert-a") || !strings.Contains(r.stdout, "Zoe Doe-Smith") {
		t.Errorf("B's rendering of A's description:\n%s", r.stdout)
	}
	r = mustSucceed(t, atB("", "team", "describe", "--peer", "cert-a", "-o", "json"))
	var resp irxv1.GetPeerTeamDescriptionResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("describe --peer -o json: %v\n%s", err, r.stdout)
	}
	if resp.GetVerification().GetSigner() != "irx://cert-a/node/node1" || len(resp.GetSignedDescription().GetSignature()) == 0 ||
		resp.GetDescription().GetVersion() != 2 {
		t.Errorf("describe --peer -o json: %v", &resp)
	}
	// B has published nothing, and A cannot reach B (no endpoints).
	mustFail(t, atB("", "team", "describe"), 1, "irxctl: NotFound: ")
	mustFail(t, atA("", "team", "describe", "--peer", "cert-b"), 1, "irxctl: FailedPrecondition: ", "no endpoints")
}
