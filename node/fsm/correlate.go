package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Correlation. Every value of the latest version of every record the team
// holds (its indicators, its attacking hosts' addresses, names and
// domains), normalised (record.Normalize), is indexed under
//
//	cor/v/<value key>\0<team>\0<ticket8>  -> report time (12 bytes), the team it came from, and
//	                                        for an address, prefix or name its text
//
// where the value key is "h" and the first 16 bytes of the SHA-256 of the
// value's text. Keys never hold a value itself: keys reach pebble's
// MANIFEST as table boundaries, which no compaction erases, so a value in
// a key would outlive the erasure of a withdrawn record. Containment needs
// order, so it is kept in memory instead (heldValues): every address and
// name the index holds, rebuilt from the entries' values when the
// database is opened or restored, and kept up to date as entries apply.
// A prefix's lengths are kept likewise (netBits). Whenever a change adds,
// removes or moves a value, the state machine recomputes the alert of
// every value the change touches, in the same batch:
//
//	alr/a/<alert id>               Alert
//	alr/u/<revision8><alert id>    the alerts by their last change
//	alr/s                          AlertSettings
//
// The alert of a value V ("the anchor") lists the records that hold V, or
// a prefix that contains V (an address), or a name above V (a name), and
// whose report time lies within the window of another such record's. It
// is open when it lists two or more; closed when fewer, while some record
// still holds V itself; deleted when none does (so a value that left the
// team with its records leaves the alerts too). Everything is computed
// from the replicated state and the entry, so every node holds the same
// alerts; TestCorrelationEqualsBruteForce checks them against a join over
// the records.
var (
	prefixCorrelation = []byte("cor/v/")
	prefixAlert       = []byte("alr/a/")
	prefixAlertByRev  = []byte("alr/u/")
	keyAlertSettings  = []byte("alr/s")
	prefixAlertFamily = []byte("alr/")
	prefixSaturated   = []byte("alr/sat/")
)

// DefaultAlertWindow is the correlation window until one is set.
const DefaultAlertWindow = 30 * 24 * time.Hour

// Bounds of what one change recomputes: a wide prefix or a short name
// is contained in or above many values; only so many of their alerts are
// recomputed by the change (the others when their own records change), and
// an alert lists only so many records.
const (
	maxAnchorsPerValue = 256
	maxAlertRecords    = 100
)

func alertKey(id string) []byte { return cat(prefixAlert, []byte(id)) }

func alertRevKey(rev uint64, id string) []byte { return cat(prefixAlertByRev, u64(rev), []byte(id)) }

// AlertID is the id of the alert of a normalised value.
func AlertID(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

// valueKey is the index form of a normalised value: a digest of its text,
// never the value (see above).
func valueKey(n record.Normalized) []byte {
	sum := sha256.Sum256([]byte(canonicalText(n)))
	return append([]byte{'h'}, sum[:valueKeyLen-1]...)
}

// valueKeyLen is the length of every value key.
const valueKeyLen = 17

// valueKey is valueKey(n), computed once per batch.
func (c *correlator) valueKey(n record.Normalized) []byte {
	// Normalize's text decides the canonical text, so it can stand for it
	// without being made again (an address's String allocates).
	text := n.Text
	if text == "" {
		text = canonicalText(n)
	}
	if k, ok := c.keys[text]; ok {
		return k
	}
	k := valueKey(n)
	c.keys[text] = k
	return k
}

// canonicalText is n's Text, made from its address, prefix or name when
// the caller built n from those alone (the prefixes around an address, the
// names above a name).
func canonicalText(n record.Normalized) string {
	switch n.Kind {
	case record.ValueIP:
		return "ip:" + n.Prefix.Addr().String()
	case record.ValueNet:
		return "net:" + n.Prefix.Masked().String()
	case record.ValueDomain:
		return "domain:" + n.Domain
	}
	return n.Text
}

// parseCanonical reads back the text of an address, prefix or name.
func parseCanonical(text string) (record.Normalized, bool) {
	if s, ok := strings.CutPrefix(text, "ip:"); ok {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return record.Normalized{}, false
		}
		return record.Normalized{Kind: record.ValueIP, Text: text, Prefix: netip.PrefixFrom(a, a.BitLen())}, true
	}
	if s, ok := strings.CutPrefix(text, "net:"); ok {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return record.Normalized{}, false
		}
		return record.Normalized{Kind: record.ValueNet, Text: text, Prefix: p}, true
	}
	if d, ok := strings.CutPrefix(text, "domain:"); ok && d != "" {
		return record.Normalized{Kind: record.ValueDomain, Text: text, Domain: d}, true
	}
	return record.Normalized{}, false
}

