package federation

import (
	"bytes"
	"errors"
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
	"github.com/irxfed/irx/policy/policytest"
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

// walkModel is team cert-a, whose feed a walker serves to cert-b as a
// stream would, and team cert-b's real state machine applying what it is
// sent, as its puller would.
type walkModel struct {
	t       *rapid.T
	a, b    *teamState
	f       *Federation
	w       *feedWalker
	cursor  uint64               // how far the stream walked (and cert-b applied)
	acked   uint64               // what cert-a committed as acknowledged
	pending []*irxv1.LedgerEntry // sent since acked
	bound   stretch
}

// step walks the stream to cert-a's head and has cert-b apply what it was
// sent.
func (m *walkModel) step() {
	for m.cursor < m.a.st.FeedSequence() {
		var items []*irxv1.FeedItem
		from := m.cursor
		last, err := m.w.walk(m.cursor, 7, func(_ *irxv1.FeedEntry, outs []outcome, _ uint64) bool {
			for _, o := range outs {
				items = append(items, o.item)
				m.pending = append(m.pending, o.ledger)
			}
			return true
		})
		if err != nil {
			m.t.Fatal(err)
		}
		m.cursor = last
		res := m.b.apply(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
			PeerTeamId: "cert-a", FromCursor: from, Cursor: last, PolicyVersion: m.w.version, Items: items, Head: last,
		}}})
		if res.Err != nil {
			m.t.Fatalf("cert-b applying (%d, %d]: %v", from, last, res.Err)
		}
	}
}

// reconnect commits cert-b's acknowledgement of everything it applied and
// starts a new stream, which knows what cert-b holds only from what cert-a
// committed.
func (m *walkModel) reconnect() {
	if m.cursor > m.acked {
		res := m.a.apply(&irxv1.Command{Kind: &irxv1.Command_AcknowledgePeer{AcknowledgePeer: &irxv1.AcknowledgePeerCommand{
			PeerTeamId: "cert-b", FromCursor: m.acked, Cursor: m.cursor, PolicyVersion: m.w.version, Entries: m.pending,
		}}})
		if res.Err != nil {
			m.t.Fatalf("acknowledge (%d, %d]: %v", m.acked, m.cursor, res.Err)
		}
		m.acked, m.pending = m.cursor, nil
	}
	compiled, err := m.f.policy("cert-b", 0)
	if err != nil {
		m.t.Fatal(err)
	}
	m.w = newWalker(m.f, "cert-b", compiled)
}

