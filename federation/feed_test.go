package federation

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// team applies commands to a real state machine of team cert-a, as Raft
// would.
type teamState struct {
	t     *rapid.T
	st    *fsm.FSM
	index uint64
	clock time.Time
}

func (s *teamState) apply(cmd *irxv1.Command) *fsm.Result {
	s.index++
	s.clock = s.clock.Add(time.Second)
	cmd.ProposeTime = timestamppb.New(s.clock)
	data, err := proto.Marshal(cmd)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.st.Apply(&raft.Log{Index: s.index, Type: raft.LogCommand, Data: data}).(*fsm.Result)
}

var tlps = []irxv1.Tlp{irxv1.Tlp_TLP_CLEAR, irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_AMBER, irxv1.Tlp_TLP_AMBER_STRICT, irxv1.Tlp_TLP_RED}

// TestFeedWalkProperties drives a team through random creates, TLP
// changes, withdrawals and policy changes for peer cert-b, walks its feed
// as Subscribe does, and checks the decisions that could leak: every view
// sent is what the policy in force discloses, and when the walk ends the
// peer holds only records the latest policy still discloses, each at the
// version it was last sent (withdrawals took back everything else).
func TestFeedWalkProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		st, err := fsm.Open(filepath.Join(t.TempDir(), fmt.Sprintf("s%d", time.Now().UnixNano())), "cert-a", slog.New(slog.DiscardHandler))
		if err != nil {
			rt.Fatal(err)
		}
		defer st.Close()
		s := &teamState{t: rt, st: st, clock: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
		secret := bytes.Repeat([]byte{7}, fsm.TeamSecretLength)
		setPolicy := func(ceiling irxv1.Tlp) {
			res := s.apply(&irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: &irxv1.SetPolicyCommand{TeamSecret: secret, Policy: &irxv1.DisclosurePolicy{
				PeerTeamId: "cert-b", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM, TlpCeiling: ceiling,
				Rules: []*irxv1.ClassRule{
					{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD},
					{InfoClass: irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE},
				},
			}}}})
			if res.Err != nil {
				rt.Fatal(res.Err)
			}
		}
		setPolicy(rapid.SampledFrom(tlps[:3]).Draw(rt, "first ceiling"))
		var ids []string
		for range rapid.IntRange(1, 40).Draw(rt, "ops") {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 5 || len(ids) == 0:
				res := s.apply(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{Incident: &irxv1.Incident{
					Tlp:            rapid.SampledFrom(tlps).Draw(rt, "tlp"),
					Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
					Taxonomy:       &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
					AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}},
					VictimHosts:    []*irxv1.Host{{Hostname: "ws1.example.org"}},
				}}}})
				if res.Err != nil {
					rt.Fatal(res.Err)
				}
				ids = append(ids, res.Incident.GetId())
			case op < 7:
				s.apply(&irxv1.Command{Kind: &irxv1.Command_UpdateIncident{UpdateIncident: &irxv1.UpdateIncidentCommand{
					Incident:   &irxv1.Incident{Id: rapid.SampledFrom(ids).Draw(rt, "id"), Tlp: rapid.SampledFrom(tlps).Draw(rt, "new tlp")},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tlp"}},
				}}})
			case op < 8:
				s.apply(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: rapid.SampledFrom(ids).Draw(rt, "withdraw")}}})
			default:
				setPolicy(rapid.SampledFrom(tlps[:3]).Draw(rt, "ceiling"))
			}
		}

		f := &Federation{state: st, team: "cert-a", policies: &policy.Cache{}}
		compiled, err := f.policy("cert-b", 1)
		if err != nil {
			rt.Fatal(err)
		}
		w := newWalker(f, "cert-b", compiled)
		held := map[string]int64{}
		entries, err := st.FeedEntries(0, 10000)
		if err != nil {
			rt.Fatal(err)
		}
		for _, e := range entries {
			if err := w.begin(); err != nil {
				rt.Fatal(err)
			}
			outs, err := w.entry(e)
			w.end()
			if err != nil {
				rt.Fatal(err)
			}
			for _, o := range outs {
				switch k := o.item.GetKind().(type) {
				case *irxv1.FeedItem_Incident:
					v := k.Incident
					p, err := st.Policy("cert-b", w.version)
					if err != nil {
						rt.Fatal(err)
					}
					if v.GetTlp() > p.GetTlpCeiling() || v.GetWithdrawTime() != nil {
						rt.Fatalf("sent %s v%d (%v, withdrawn %v) under a policy with ceiling %v", v.GetId(), v.GetVersion(), v.GetTlp(), v.GetWithdrawTime() != nil, p.GetTlpCeiling())
					}
					if len(v.GetVictimHosts()) > 0 && v.GetVictimHosts()[0].GetHostname() == "ws1.example.org" {
						rt.Fatalf("sent a private-site value in clear: %v", v.GetVictimHosts())
					}
					held[v.GetId()] = v.GetVersion()
				case *irxv1.FeedItem_Withdrawal:
					if _, ok := held[k.Withdrawal.GetIncidentId()]; !ok {
						rt.Fatalf("withdrawal of %s, which the peer never received", k.Withdrawal.GetIncidentId())
					}
					delete(held, k.Withdrawal.GetIncidentId())
				}
			}
		}
		latest, err := f.policy("cert-b", 0)
		if err != nil {
			rt.Fatal(err)
		}
		for id, version := range held {
			inc, err := st.Get(id, 0)
			if err != nil {
				rt.Fatal(err)
			}
			if view, _ := policy.Disclose(inc, latest); view == nil {
				rt.Fatalf("the peer still holds %s (v%d), which policy %d withholds: %v, withdrawn %v", id, version, latest.Version(), inc.GetTlp(), inc.GetWithdrawTime() != nil)
			}
			if inc.GetVersion() != version {
				rt.Fatalf("the peer holds %s at v%d, latest is v%d and disclosable", id, version, inc.GetVersion())
			}
		}
	})
}