// ordered says whether containment reads n's kind.
func ordered(k record.ValueKind) bool {
	return k == record.ValueIP || k == record.ValueNet || k == record.ValueDomain
}

func addrFamily(a netip.Addr) byte {
	if a.Is4() {
		return '4'
	}
	return '6'
}

func reverseLabels(d string) string {
	labels := strings.Split(d, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// valueGroup is the prefix of every index key of one value.
func valueGroup(vk []byte) []byte { return cat(prefixCorrelation, vk, []byte{0}) }

// correlationKey is valueGroup(vk) and idKey(id), made in one allocation:
// every value of every stored version makes one.
func correlationKey(vk []byte, id record.ID) []byte {
	k := make([]byte, 0, len(prefixCorrelation)+len(vk)+1+len(id.Team)+9)
	k = append(append(append(k, prefixCorrelation...), vk...), 0)
	k = append(append(k, id.Team...), 0)
	return binary.BigEndian.AppendUint64(k, id.Ticket)
}

// recordValues returns the normalised values of a record version, by text.
// A withdrawn version (and a stub) holds none.
func recordValues(inc *irxv1.Incident) map[string]record.Normalized {
	if inc == nil || inc.GetWithdrawTime() != nil {
		return nil
	}
	sender := inc.GetProvenance().GetReceivedFrom()
	out := map[string]record.Normalized{}
	add := func(v string) {
		if n, ok := record.Normalize(v, sender); ok {
			out[n.Text] = n
		}
	}
	for _, ind := range inc.GetIndicators() {
		add(ind.GetValue())
	}
	for _, h := range inc.GetAttackingHosts() {
		for _, a := range h.GetAddresses() {
			add(a)
		}
		add(h.GetHostname())
		add(h.GetDomain())
	}
	return out
}

// correlationValue is how an index key of a value starts: the record's
// report time and the team the record came from (empty: our own).
func correlationValue(inc *irxv1.Incident) []byte {
	v := timeKey(inc.GetReportTime().AsTime())
	sender := inc.GetProvenance().GetReceivedFrom()
	v = binary.AppendUvarint(v, uint64(len(sender)))
	return append(v, sender...)
}

// entryValue is what the index key of n holds: head (correlationValue),
// and the text of an address, prefix or name, from which the memory of
// them is rebuilt.
func entryValue(head []byte, n record.Normalized) []byte {
	if !ordered(n.Kind) {
		return head
	}
	return append(bytes.Clone(head), canonicalText(n)...)
}

// parseEntryValue splits an index key's value.
func parseEntryValue(v []byte) (time []byte, sender, text string, ok bool) {
	if len(v) < timeKeyLen {
		return nil, "", "", false
	}
	size, n := binary.Uvarint(v[timeKeyLen:])
	rest := v[timeKeyLen:]
	if n <= 0 || uint64(len(rest)-n) < size {
		return nil, "", "", false
	}
	rest = rest[n:]
	return v[:timeKeyLen], string(rest[:size]), string(rest[size:]), true
}

// corOverlay holds the index keys of values written by the entries applied
// so far in this batch, which reads of the database do not see: by value
// group, then by incident key; a nil value is a deletion.
type corOverlay map[string]map[string][]byte

// correlator is the applier's state for correlation, made on first use.
type correlator struct {
	overlay corOverlay
	alerts  map[string]*irxv1.Alert // alerts written in this batch; nil value: deleted
	it      *pebble.Iterator
	window  time.Duration
	loaded  bool
	// groups: the sharing groups as this batch left them (sighting.go);
	// nil until read.
	groups []*irxv1.SharingGroup
	// keys caches valueKey by canonical text: a batch's records often
	// share values, and each value's key is needed for its index key, its
	// saturation mark and its holders.
	keys map[string][]byte
}

func (a *applier) corr() *correlator {
	if a.cor == nil {
		a.cor = &correlator{overlay: corOverlay{}, alerts: map[string]*irxv1.Alert{}, keys: map[string][]byte{}}
	}
	if !a.cor.loaded {
		a.cor.loaded = true
		s, err := a.fsm.alertSettings()
		if err != nil {
			a.fail(err)
		}
		a.cor.window = s.GetWindow().AsDuration()
	}
	return a.cor
}

func (c *correlator) close() error {
	if c == nil || c.it == nil {
		return nil
	}
	err := c.it.Close()
	c.it = nil
	return err
}

// correlate moves a record's values from its version prev to next (either
// may be nil) and recomputes the alerts they touch. erase notes the
// removed keys for erasure at rest (a removal a peer asked for).
func (a *applier) correlate(id record.ID, prev, next *irxv1.Incident, erase bool) {
	if !maintainCorrelation {
		return
	}
	before, after := recordValues(prev), recordValues(next)
	if len(before) == 0 && len(after) == 0 {
		return
	}
	a.sight(id, before, after, prev.GetTlp(), next.GetTlp())
	c := a.corr()
	var oldV, newV []byte
	if len(before) > 0 {
		oldV = correlationValue(prev)
	}
	if len(after) > 0 {
		newV = correlationValue(next)
	}
	var touched []record.Normalized
	grew := map[string]bool{} // touched because a record came to hold it
	// fresh: a value no record held before this one (an alert
	// exists only while some record holds its value, so there is none to
	// read, but one this batch made).
	fresh := map[string]bool{}
	for text, n := range before {
		if _, kept := after[text]; kept && bytes.Equal(oldV, newV) {
			continue
		}
		if _, kept := after[text]; !kept {
			vk := c.valueKey(n)
			k := correlationKey(vk, id)
			a.del(k)
			c.put(k, nil)
			a.fsm.held.remove(n, vk)
			if erase {
				a.erasedKeys(k)
			}
		}
		touched = append(touched, n)
	}
	for text, n := range after {
		if _, had := before[text]; had && bytes.Equal(oldV, newV) {
			continue
		}
		vk := c.valueKey(n)
		k := correlationKey(vk, id)
		v := entryValue(newV, n)
		a.set(k, v)
		c.put(k, v)
		grew[text] = true
		if _, had := before[text]; !had {
			if a.fsm.held.add(n, vk) == 1 {
				fresh[text] = true
			}
			if n.Kind == record.ValueNet {
				a.fsm.netBits.add(n.Prefix)
			}
			touched = append(touched, n)
		}
	}
	if len(touched) == 0 {
		return
	}
	// Recompute each alert once, in an order every replica shares.
	anchors := map[string]record.Normalized{}
	shrank := map[string]bool{}
	for _, n := range touched {
		for _, an := range a.anchorsOf(n) {
			anchors[an.Text] = an
			shrank[an.Text] = shrank[an.Text] || !grew[n.Text]
		}
	}
	texts := make([]string, 0, len(anchors))
	for t := range anchors {
		texts = append(texts, t)
	}
	slices.Sort(texts)
	for _, t := range texts {
		a.recomputeAlert(anchors[t], erase, shrank[t], fresh[t])
	}
}

// put records an index write in the overlay.
func (c *correlator) put(k, v []byte) {
	group, rest := splitCorrelationKey(k)
	m := c.overlay[group]
	if m == nil {
		m = map[string][]byte{}
		c.overlay[group] = m
	}
	m[rest] = v
}

// splitCorrelationKey splits an index key into its value group and its
// incident key (team, NUL, ticket8); team ids hold no NUL.
func splitCorrelationKey(k []byte) (group, rest string) {
	body := k[:len(k)-9]
	i := bytes.LastIndexByte(body, 0)
	ks := string(k) // one allocation for both halves
	return ks[:i+1], ks[i+1:]
}

// member is one record that holds a value, as its index key says.
type member struct {
	id     record.ID
	time   []byte // timeKey
	sender string
}

// scan calls fn for every index key in [lower, upper), the database's
// merged with the batch's, in no particular order.
func (a *applier) scan(lower, upper []byte, fn func(k, v []byte)) {
	c := a.corr()
	if c.it == nil {
		it, err := a.fsm.db.NewIter(nil)
		if err != nil {
			a.fail(err)
			return
		}
		c.it = it
	}
	seen := map[string]bool{}
	for group, m := range c.overlay {
		if group < string(lower) || (upper != nil && group >= string(upper)) {
			continue
		}
		for rest, v := range m {
			k := group + rest
			seen[k] = true
			if v != nil {
				fn([]byte(k), v)
			}
		}
	}
	c.it.SetBounds(lower, upper)
	for valid := c.it.First(); valid; valid = c.it.Next() {
		if !seen[string(c.it.Key())] {
			fn(bytes.Clone(c.it.Key()), bytes.Clone(c.it.Value()))
		}
	}
	if err := c.it.Error(); err != nil {
		a.fail(err)
	}
}

// holders returns the records that hold the value of group exactly. held
// is how many index keys the value has (heldValues' count): when this
// batch wrote all of them, the database has no other and is not read.
// That is the common case of a new value, and a read of the index is a
// seek in every level of the database.
func (a *applier) holders(group []byte, held int) []member {
	var out []member
	add := func(k, v []byte) {
		id, err := idFromKey(k, prefixCorrelation)
		t, sender, _, ok := parseEntryValue(v)
		if err != nil || !ok {
			a.fail(fmt.Errorf("fsm: malformed correlation entry %x", k))
			return
		}
		out = append(out, member{id: id, time: t, sender: sender})
	}
	if held == 0 {
		return nil
	}
	// A value group's keys all start with it and no other group's do (a
	// group has a fixed length), so the batch's writes of it are the
	// overlay's entry for it alone.
	written := a.corr().overlay[string(group)]
	live := 0
	for _, v := range written {
		if v != nil {
			live++
		}
	}
	if held == live {
		for rest, v := range written {
			if v != nil {
				add(append(bytes.Clone(group), rest...), v)
			}
		}
		return out
	}
	a.scan(group, prefixEnd(group), add)
	return out
}

// anchorsOf lists the values whose alerts a change of n touches: n itself,
// and for a prefix the addresses in it, for a name the names under it,
// that some record holds.
func (a *applier) anchorsOf(n record.Normalized) []record.Normalized {
	out := []record.Normalized{n}
	switch n.Kind {
	case record.ValueNet:
		for _, addr := range a.fsm.held.addrsIn(n.Prefix, maxAnchorsPerValue) {
			out = append(out, record.Normalized{Kind: record.ValueIP, Text: "ip:" + addr.String(), Prefix: netip.PrefixFrom(addr, addr.BitLen())})
		}
	case record.ValueDomain:
		for _, d := range a.fsm.held.namesUnder(n.Domain, maxAnchorsPerValue) {
			out = append(out, record.Normalized{Kind: record.ValueDomain, Text: "domain:" + d, Domain: d})
		}
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// candidates lists the records that hold the anchor, a prefix containing
// it, or a name above it, each once; exact says whether any holds the
// anchor itself.
func (a *applier) candidates(n record.Normalized) (out []member, exact bool) {
	c := a.corr()
	vk := c.valueKey(n)
	own := a.holders(valueGroup(vk), a.fsm.held.count(n, vk))
	exact = len(own) > 0
	out = append(out, own...)
	switch n.Kind {
	case record.ValueIP:
		addr := n.Prefix.Addr()
		for bits := range a.fsm.netBits.lengths(addr) {
			p, err := addr.Prefix(bits)
			if err != nil {
				continue
			}
			net := record.Normalized{Kind: record.ValueNet, Prefix: p}
			vk := c.valueKey(net)
			out = append(out, a.holders(valueGroup(vk), a.fsm.held.count(net, vk))...)
		}
	case record.ValueDomain:
		for _, d := range record.ParentDomains(n.Domain) {
			parent := record.Normalized{Kind: record.ValueDomain, Domain: d}
			vk := c.valueKey(parent)
			out = append(out, a.holders(valueGroup(vk), a.fsm.held.count(parent, vk))...)
		}
	}
	slices.SortFunc(out, func(x, y member) int {
		if c := bytes.Compare(x.time, y.time); c != 0 {
			return c
		}
		if c := strings.Compare(x.id.Team, y.id.Team); c != 0 {
			return c
		}
		return cmpU64(x.id.Ticket, y.id.Ticket)
	})
	// A record holds one report time, so its copies are neighbours.
	out = slices.CompactFunc(out, func(x, y member) bool { return x.id == y.id })
	return out, exact
}

func cmpU64(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// InWindow returns the members (sorted by time) whose time lies within
// window of another member's: in time order, a member's nearest other is
// one of its neighbours.
func inWindow(ms []member, window time.Duration) []member {
	var out []member
	within := func(i, j int) bool {
		return timeOfKey(ms[j]).Sub(timeOfKey(ms[i])) <= window
	}
	for i := range ms {
		if (i > 0 && within(i-1, i)) || (i+1 < len(ms) && within(i, i+1)) {
			out = append(out, ms[i])
		}
	}
	return out
}

func timeOfKey(m member) time.Time {
	const yearOneToEpoch = 62135596800
	s := int64(binary.BigEndian.Uint64(m.time)) - yearOneToEpoch
	return time.Unix(s, int64(binary.BigEndian.Uint32(m.time[8:]))).UTC()
}

// recomputeAlert brings the alert of anchor n up to date.
func (a *applier) recomputeAlert(n record.Normalized, erase, shrank, fresh bool) {
	c := a.corr()
	// A value held by more than maxAlertRecords records saturates its
	// alert: a record that comes to hold it too changes nothing worth the
	// scan (a C2 address in every record of a campaign would otherwise
	// make each create cost a scan of all the others). Only a record that
	// stops holding it may unsaturate it, and recomputes.
	satKey := cat(prefixSaturated, c.valueKey(n))
	_, saturated := a.fsm.saturated[string(satKey)]
	if saturated && !shrank {
		return
	}
	id := AlertID(n.Text)
	var existing *irxv1.Alert
	if al, made := c.alerts[id]; fresh && made && al != nil {
		existing = proto.CloneOf(al)
	} else if !fresh {
		var err error
		if existing, err = a.loadAlert(id); err != nil {
			a.fail(err)
			return
		}
	}
	all, exact := a.candidates(n)
	if a.err != nil {
		return
	}
	if !exact {
		if existing != nil {
			a.del(alertKey(id))
			a.del(alertRevKey(existing.GetRevision(), id))
			if erase {
				a.erasedKeys(alertKey(id), alertRevKey(existing.GetRevision(), id))
			}
			c.alerts[id] = nil
		}
		return
	}
	if len(all) > maxAlertRecords {
		if !saturated {
			a.set(satKey, nil)
			a.fsm.saturated[string(satKey)] = struct{}{}
		}
		ms := all[:maxAlertRecords]
		next := &irxv1.Alert{AlertId: id, Kind: irxv1.AlertKind_ALERT_KIND_CORRELATION, Value: n.Text, State: irxv1.AlertState_ALERT_STATE_OPEN,
			CreateTime: a.now, Count: int64(len(ms)), Saturated: true}
		if existing != nil {
			next.CreateTime = existing.GetCreateTime()
			if existing.GetSaturated() {
				return
			}
			a.del(alertRevKey(existing.GetRevision(), id))
		}
		teams := map[string]bool{}
		for _, m := range ms {
			next.Records = append(next.Records, &irxv1.AlertRecord{IncidentId: m.id.String(), OriginTeam: m.id.Team, ReceivedFrom: m.sender, ReportTime: timestamppb.New(timeOfKey(m))})
			teams[m.id.Team] = true
		}
		for t := range teams {
			next.Teams = append(next.Teams, t)
		}
		slices.Sort(next.Teams)
		next.FirstSeenTime = timestamppb.New(timeOfKey(ms[0]))
		next.LastSeenTime = timestamppb.New(timeOfKey(ms[len(ms)-1]))
		a.storeAlert(next)
		return
	}
	if saturated {
		a.del(satKey)
		delete(a.fsm.saturated, string(satKey))
	}
	ms := inWindow(all, c.window)
	open := len(ms) >= 2
	if !open && existing == nil {
		return
	}
	next := &irxv1.Alert{
		AlertId: id, Kind: irxv1.AlertKind_ALERT_KIND_CORRELATION, Value: n.Text,
		State: irxv1.AlertState_ALERT_STATE_CLOSED, CreateTime: a.now,
	}
	if open {
		next.State = irxv1.AlertState_ALERT_STATE_OPEN
		teams := map[string]bool{}
		for _, m := range ms[:min(len(ms), maxAlertRecords)] {
			next.Records = append(next.Records, &irxv1.AlertRecord{
				IncidentId: m.id.String(), OriginTeam: m.id.Team, ReceivedFrom: m.sender,
				ReportTime: timestamppb.New(timeOfKey(m)),
			})
			teams[m.id.Team] = true
		}
		for t := range teams {
			next.Teams = append(next.Teams, t)
		}
		slices.Sort(next.Teams)
		next.Count = int64(len(ms))
		next.FirstSeenTime = timestamppb.New(timeOfKey(ms[0]))
		next.LastSeenTime = timestamppb.New(timeOfKey(ms[len(ms)-1]))
	}
	if existing != nil {
		next.CreateTime = existing.GetCreateTime()
		next.SightingTeams = existing.GetSightingTeams()
		if !gainedRecords(existing, next) {
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

// gainedRecords: next lists a record existing does not.
func gainedRecords(existing, next *irxv1.Alert) bool {
	had := map[string]bool{}
	for _, r := range existing.GetRecords() {
		had[r.GetIncidentId()] = true
	}
	for _, r := range next.GetRecords() {
		if !had[r.GetIncidentId()] {
			return true
		}
	}
	return false
}

// storeAlert writes an alert as changed by the current entry.
func (a *applier) storeAlert(al *irxv1.Alert) {
	if al.GetRevision() == 0 && al.GetState() == irxv1.AlertState_ALERT_STATE_OPEN {
		a.fsm.alertsRaised.Add(1)
	}
	a.fsm.alertChanges.Add(1)
	al.Revision, al.UpdateTime = a.index, a.now
	a.setProto(al, alertKey(al.GetAlertId()))
	a.set(alertRevKey(al.GetRevision(), al.GetAlertId()), nil)
	a.corr().alerts[al.GetAlertId()] = al
}

// loadAlert reads an alert as the batch so far left it; nil if none.
func (a *applier) loadAlert(id string) (*irxv1.Alert, error) {
	if al, ok := a.corr().alerts[id]; ok {
		if al == nil {
			return nil, nil
		}
		return proto.CloneOf(al), nil
	}
	al := &irxv1.Alert{}
	found, err := getProto(a.fsm.db, alertKey(id), al)
	if err != nil || !found {
		return nil, err
	}
	return al, nil
}

// acknowledgeAlert records the actor's acknowledgement of an alert.
func (a *applier) acknowledgeAlert(cmd *irxv1.Command, c *irxv1.AcknowledgeAlertCommand) *Result {
	who := cmd.GetActor().GetIdentity()
	if who == "" {
		return &Result{Err: fmt.Errorf("%w at index %d: an acknowledgement without an operator", ErrInvalidCommand, a.index)}
	}
	al, err := a.loadAlert(c.GetAlertId())
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if al == nil {
		return &Result{Err: fmt.Errorf("%w: alert %q", ErrNotFound, c.GetAlertId())}
	}
	a.del(alertRevKey(al.GetRevision(), al.GetAlertId()))
	al.AcknowledgedBy, al.AcknowledgeTime = who, a.now
	a.storeAlert(al)
	return &Result{Alert: al}
}

// updateAlertSettings stores new settings; they apply from the next change.
func (a *applier) updateAlertSettings(c *irxv1.UpdateAlertSettingsCommand) *Result {
	s := c.GetSettings()
	if err := CheckAlertSettings(s); err != nil {
		return &Result{Err: fmt.Errorf("%w at index %d: %v", ErrInvalidCommand, a.index, err)}
	}
	a.setProto(s, keyAlertSettings)
	if a.cor != nil {
		a.cor.window = s.GetWindow().AsDuration()
		a.cor.loaded = true
	}
	return &Result{AlertSettings: s}
}

// CheckAlertSettings says what is wrong with settings, naming the field.
func CheckAlertSettings(s *irxv1.AlertSettings) error {
	w := s.GetWindow()
	switch {
	case w == nil:
		return errors.New("settings.window: is required")
	case !w.IsValid() || w.AsDuration() < time.Second || w.AsDuration() > 3650*24*time.Hour:
		return errors.New("settings.window: must be between 1s and 3650 days")
	}
	return nil
}

// alertSettings returns the settings in force (the default when none were
// set).
func (f *FSM) alertSettings() (*irxv1.AlertSettings, error) {
	s := &irxv1.AlertSettings{}
	found, err := getProto(f.db, keyAlertSettings, s)
	if err != nil {
		return nil, err
	}
	if !found {
		s.Window = durationpb.New(DefaultAlertWindow)
	}
	return s, nil
}

// netBits knows which prefix lengths the index holds, per family, so an
// address looks up only those. It only grows while the database is open
// (a length no prefix has any more costs a lookup, never a miss), and is
// rebuilt when the database is opened or restored.
type netBits struct {
	v4 [33]bool
	v6 [129]bool
}

func (nb *netBits) add(p netip.Prefix) {
	if p.Addr().Is4() {
		nb.v4[p.Bits()] = true
	} else {
		nb.v6[p.Bits()] = true
	}
}

// lengths yields the prefix lengths held for addr's family.
func (nb *netBits) lengths(addr netip.Addr) func(func(int) bool) {
	bits := nb.v6[:]
	if addr.Is4() {
		bits = nb.v4[:]
	}
	return func(yield func(int) bool) {
		for i, ok := range bits {
			if ok && !yield(i) {
				return
			}
		}
	}
}

// loadSaturated reads the saturation marks: few (a value held by more
// than maxAlertRecords records), and looked up for every value of every
// change, which a point lookup in the database made a large part of a
// create's apply.
func loadSaturated(db *pebble.DB) (map[string]struct{}, error) {
	out := map[string]struct{}{}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixSaturated, UpperBound: prefixEnd(prefixSaturated)})
	if err != nil {
		return nil, fmt.Errorf("fsm: read saturated alerts: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		out[string(it.Key())] = struct{}{}
	}
	return out, it.Close()
}

// loadCorrelationMemory reads the prefix lengths and the addresses and
// names the index holds from its entries' values.
func loadCorrelationMemory(db *pebble.DB) (*netBits, *heldValues, error) {
	nb, held := &netBits{}, newHeldValues()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixCorrelation, UpperBound: prefixEnd(prefixCorrelation)})
	if err != nil {
		return nil, nil, fmt.Errorf("fsm: read correlation index: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		_, _, text, ok := parseEntryValue(it.Value())
		if !ok {
			return nil, nil, errors.Join(fmt.Errorf("fsm: malformed correlation entry %x", it.Key()), it.Close())
		}
		key := it.Key()
		if len(key) < len(prefixCorrelation)+valueKeyLen {
			return nil, nil, errors.Join(fmt.Errorf("fsm: malformed correlation key %x", key), it.Close())
		}
		// A digest, URL or e-mail address is counted by its value key
		// alone (n's kind is then the zero one, which has no order).
		n, _ := parseCanonical(text)
		held.add(n, key[len(prefixCorrelation):len(prefixCorrelation)+valueKeyLen])
		if n.Kind == record.ValueNet {
			nb.add(n.Prefix)
		}
	}
	return nb, held, it.Close()
}

// Alert returns one alert.
func (f *FSM) Alert(id string) (*irxv1.Alert, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	al := &irxv1.Alert{}
	found, err := getProto(f.db, alertKey(id), al)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: alert %q", ErrNotFound, id)
	}
	return al, nil
}

// AlertCounts returns how many alerts this node's state machine raised,
// and how many alert changes it applied, since it started.
func (f *FSM) AlertCounts() (raised, changes uint64) {
	return f.alertsRaised.Load(), f.alertChanges.Load()
}

// AlertSettings returns the settings in force.
func (f *FSM) AlertSettings() (*irxv1.AlertSettings, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.alertSettings()
}

// Alerts lists alerts, the most recently changed first; state unspecified
// lists all.
func (f *FSM) Alerts(state irxv1.AlertState, pageSize int, pageToken string) ([]*irxv1.Alert, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	pageSize = clampPageSize(pageSize)
	fp := fnv64(prefixAlertByRev) ^ uint64(state)
	upper := prefixEnd(prefixAlertByRev)
	if pageToken != "" {
		last, err := decodeToken(pageToken, fp)
		if err != nil {
			return nil, "", err
		}
		upper = last
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixAlertByRev, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("fsm: scan alerts: %w", err)
	}
	var out []*irxv1.Alert
	for valid := it.Last(); valid; valid = it.Prev() {
		if len(out) == pageSize {
			// The next page goes down from this key, included.
			return out, encodeToken(fp, keyAfter(it.Key())), it.Close()
		}
		id := string(it.Key()[len(prefixAlertByRev)+8:])
		al := &irxv1.Alert{}
		found, err := getProto(f.db, alertKey(id), al)
		if err != nil {
			return nil, "", errors.Join(err, it.Close())
		}
		if found && (state == irxv1.AlertState_ALERT_STATE_UNSPECIFIED || al.GetState() == state) {
			out = append(out, al)
		}
	}
	return out, "", it.Close()
}

// AlertsChangedAfter returns, in the order they changed, up to limit
// alerts whose last change is after revision.
func (f *FSM) AlertsChangedAfter(revision uint64, limit int) ([]*irxv1.Alert, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: alertRevKey(revision+1, ""), UpperBound: prefixEnd(prefixAlertByRev)})
	if err != nil {
		return nil, fmt.Errorf("fsm: scan alerts: %w", err)
	}
	var out []*irxv1.Alert
	for valid := it.First(); valid && len(out) < limit; valid = it.Next() {
		id := string(it.Key()[len(prefixAlertByRev)+8:])
		al := &irxv1.Alert{}
		found, err := getProto(f.db, alertKey(id), al)
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		if found {
			out = append(out, al)
		}
	}
	return out, it.Close()
}