// TestFeedWalkProperties drives team cert-a through random creates, TLP,
// consent and part-restriction changes, withdrawals and policy changes for
// peer cert-b (each redisclosed in stretches, as the leader does), serves
// cert-b the feed as Subscribe does, with reconnections, and has cert-b's
// real state machine apply it. Nothing cert-b is sent may be refused, and
// at the end every version cert-b holds is the view the latest policy
// allows of it under the markings of the latest version cert-b holds,
// which is the record's latest, as the engine and the reference engine
// (policy/policytest) compute it: whatever was narrowed at any point —
// a class stripped, a TLP raised past the ceiling, consent taken back, a
// contact marked private — is in none of cert-b's copies.
func TestFeedWalkProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		open := func(team string) *teamState {
			st, err := fsm.Open(filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d", team, time.Now().UnixNano())), team, slog.New(slog.DiscardHandler))
			if err != nil {
				rt.Fatal(err)
			}
			return &teamState{t: rt, st: st, clock: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
		}
		a, b := open("cert-a"), open("cert-b")
		defer a.st.Close()
		defer b.st.Close()
		if res := b.apply(&irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{Create: true, Peer: &irxv1.Peer{TeamId: "cert-a", CaCertificatePem: "pinned"}}}}); res.Err != nil {
			rt.Fatal(res.Err)
		}
		m := &walkModel{t: rt, a: a, b: b, f: &Federation{state: fsmState{a.st}, team: "cert-a", policies: &policy.Cache{}},
			bound: stretch{rapid.IntRange(1, 3).Draw(rt, "stretch incidents"), rapid.IntRange(1, 6).Draw(rt, "stretch versions"), 1 << 20}}
		secret := bytes.Repeat([]byte{7}, fsm.TeamSecretLength)
		actions := []irxv1.DisclosureAction{irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD, irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP, irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE}
		setPolicy := func() {
			p := &irxv1.DisclosurePolicy{
				PeerTeamId: "cert-b", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
				TlpCeiling: rapid.SampledFrom(tlps[:4]).Draw(rt, "ceiling"),
				Rules: []*irxv1.ClassRule{
					{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD},
					{InfoClass: irxv1.InfoClass_INFO_CLASS_STATISTICAL, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD},
				},
			}
			for _, class := range []irxv1.InfoClass{irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE, irxv1.InfoClass_INFO_CLASS_CONTACT, irxv1.InfoClass_INFO_CLASS_PRIVATE_USER} {
				p.Rules = append(p.Rules, &irxv1.ClassRule{InfoClass: class, Action: rapid.SampledFrom(actions).Draw(rt, class.String())})
			}
			if res := a.apply(&irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: &irxv1.SetPolicyCommand{TeamSecret: secret, Policy: p}}}); res.Err != nil {
				rt.Fatal(res.Err)
			}
			rediscloseAll(rt, a.st, a.apply, m.bound)
		}
		setPolicy()
		m.reconnect()
		var ids []string
		update := func(id string, inc *irxv1.Incident, paths ...string) {
			inc.Id = id
			res := a.apply(&irxv1.Command{Kind: &irxv1.Command_UpdateIncident{UpdateIncident: &irxv1.UpdateIncidentCommand{
				Incident: inc, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
			}}})
			if res.Err != nil && !errors.Is(res.Err, fsm.ErrWithdrawn) {
				rt.Fatal(res.Err)
			}
		}
		for range rapid.IntRange(1, 30).Draw(rt, "ops") {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 3 || len(ids) == 0:
				n := len(ids) + 1
				res := a.apply(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{Incident: &irxv1.Incident{
					Tlp:            rapid.SampledFrom(tlps).Draw(rt, "tlp"),
					Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
					Taxonomy:       &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
					AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}},
					VictimHosts:    []*irxv1.Host{{Hostname: fmt.Sprintf("canary-victim-%d.example", n)}},
					Contacts:       []*irxv1.Contact{{Name: fmt.Sprintf("canary-contact-%d", n), HomeTelephone: fmt.Sprintf("+1 555 01%02d", n)}},
					Descriptions:   []*irxv1.Description{{Lang: "en", Text: fmt.Sprintf("canary-description-%d", n)}},
					DisclosureConsent: &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{
						Domain: rapid.Bool().Draw(rt, "consent domain"), Hosts: true, Contact: rapid.Bool().Draw(rt, "consent contact"),
					}},
				}}}})
				if res.Err != nil {
					rt.Fatal(res.Err)
				}
				ids = append(ids, res.Incident.GetId())
			case op < 4:
				update(rapid.SampledFrom(ids).Draw(rt, "id"), &irxv1.Incident{Tlp: rapid.SampledFrom(tlps).Draw(rt, "new tlp")}, "tlp")
			case op < 5:
				id := rapid.SampledFrom(ids).Draw(rt, "id")
				cur, err := a.st.Get(id, 0)
				if err != nil {
					rt.Fatal(err)
				}
				contacts := proto.CloneOf(cur).GetContacts()
				for _, c := range contacts {
					c.Restriction = rapid.SampledFrom([]irxv1.Restriction{0, irxv1.Restriction_RESTRICTION_PRIVATE, irxv1.Restriction_RESTRICTION_PARTNER}).Draw(rt, "contact restriction")
				}
				update(id, &irxv1.Incident{Contacts: contacts}, "contacts")
			case op < 6:
				update(rapid.SampledFrom(ids).Draw(rt, "id"), &irxv1.Incident{DisclosureConsent: &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{
					Domain: rapid.Bool().Draw(rt, "new consent domain"), Hosts: true, Contact: rapid.Bool().Draw(rt, "new consent contact"),
				}}}, "disclosure_consent")
			case op < 7:
				a.apply(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: rapid.SampledFrom(ids).Draw(rt, "withdraw"), Reason: "reported in error"}}})
			case op < 9:
				setPolicy()
			default:
				m.reconnect()
			}
			if rapid.IntRange(0, 2).Draw(rt, "follow") > 0 {
				m.step()
			}
		}
		m.step()
		m.check(ids)
	})
}

