package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/atrest"
	"github.com/irxfed/irx/test/irxdtest"
)

// taggedCanaryRecord is a shareable record with canaries starting with tag in
// fields the sharing policy forwards: private site (description,
// assistance requested) and intruder (attacking host, indicator). The
// victim's host names need the reporter's consent, which sample does not
// give.
func taggedCanaryRecord(n int, tag string) (*irxv1.Incident, []string) {
	inc := shareable(n, irxv1.Tlp_TLP_GREEN)
	c := func(what string) string { return tag + "-" + what }
	inc.Descriptions = []*irxv1.Description{{Lang: "en", Text: "Beaconing reported by " + c("description")}}
	inc.AttackingHosts = []*irxv1.Host{{Hostname: strings.ToLower(c("attacker")) + ".example.net", Addresses: []string{"198.51.100.7"}}}
	inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: strings.ToLower(c("c2")) + ".example"}}
	inc.AssistanceRequested = "Please block " + c("assistance")
	return inc, []string{c("description"), strings.ToLower(c("attacker")), strings.ToLower(c("c2")), c("assistance")}
}

func randomTag(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// startTeamWithMetrics is startTeam with each node serving its metrics,
// at the addresses it returns.
func startTeamWithMetrics(t *testing.T, id string, size int, extra ...string) (*team, []string) {
	t.Helper()
	addrs := make([]string, size)
	for i := range addrs {
		addr, err := irxdtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = addr
	}
	tm := startTeamWith(t, id, size, func(i int, n *irxdtest.Node) { n.Args = append(n.Args, "--metrics-addr", addrs[i]) }, extra...)
	return tm, addrs
}

// scanTeam scans every node's data directory of tm for needles and returns
// the findings by node.
func scanTeam(tm *team, needles []string) (map[int][]atrest.Finding, error) {
	out := map[int][]atrest.Finding{}
	for i, n := range tm.nodes {
		found, err := atrest.Scan(n.DataDir, needles...)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		if len(found) > 0 {
			out[i] = found
		}
	}
	return out, nil
}

// TestWithdrawnRecordErasedAtRestOnEveryNode: team A shares a record full
// of canaries with team B, three nodes erasing within 2s, and withdraws
// it; once each B node has made its erasure pass, no file of any B node's
// data directory holds a canary any more: not the Raft log, not a
// snapshot, not the state machine, leader and followers alike. Before the
// withdrawal every B node's files hold every canary, and a record A did
// not withdraw keeps its values, so the scans can fail.
func TestWithdrawnRecordErasedAtRestOnEveryNode(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b, metrics := startTeamWithMetrics(t, "cert-b", 3, "--erase-within", "2s")
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1))

	goneRecord, goneCanaries := taggedCanaryRecord(1, randomTag(t, "GONE"))
	keptRecord, keptCanaries := taggedCanaryRecord(2, randomTag(t, "KEEP"))
	withdrawn := create(t, a.clients[0], goneRecord)
	create(t, a.clients[0], keptRecord)

	within := 60 * time.Second
	eventually(t, within, "every B node's files hold every canary", func() error {
		found, err := scanTeam(b, append(goneCanaries, keptCanaries...))
		if err != nil {
			return err
		}
		for i := range b.nodes {
			seen := map[string]bool{}
			for _, f := range found[i] {
				seen[f.Needle] = true
			}
			for _, c := range append(goneCanaries, keptCanaries...) {
				if !seen[c] {
					return fmt.Errorf("no file of node %d holds %s", i+1, c)
				}
			}
		}
		return nil
	})
	for i, c := range b.clients {
		eventually(t, within, fmt.Sprintf("B node %d serves the record", i+1), hasVersion(c, withdrawn.GetId(), 1))
	}

	if _, err := a.clients[0].incidents.WithdrawIncident(ctxT(t), &irxv1.WithdrawIncidentRequest{Id: withdrawn.GetId(), Reason: "reported in error"}); err != nil {
		t.Fatal(err)
	}
	for i, c := range b.clients {
		eventually(t, within, fmt.Sprintf("B node %d deleted the withdrawn record", i+1), gone(c, withdrawn.GetId()))
	}
	// Once every node has made its pass, the values are gone from its
	// files: not later, when pebble's own compactions might have dropped
	// them.
	start := time.Now()
	for i, addr := range metrics {
		eventually(t, within, fmt.Sprintf("B node %d made an erasure pass", i+1), func() error {
			body := scrape(t, addr)
			if !strings.Contains(body, "\nirx_erasure_pending 0\n") || strings.Contains(body, "\nirx_erasure_passes_total 0\n") {
				return fmt.Errorf("no pass yet")
			}
			return nil
		})
	}
	t.Logf("every B node made its pass %v after the last one deleted the record", time.Since(start).Round(time.Millisecond))
	if found, err := scanTeam(b, goneCanaries); err != nil || len(found) > 0 {
		t.Fatalf("withdrawn values still readable after the passes (%v): %v", err, found)
	}
	found, err := scanTeam(b, keptCanaries)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.nodes {
		if len(found[i]) == 0 {
			t.Errorf("node %d: the record A did not withdraw is in no file", i+1)
		}
	}
	// The team still works on what the erasure left.
	create(t, a.clients[0], shareable(3, irxv1.Tlp_TLP_GREEN))
	for i, c := range b.clients {
		eventually(t, within, fmt.Sprintf("B node %d receives after the erasure", i+1), hasVersion(c, "cert-a:3", 1))
	}

	// A narrower policy replaces the views B holds: what it takes back (the
	// private site information: the description, the assistance asked for)
	// leaves B's files too, and what it still gives (the attacker) stays.
	passes := make([]float64, len(metrics))
	for i, addr := range metrics {
		passes[i] = metricValue(t, scrape(t, addr), "irx_erasure_passes_total")
	}
	narrower := sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1)
	narrower.Rules = slices.DeleteFunc(narrower.Rules, func(r *irxv1.ClassRule) bool { return r.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE })
	a.setPolicy(t, narrower)
	caughtUp(t, a, "cert-b", 2)
	for i, addr := range metrics {
		eventually(t, within, fmt.Sprintf("B node %d made an erasure pass for the replacements", i+1), func() error {
			body := scrape(t, addr)
			if !strings.Contains(body, "\nirx_erasure_pending 0\n") || metricValue(t, body, "irx_erasure_passes_total") <= passes[i] {
				return fmt.Errorf("no pass yet")
			}
			return nil
		})
	}
	takenBack := []string{keptCanaries[0], keptCanaries[3]}
	if found, err := scanTeam(b, takenBack); err != nil || len(found) > 0 {
		t.Fatalf("values a replacement took back still readable after the passes (%v): %v", err, found)
	}
	found, err = scanTeam(b, keptCanaries[1:3])
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.nodes {
		if len(found[i]) == 0 {
			t.Errorf("node %d: the values the narrower policy still gives are in no file", i+1)
		}
	}
}

// metricValue reads an unlabelled series' value from a metrics page.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}
