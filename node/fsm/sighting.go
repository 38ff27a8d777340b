package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Sightings. Each sharing group the team is in has a key its members
// share; for every value of the team's own records, the state machine
// keeps the group's digest of it, HMAC-SHA256(key, normalised text) cut to
// 16 bytes, and what the members told us they hold:
//
//	grp/<group>                                   SharingGroup (with its key)
//	sgo/<group>\0<digest16>\0<team>\0<ticket8>    our record holds the value: TLP (1 byte) and the value's text
//	sgr/<group>\0<digest16>\0<peer>               the peer holds a value with this digest
//	sgp/<group>\0<peer>\0<digest16>               the same, by peer, to replace its set
//	sgw/<group>\0<peer>                            SightingsWithdrawal owed to a former member
//
// A value our records hold whose digest a member sent is a sighting: an
// alert of kind SIGHTING naming our records and the members. The members
// learn nothing but digests, and we send only digests (federation).
var (
	prefixGroup       = []byte("grp/")
	prefixSightOwn    = []byte("sgo/")
	prefixSightPeer   = []byte("sgr/")
	prefixSightByPeer = []byte("sgp/")
	// prefixSightWithdrawal: former members to tell to drop our digests.
	prefixSightWithdrawal = []byte("sgw/")
	errGroupKeyDiffers    = errdefs.New(errdefs.ErrFailedPrecondition, "the sightings were made with another key than the group's")
)

const sightingDigestLen = 16

func groupKey(name string) []byte { return cat(prefixGroup, []byte(name)) }

func sightOwnPrefix(group string, digest []byte) []byte {
	return cat(prefixSightOwn, []byte(group), []byte{0}, digest, []byte{0})
}

func sightPeerPrefix(group string, digest []byte) []byte {
	return cat(prefixSightPeer, []byte(group), []byte{0}, digest, []byte{0})
}

func sightWithdrawalKey(group, peer string) []byte {
	return cat(prefixSightWithdrawal, []byte(group), []byte{0}, []byte(peer))
}

func sightByPeerPrefix(group, peer string) []byte {
	return cat(prefixSightByPeer, []byte(group), []byte{0}, []byte(peer), []byte{0})
}

// SightingDigest is a group's digest of a normalised value.
func SightingDigest(key []byte, text string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(text))
	return m.Sum(nil)[:sightingDigestLen]
}

// KeyID names a group key without showing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// groups returns the sharing groups, as this batch left them.
func (a *applier) groups() ([]*irxv1.SharingGroup, error) {
	c := a.corr()
	if c.groups != nil {
		return c.groups, nil
	}
	if !a.settingsChanged {
		c.groups = a.fsm.settings.Load().groups
		if c.groups == nil {
			c.groups = []*irxv1.SharingGroup{}
		}
		return c.groups, nil
	}
	out, err := readGroups(a.stateReader())
	if err != nil {
		return nil, err
	}
	c.groups = out
	return out, nil
}