// check compares every version cert-b holds with what the latest policy
// allows, and looks for the canaries the latest terms take back.
func (m *walkModel) check(ids []string) {
	rt := m.t
	if st, err := m.b.st.PeerState("cert-a"); err != nil || st.GetRejected() != 0 {
		rt.Fatalf("cert-b refused items of cert-a's feed: %v, %v", st, err)
	}
	latestPolicy, err := m.f.policy("cert-b", 0)
	if err != nil {
		rt.Fatal(err)
	}
	p := latestPolicy.Policy()
	key, err := m.a.st.PseudonymKey("cert-b")
	if err != nil {
		rt.Fatal(err)
	}
	action := func(class irxv1.InfoClass) irxv1.DisclosureAction {
		for _, r := range p.GetRules() {
			if r.GetInfoClass() == class {
				return r.GetAction()
			}
		}
		return irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP
	}
	for i, id := range ids {
		n := i + 1
		latest, err := m.a.st.Get(id, 0)
		if err != nil {
			rt.Fatal(err)
		}
		versions, _, err := m.b.st.Versions(id, 1000, "")
		if errors.Is(err, fsm.ErrNotFound) {
			continue
		}
		if err != nil {
			rt.Fatal(err)
		}
		var held []*irxv1.Incident
		for _, v := range versions {
			if v.GetWithdrawTime() == nil {
				held = append(held, v)
			}
		}
		if len(held) == 0 {
			continue
		}
		top := held[len(held)-1]
		if top.GetVersion() != latest.GetVersion() {
			rt.Fatalf("cert-b holds %s up to v%d; the latest is v%d", id, top.GetVersion(), latest.GetVersion())
		}
		if latest.GetWithdrawTime() != nil || latest.GetTlp() > p.GetTlpCeiling() {
			rt.Fatalf("cert-b holds %s, which is withdrawn (%v) or above the ceiling (%v > %v)", id, latest.GetWithdrawTime() != nil, latest.GetTlp(), p.GetTlpCeiling())
		}
		var gone []string // canaries the latest terms take back
		// The contact goes whole (its nested home telephone with it) when
		// its class is stripped, consent to give it is taken back or it is
		// marked private; pseudonymised, its name goes and the telephone,
		// of its own class, follows that class.
		contactRemoved := action(irxv1.InfoClass_INFO_CLASS_CONTACT) == irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP ||
			!latest.GetDisclosureConsent().GetResponseTeams().GetContact() ||
			latest.GetContacts()[0].GetRestriction() == irxv1.Restriction_RESTRICTION_PRIVATE
		if contactRemoved || action(irxv1.InfoClass_INFO_CLASS_CONTACT) != irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD {
			gone = append(gone, fmt.Sprintf("canary-contact-%d", n))
		}
		if contactRemoved || action(irxv1.InfoClass_INFO_CLASS_PRIVATE_USER) != irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD {
			gone = append(gone, fmt.Sprintf("+1 555 01%02d", n))
		}
		if action(irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE) != irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD {
			gone = append(gone, fmt.Sprintf("canary-victim-%d.example", n), fmt.Sprintf("canary-description-%d", n))
		}
		if !latest.GetDisclosureConsent().GetResponseTeams().GetDomain() {
			gone = append(gone, fmt.Sprintf("canary-victim-%d.example", n))
		}
		for _, h := range held {
			inc, err := m.a.st.Get(id, h.GetVersion())
			if err != nil {
				rt.Fatal(err)
			}
			want, _ := m.f.disclose(inc, latest, latestPolicy)
			if want == nil {
				rt.Fatalf("cert-b holds %s v%d, which the latest terms withhold", id, h.GetVersion())
			}
			// The slow, obviously correct engine says the same, but for the
			// provenance, which federation sets.
			ref, _ := policytest.Disclose(policy.Narrowed(inc, latest), p, key)
			if ref == nil {
				rt.Fatalf("the reference engine withholds %s v%d, which cert-b holds", id, h.GetVersion())
			}
			got := proto.CloneOf(h)
			got.Provenance, ref.Provenance = nil, nil
			if a, b := marshalDeterministic(rt, got), marshalDeterministic(rt, ref); !bytes.Equal(a, b) {
				rt.Fatalf("cert-b's copy of %s v%d is not what the reference engine discloses under the latest terms:\n got %v\nwant %v", id, h.GetVersion(), got, ref)
			}
			if pv := h.GetProvenance().GetTransfers(); len(pv) != 1 || pv[0].GetPolicyVersion() != latestPolicy.Version() {
				rt.Fatalf("cert-b's copy of %s v%d names the transfers %v; the latest policy is v%d", id, h.GetVersion(), pv, latestPolicy.Version())
			}
			wantDigest, _ := ViewDigest(want)
			gotDigest, _ := ViewDigest(h)
			if wantDigest != gotDigest {
				rt.Fatalf("cert-b's copy of %s v%d is not what the latest terms allow:\n got %v\nwant %v", id, h.GetVersion(), h, want)
			}
			data, err := proto.Marshal(h)
			if err != nil {
				rt.Fatal(err)
			}
			for _, canary := range gone {
				if bytes.Contains(data, []byte(canary)) {
					rt.Fatalf("cert-b's copy of %s v%d still holds %q, which the latest terms take back", id, h.GetVersion(), canary)
				}
			}
		}
		// The indicator index must not find a record by a value it no
		// longer holds; the victim's name stands in (it is not indexed):
		// List by origin finds the record once, at its latest version.
		found, _, err := m.b.st.List(fsm.Query{OriginTeam: "cert-a"}, 1000, "")
		if err != nil {
			rt.Fatal(err)
		}
		for _, inc := range found {
			if inc.GetId() == id && inc.GetVersion() != latest.GetVersion() {
				rt.Fatalf("cert-b lists %s at v%d, not its latest v%d", id, inc.GetVersion(), latest.GetVersion())
			}
		}
	}
}

func marshalDeterministic(t *rapid.T, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
