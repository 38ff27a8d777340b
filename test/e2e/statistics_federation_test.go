package e2e

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestFederationStatistics: cert-a follows cert-b and cert-c. cert-b's
// policy for cert-a discloses only the statistical class, under a TLP
// ceiling its records exceed: cert-a receives none of its records but its
// statistics. cert-c's policy for cert-a discloses its records without the
// statistical class: cert-a receives its records but no statistics. The
// federation scope at cert-a is cert-a's own counts plus cert-b's shared
// ones, labelled by team, and their total.
func TestFederationStatistics(t *testing.T) {
	a := startTeam(t, "cert-a", 1, "--statistics-interval", "200ms")
	b := startTeam(t, "cert-b", 1, "--statistics-interval", "200ms")
	c := startTeam(t, "cert-c", 1, "--statistics-interval", "200ms")
	a.peerWith(t, b, true)
	a.peerWith(t, c, true)
	b.peerWith(t, a, false)
	c.peerWith(t, a, false)

	statsOnly := &irxv1.DisclosurePolicy{
		PeerTeamId: "cert-a", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling: irxv1.Tlp_TLP_CLEAR,
		Rules:      []*irxv1.ClassRule{{InfoClass: irxv1.InfoClass_INFO_CLASS_STATISTICAL, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD}},
	}
	b.setPolicy(t, statsOnly)
	noStats := sharePolicy("cert-a", irxv1.Tlp_TLP_AMBER, 1)
	for i, r := range noStats.Rules {
		if r.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_STATISTICAL {
			noStats.Rules[i].Action = irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP
		}
	}
	c.setPolicy(t, noStats)

	for i := range 2 {
		create(t, a.clients[0], shareable(i, irxv1.Tlp_TLP_AMBER))
	}
	for i := range 3 {
		inc := shareable(10+i, irxv1.Tlp_TLP_AMBER)
		inc.Taxonomy = &irxv1.Taxonomy{Class: "fraud", Type: "phishing"}
		create(t, b.clients[0], inc)
	}
	for i := range 2 {
		create(t, c.clients[0], shareable(20+i, irxv1.Tlp_TLP_AMBER))
	}

	today := time.Now().UTC().Truncate(24 * time.Hour)
	req := &irxv1.GetStatisticsRequest{
		Scope: irxv1.StatisticsScope_STATISTICS_SCOPE_FEDERATION, Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH,
		GroupBy:   []irxv1.StatisticsDimension{irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_CLASS},
		StartTime: timestamppb.New(today.AddDate(0, 0, -40)), EndTime: timestamppb.New(today.AddDate(0, 0, 1)),
	}
	stats := dialStats(t, a.nodes[0]).stats
	total := func(rows []*irxv1.StatisticsRow) map[string]int64 {
		out := map[string]int64{}
		for _, r := range rows {
			out[r.GetTaxonomyClass()] += r.GetCount()
		}
		return out
	}
	var resp *irxv1.GetStatisticsResponse
	eventually(t, 60*time.Second, "cert-b's statistics at cert-a", func() error {
		var err error
		if resp, err = stats.GetStatistics(ctxT(t), req); err != nil {
			return err
		}
		if len(resp.GetTeams()) < 2 {
			return fmt.Errorf("teams %v", resp.GetTeams())
		}
		if got := total(resp.GetTeams()[1].GetRows()); got["fraud"] != 3 {
			return fmt.Errorf("cert-b's rows %v", resp.GetTeams()[1].GetRows())
		}
		return nil
	})
	if got := total(resp.GetRows()); got["malicious-code"] != 2 || got["fraud"] != 3 || len(got) != 2 {
		t.Fatalf("federation total %v, want 2 malicious-code (cert-a) and 3 fraud (cert-b)", got)
	}
	if ts := resp.GetTeams(); len(ts) != 2 || ts[0].GetTeamId() != "cert-a" || ts[1].GetTeamId() != "cert-b" || ts[1].GetAsOfTime() == nil ||
		total(ts[0].GetRows())["malicious-code"] != 2 {
		t.Fatalf("teams %v: want cert-a's own, then cert-b's with its as-of time", ts)
	}
	// cert-a received none of cert-b's records: its policy withholds them.
	if l, err := a.clients[0].incidents.ListIncidents(ctxT(t), &irxv1.ListIncidentsRequest{OriginTeam: "cert-b"}); err != nil || len(l.GetIncidents()) != 0 {
		t.Fatalf("cert-b's records at cert-a: %v, %v", l.GetIncidents(), err)
	}

	// cert-c's statistics entries are in its feed, and cert-a pulled past
	// them (it holds cert-c's records), yet holds none of its statistics.
	var head uint64
	eventually(t, 30*time.Second, "cert-c to publish its statistics", func() error {
		st := clusterStatus(t, c.clients[0])
		head = st.GetFeedSequence()
		if head < 3 { // two records and one statistics entry at least
			return fmt.Errorf("feed at %d", head)
		}
		return nil
	})
	eventually(t, 60*time.Second, "cert-a to pull cert-c's feed past its statistics", func() error {
		p, err := a.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-c"})
		if err != nil {
			return err
		}
		if p.GetPeer().GetStatus().GetInboundCursor() < head {
			return fmt.Errorf("cursor %d of %d", p.GetPeer().GetStatus().GetInboundCursor(), head)
		}
		l, err := a.clients[0].incidents.ListIncidents(ctxT(t), &irxv1.ListIncidentsRequest{OriginTeam: "cert-c"})
		if err != nil || len(l.GetIncidents()) != 2 {
			return errors.Join(err, fmt.Errorf("cert-c's records at cert-a: %d", len(l.GetIncidents())))
		}
		return nil
	})
	resp, err := stats.GetStatistics(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range resp.GetTeams() {
		if ts.GetTeamId() == "cert-c" {
			t.Fatalf("cert-c's statistics arrived at cert-a although its policy strips the statistical class: %v", ts)
		}
	}
	// The own scope counts what cert-a holds: its own and cert-c's records.
	own := &irxv1.GetStatisticsRequest{Period: req.GetPeriod(), StartTime: req.GetStartTime(), EndTime: req.GetEndTime(),
		GroupBy: []irxv1.StatisticsDimension{irxv1.StatisticsDimension_STATISTICS_DIMENSION_ORIGIN_TEAM}}
	ownResp, err := stats.GetStatistics(ctxT(t), own)
	if err != nil {
		t.Fatal(err)
	}
	byTeam := map[string]int64{}
	for _, r := range ownResp.GetRows() {
		byTeam[r.GetOriginTeam()] += r.GetCount()
	}
	if byTeam["cert-a"] != 2 || byTeam["cert-c"] != 2 || len(byTeam) != 2 {
		t.Fatalf("own scope by origin %v, want cert-a 2 and cert-c 2", byTeam)
	}
}