// readGroups reads the sharing groups, with their keys, in name order.
func readGroups(r iterable) ([]*irxv1.SharingGroup, error) {
	out := []*irxv1.SharingGroup{}
	err := scanFamily(r, prefixGroup, func(key, value []byte) error {
		g := &irxv1.SharingGroup{}
		if err := proto.Unmarshal(value, g); err != nil {
			return fmt.Errorf("fsm: decode %q: %w", key, err)
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// sight moves the digests of one of our records' values from prev to next
// (the normalised values of its versions) and recomputes the sightings of
// the values touched.
func (a *applier) sight(id record.ID, before, after valueSet, prevTLP, nextTLP irxv1.Tlp) {
	if id.Team != a.fsm.team {
		return
	}
	groups, err := a.groups()
	if err != nil {
		a.fail(err)
		return
	}
	if len(groups) == 0 {
		return
	}
	c := a.corr()
	var touched []string
	for _, n := range before {
		text := n.Text
		kept := after.has(text)
		if kept && prevTLP == nextTLP {
			continue
		}
		if !kept {
			for _, g := range groups {
				k := cat(sightOwnPrefix(g.GetName(), SightingDigest(g.GetKey(), text)), idKey(id))
				a.del(k)
				c.put(k, nil)
			}
		}
		touched = append(touched, text)
	}
	for _, n := range after {
		text := n.Text
		had := before.has(text)
		if had && prevTLP == nextTLP {
			continue
		}
		for _, g := range groups {
			k := cat(sightOwnPrefix(g.GetName(), SightingDigest(g.GetKey(), text)), idKey(id))
			v := append([]byte{byte(nextTLP)}, text...)
			a.set(k, v)
			c.put(k, v)
		}
		if !had {
			touched = append(touched, text)
		}
	}
	slices.Sort(touched)
	for _, text := range slices.Compact(touched) {
		a.recomputeSighting(text)
	}
}

// recomputeSighting brings the sighting alert of a value up to date: our
// records that hold it, the members that sent its digest.
func (a *applier) recomputeSighting(text string) {
	groups, err := a.groups()
	if err != nil {
		a.fail(err)
		return
	}
	teams := map[string]bool{}
	records := map[record.ID]bool{}
	for _, g := range groups {
		d := SightingDigest(g.GetKey(), text)
		own := sightOwnPrefix(g.GetName(), d)
		a.scan(own, prefixEnd(own), func(k, _ []byte) {
			if id, err := idFromKey(k, prefixSightOwn); err == nil {
				records[id] = true
			}
		})
		peers := sightPeerPrefix(g.GetName(), d)
		it, err := a.stateReader().NewIter(&pebble.IterOptions{LowerBound: peers, UpperBound: prefixEnd(peers)})
		if err != nil {
			a.fail(err)
			return
		}
		for valid := it.First(); valid; valid = it.Next() {
			peer := string(it.Key()[len(peers):])
			if slices.Contains(g.GetMemberTeamIds(), peer) {
				teams[peer] = true
			}
		}
		if err := it.Close(); err != nil {
			a.fail(err)
			return
		}
	}
	id := AlertID("sighting:" + text)
	existing, err := a.loadAlert(id)
	if err != nil {
		a.fail(err)
		return
	}
	if len(teams) == 0 || len(records) == 0 {
		if existing != nil {
			a.del(alertKey(id))
			a.del(alertRevKey(existing.GetRevision(), id))
			a.corr().alerts[id] = nil
		}
		return
	}
	next := &irxv1.Alert{AlertId: id, Kind: irxv1.AlertKind_ALERT_KIND_SIGHTING, Value: text, State: irxv1.AlertState_ALERT_STATE_OPEN, CreateTime: a.now}
	ids := make([]record.ID, 0, len(records))
	for r := range records {
		ids = append(ids, r)
	}
	slices.SortFunc(ids, func(x, y record.ID) int { return cmpU64(x.Ticket, y.Ticket) })
	for _, r := range ids[:min(len(ids), maxAlertRecords)] {
		next.Records = append(next.Records, &irxv1.AlertRecord{IncidentId: r.String(), OriginTeam: r.Team})
	}
	next.Teams = []string{a.fsm.team}
	for t := range teams {
		next.SightingTeams = append(next.SightingTeams, t)
	}
	slices.Sort(next.SightingTeams)
	next.Count = int64(len(ids))
	if existing != nil {
		next.CreateTime = existing.GetCreateTime()
		grew := gainedRecords(existing, next) || len(next.GetSightingTeams()) > len(existing.GetSightingTeams())
		if !grew {
			next.AcknowledgedBy, next.AcknowledgeTime = existing.GetAcknowledgedBy(), existing.GetAcknowledgeTime()
		}
		next.Revision, next.UpdateTime = existing.GetRevision(), existing.GetUpdateTime()
		if proto.Equal(existing, next) {
			return
		}
		a.del(alertRevKey(existing.GetRevision(), id))
	}
	a.storeAlert(next)
}

// putSharingGroup stores a group. A new group or a new key starts over:
// our digests are made again under the key, and what members sent under
// the old one is dropped. Under the same key only the members change
// (regroup).
func (a *applier) putSharingGroup(c *irxv1.PutSharingGroupCommand) *Result {
	g := proto.CloneOf(c.GetGroup())
	if err := CheckSharingGroup(g); err != nil {
		return &Result{Err: fmt.Errorf("%w at index %d: %v", ErrInvalidCommand, a.index, err)}
	}
	for i, m := range g.GetMemberTeamIds() {
		// The peer itself, not its state: a team never peered with has
		// no state either, and reading it finds nothing without an error.
		found, err := getProto(a.reads(), peerKey(m), &irxv1.Peer{})
		if err != nil {
			a.fail(err)
			return &Result{Err: err}
		}
		if !found {
			return &Result{Err: &record.ValidationError{What: "request", Violations: []record.Violation{{
				Field: fmt.Sprintf("group.member_team_ids[%d]", i), Description: fmt.Sprintf("%q is not a configured peer", m)}}}}
		}
	}
	g.KeyId, g.UpdateTime = KeyID(g.GetKey()), a.now
	prev := &irxv1.SharingGroup{}
	found, err := getProto(a.reads(), groupKey(g.GetName()), prev)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if found && prev.GetKeyId() == g.GetKeyId() {
		if err := a.regroup(prev, g); err != nil {
			return &Result{Err: err}
		}
		out := proto.CloneOf(g)
		out.Key = nil
		return &Result{SharingGroup: out, Err: a.err}
	}
	a.settleMembers(prev, g) // prev is empty when the group is new
	texts := a.dropGroupDigests(g.GetName())
	a.setProto(g, groupKey(g.GetName()))
	a.settingsChanged = true
	a.corr().groups = nil
	// Our digests under the new key, from our records.
	if err := a.eachOwnLatest(func(id record.ID, inc *irxv1.Incident) {
		for _, n := range recordValues(inc) {
			text := n.Text
			k := cat(sightOwnPrefix(g.GetName(), SightingDigest(g.GetKey(), text)), idKey(id))
			v := append([]byte{byte(inc.GetTlp())}, text...)
			a.set(k, v)
			a.corr().put(k, v)
		}
	}); err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	for text := range texts {
		a.recomputeSighting(text)
	}
	out := proto.CloneOf(g)
	out.Key = nil
	return &Result{SharingGroup: out, Err: a.err}
}

// dropGroupDigests deletes our digests under a group's key and what its
// members sent us, and returns the values of ours the digests were of
// (whose sightings are then to be recomputed).
func (a *applier) dropGroupDigests(name string) map[string]bool {
	texts := map[string]bool{}
	own := cat(prefixSightOwn, []byte(name), []byte{0})
	a.scan(own, prefixEnd(own), func(_, v []byte) {
		if len(v) > 1 {
			texts[string(v[1:])] = true
		}
	})
	for _, p := range [][]byte{own, cat(prefixSightPeer, []byte(name), []byte{0}), cat(prefixSightByPeer, []byte(name), []byte{0})} {
		a.deleteRange(p)
	}
	for k := range a.corr().overlay {
		if bytes.HasPrefix([]byte(k), own) {
			for rest := range a.corr().overlay[k] {
				a.corr().overlay[k][rest] = nil
			}
		}
	}
	return texts
}

// deleteSharingGroup deletes a group with its digests and sightings; each
// member is owed a withdrawal of what we sent it.
func (a *applier) deleteSharingGroup(c *irxv1.DeleteSharingGroupCommand) *Result {
	g := &irxv1.SharingGroup{}
	found, err := getProto(a.reads(), groupKey(c.GetName()), g)
	switch {
	case err != nil:
		a.fail(err)
		return &Result{Err: err}
	case !found:
		return &Result{Err: fmt.Errorf("%w: sharing group %q", ErrNotFound, c.GetName())}
	}
	for _, m := range g.GetMemberTeamIds() {
		a.oweWithdrawal(g, m)
	}
	texts := a.dropGroupDigests(g.GetName())
	a.del(groupKey(g.GetName()))
	a.settingsChanged = true
	a.corr().groups = nil
	for text := range texts {
		a.recomputeSighting(text)
	}
	return &Result{Err: a.err}
}

// settleMembers owes a withdrawal to each member of prev that next leaves
// out, and none to next's members.
func (a *applier) settleMembers(prev, next *irxv1.SharingGroup) {
	for _, m := range prev.GetMemberTeamIds() {
		if !slices.Contains(next.GetMemberTeamIds(), m) {
			a.oweWithdrawal(prev, m)
		}
	}
	for _, m := range next.GetMemberTeamIds() {
		a.del(sightWithdrawalKey(next.GetName(), m))
	}
}

// oweWithdrawal records that peer, no longer in group g, is to be told to
// drop the digests we sent it under g's key; the leader tells it
// (federation) and then clears the record. Until then the record is what
// makes a new leader tell it: the leader's memory of what it sent is not
// replicated.
func (a *applier) oweWithdrawal(g *irxv1.SharingGroup, peer string) {
	a.setProto(&irxv1.SightingsWithdrawal{
		Group: g.GetName(), PeerTeamId: peer, KeyId: g.GetKeyId(), CreateTime: a.now, Revision: a.index,
	}, sightWithdrawalKey(g.GetName(), peer))
}

// clearSightingsWithdrawal records that a withdrawal was delivered; one
// owed again since (a later revision) stands.
func (a *applier) clearSightingsWithdrawal(c *irxv1.ClearSightingsWithdrawalCommand) *Result {
	key := sightWithdrawalKey(c.GetGroup(), c.GetPeerTeamId())
	w := &irxv1.SightingsWithdrawal{}
	found, err := getProto(a.reads(), key, w)
	switch {
	case err != nil:
		a.fail(err)
		return &Result{Err: err}
	case found && w.GetRevision() == c.GetRevision():
		a.del(key)
	}
	return &Result{Err: a.err}
}

// dropWithdrawals forgets the withdrawals owed to a deleted peer: we no
// longer call it.
func (a *applier) dropWithdrawals(peer string) error {
	var owed [][]byte
	err := scanFamily(a.reads(), prefixSightWithdrawal, func(k, _ []byte) error {
		if _, p, ok := bytes.Cut(k[len(prefixSightWithdrawal):], []byte{0}); ok && string(p) == peer {
			owed = append(owed, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		a.fail(err)
		return err
	}
	for _, k := range owed {
		a.del(k)
	}
	return nil
}

// SightingsWithdrawals lists the withdrawals owed to former members of
// sharing groups, by group and peer.
func (f *FSM) SightingsWithdrawals() ([]*irxv1.SightingsWithdrawal, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*irxv1.SightingsWithdrawal
	err := scanFamily(f.db, prefixSightWithdrawal, func(k, v []byte) error {
		w := &irxv1.SightingsWithdrawal{}
		if err := proto.Unmarshal(v, w); err != nil {
			return fmt.Errorf("fsm: decode %q: %w", k, err)
		}
		out = append(out, w)
		return nil
	})
	return out, err
}

// eachOwnLatest calls fn with the latest version of each of our records.
func (a *applier) eachOwnLatest(fn func(record.ID, *irxv1.Incident)) error {
	prefix := cat(prefixIncident, []byte(a.fsm.team), []byte{0})
	it, err := a.stateReader().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	var ids []record.ID
	for valid := it.First(); valid; valid = it.Next() {
		id, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			_ = it.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, id := range ids {
		inc, err := loadLatest(a.stateReader(), id)
		if err != nil {
			return err
		}
		fn(id, inc)
	}
	return nil
}

// receiveSightings replaces what a member sent us of a group.
func (a *applier) receiveSightings(c *irxv1.ReceiveSightingsCommand) *Result {
	peer, name := c.GetPeerTeamId(), c.GetGroup()
	g := &irxv1.SharingGroup{}
	found, err := getProto(a.stateReader(), groupKey(name), g)
	switch {
	case err != nil:
		a.fail(err)
		return &Result{Err: err}
	case !found || !slices.Contains(g.GetMemberTeamIds(), peer):
		return &Result{Err: errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf("%s is not a member of a sharing group %q of this team", peer, name))}
	case len(c.GetDigests()) > 0 && c.GetKeyId() != g.GetKeyId():
		// An empty set is a withdrawal: whatever the key it names, the
		// member holds nothing from us after it.
		return &Result{Err: fmt.Errorf("%w: %s sent digests under key %s, the group's is %s", errGroupKeyDiffers, peer, c.GetKeyId(), g.GetKeyId())}
	}
	next := map[string]bool{}
	for _, d := range c.GetDigests() {
		if len(d) != sightingDigestLen {
			return &Result{Err: &record.ValidationError{What: "sightings", Violations: []record.Violation{{Field: "digests", Description: fmt.Sprintf("a digest is %d bytes, not %d", len(d), sightingDigestLen)}}}}
		}
		next[string(d)] = true
	}
	if err := a.replaceSightings(name, peer, next); err != nil {
		return &Result{Err: err}
	}
	return &Result{}
}

// replaceSightings makes next the digests peer sent us of group name, and
// recomputes the sightings of our values whose digests came or went.
func (a *applier) replaceSightings(name, peer string, next map[string]bool) error {
	byPeer := sightByPeerPrefix(name, peer)
	old := map[string]bool{}
	it, err := a.stateReader().NewIter(&pebble.IterOptions{LowerBound: byPeer, UpperBound: prefixEnd(byPeer)})
	if err != nil {
		a.fail(err)
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		old[string(it.Key()[len(byPeer):])] = true
	}
	if err := it.Close(); err != nil {
		a.fail(err)
		return err
	}
	var changed []string
	for d := range old {
		if !next[d] {
			a.del(cat(byPeer, []byte(d)))
			a.del(cat(sightPeerPrefix(name, []byte(d)), []byte(peer)))
			changed = append(changed, d)
		}
	}
	for d := range next {
		if !old[d] {
			a.set(cat(byPeer, []byte(d)), nil)
			a.set(cat(sightPeerPrefix(name, []byte(d)), []byte(peer)), nil)
			changed = append(changed, d)
		}
	}
	// The values of ours that these digests are of.
	texts := map[string]bool{}
	for _, d := range changed {
		own := sightOwnPrefix(name, []byte(d))
		a.scan(own, prefixEnd(own), func(_, v []byte) {
			if len(v) > 1 {
				texts[string(v[1:])] = true
			}
		})
	}
	sorted := make([]string, 0, len(texts))
	for t := range texts {
		sorted = append(sorted, t)
	}
	slices.Sort(sorted)
	for _, t := range sorted {
		a.recomputeSighting(t)
	}
	return a.err
}

// regroup stores next, group prev with other members under the same key:
// our digests stand, and so does what the members that stay sent us; a
// member that left takes its sightings with it. (A member only sends
// again when its own set changes, so dropping what it sent would lose its
// sightings until then.)
func (a *applier) regroup(prev, next *irxv1.SharingGroup) error {
	for _, m := range prev.GetMemberTeamIds() {
		if !slices.Contains(next.GetMemberTeamIds(), m) {
			if err := a.replaceSightings(next.GetName(), m, nil); err != nil {
				return err
			}
		}
	}
	a.settleMembers(prev, next)
	a.setProto(next, groupKey(next.GetName()))
	a.settingsChanged = true
	a.corr().groups = nil
	return a.err
}

// leaveSharingGroups takes peer out of every sharing group it is a member
// of, with what it sent us in each: a deleted peer is no longer whom our
// digests go to, and a team peered again under its id later joins a group
// only when an operator puts it in. A group can be left with no members;
// it sends and accepts nothing until it is put with some.
func (a *applier) leaveSharingGroups(peer string) error {
	groups, err := a.groups()
	if err != nil {
		a.fail(err)
		return err
	}
	for _, g := range groups {
		if !slices.Contains(g.GetMemberTeamIds(), peer) {
			continue
		}
		left := proto.CloneOf(g)
		left.MemberTeamIds = slices.DeleteFunc(left.MemberTeamIds, func(m string) bool { return m == peer })
		if err := a.regroup(g, left); err != nil {
			return err
		}
	}
	return nil
}

// CheckSharingGroup says what is wrong with a group, naming the field.
func CheckSharingGroup(g *irxv1.SharingGroup) error {
	var vs []record.Violation
	name := g.GetName()
	if !ValidSharingGroupName(name) {
		vs = append(vs, record.Violation{Field: "group.name", Description: "is lower-case letters, digits and hyphens, 1 to 63"})
	}
	if len(g.GetKey()) != 32 {
		vs = append(vs, record.Violation{Field: "group.key", Description: "is 32 bytes (base64 in JSON), the same at every member"})
	}
	if n := len(g.GetMemberTeamIds()); n == 0 || n > 256 {
		vs = append(vs, record.Violation{Field: "group.member_team_ids", Description: "names 1 to 256 peers"})
	}
	for i, m := range g.GetMemberTeamIds() {
		if err := record.ValidateTeamID(m); err != nil || slices.Contains(g.GetMemberTeamIds()[:i], m) {
			vs = append(vs, record.Violation{Field: fmt.Sprintf("group.member_team_ids[%d]", i), Description: "is not a team id, or is repeated"})
		}
	}
	if len(vs) > 0 {
		return &record.ValidationError{What: "request", Violations: vs}
	}
	return nil
}

// ValidSharingGroupName says whether s may name a sharing group: 1 to 63
// lower-case letters, digits and hyphens.
func ValidSharingGroupName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// SharingGroups lists the groups, without their keys.
func (f *FSM) SharingGroups() ([]*irxv1.SharingGroup, error) {
	gs, err := f.sharingGroupsWithKeys()
	for _, g := range gs {
		g.Key = nil
	}
	return gs, err
}

// sharingGroupsWithKeys returns copies of the groups in force (the
// federation's sender reads them after every change it is woken for).
func (f *FSM) sharingGroupsWithKeys() ([]*irxv1.SharingGroup, error) {
	var out []*irxv1.SharingGroup
	for _, g := range f.settings.Load().groups {
		out = append(out, proto.CloneOf(g))
	}
	return out, nil
}

// OwnSightings returns, for each sharing group, its key id and the
// digests of the values of our records whose TLP is at most maxTLP, up to
// limit, in digest order: what a member may be told.
func (f *FSM) OwnSightings(group string, maxTLP irxv1.Tlp, limit int) (keyID string, digests [][]byte, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g := &irxv1.SharingGroup{}
	found, err := getProto(f.db, groupKey(group), g)
	if err != nil || !found {
		return "", nil, err
	}
	if maxTLP < irxv1.Tlp_TLP_CLEAR {
		return g.GetKeyId(), nil, nil
	}
	prefix := cat(prefixSightOwn, []byte(group), []byte{0})
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return "", nil, err
	}
	var last []byte
	for valid := it.First(); valid && len(digests) < limit; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < len(prefix)+sightingDigestLen || len(v) < 1 || irxv1.Tlp(v[0]) < irxv1.Tlp_TLP_CLEAR || irxv1.Tlp(v[0]) > maxTLP {
			continue
		}
		d := k[len(prefix) : len(prefix)+sightingDigestLen]
		if bytes.Equal(d, last) {
			continue
		}
		last = bytes.Clone(d)
		digests = append(digests, last)
	}
	return g.GetKeyId(), digests, it.Close()
}
