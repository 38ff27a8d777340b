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
// value's text. The key of a value's first holder is kept in a journal
// instead (below, "The journal of single holders"). Keys never hold a
// value itself: keys reach pebble's MANIFEST as table boundaries, which no
// compaction erases, so a value in a key would outlive the erasure of a
// withdrawn record. Containment needs order, so it is kept in memory
// instead (heldValues): every address and
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
	prefixCorJournal  = []byte("cor/j/")
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
	text := canonicalText(n)
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
	if n.Text != "" {
		return n.Text // record.Normalize makes it canonical
	}
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

// The journal of single holders. Most indicators are seen by one record
// only. A value key is a digest, so a fresh value's index key lands at a
// random place in the index: every flushed table of the index then
// overlaps every table below it, and compactions rewrote the index again
// and again (paired runs with a million distinct indicators put most of
// correlation's cost there, not in its own code). The key of a value no
// record held before therefore goes to the journal, in the order of the
// log:
//
//	cor/j/<journal position8> -> value key, incident key (uvarint length, team, ticket8),
//	                             and what its index key would hold (entryValue)
//
// where a position is the raft index of the entry and the value's number
// within it. The journal only grows at its end, so its tables are written
// once and move down the levels whole. The memory of held values keeps
// each value's position (heldCount.journal). Other records that come to
// hold the value write their keys to the index proper; the journal key
// stays while its record holds the value, so a value's holders are its
// journal key, if any, and its group in the index. Nothing is moved: a
// key copied elsewhere would leave its value behind in a table that
// erasure at rest would not know to rewrite. When the journal's record
// stops holding the value, the journal key is deleted (and erased where
// the removal asks for it). Positions are assigned in the order of the
// values' texts, so every replica writes the same keys.
const journalPosBits = 20

func journalKey(pos uint64) []byte { return cat(prefixCorJournal, u64(pos)) }

// nextJournalPos returns the position of the next journal key of the
// entry being applied; 0 when the entry has used every position (its
// keys then go to the index proper).
func (a *applier) nextJournalPos() uint64 {
	if a.index >= 1<<(64-journalPosBits) || a.journalPos >= 1<<journalPosBits-1 {
		return 0
	}
	a.journalPos++
	return a.index<<journalPosBits | uint64(a.journalPos)
}

// journalValue is the value of the journal key of n, which record id
// holds: vk, id, and entryValue(head, n).
func journalValue(vk []byte, id record.ID, head []byte, n record.Normalized) []byte {
	out := make([]byte, 0, len(vk)+binary.MaxVarintLen64+len(id.Team)+8+len(head)+len(n.Text))
	out = append(out, vk...)
	out = binary.AppendUvarint(out, uint64(len(id.Team)))
	out = append(out, id.Team...)
	out = binary.BigEndian.AppendUint64(out, id.Ticket)
	return appendEntryValue(out, head, n)
}

func parseJournalValue(raw []byte) (vk []byte, id record.ID, v []byte, ok bool) {
	if len(raw) < valueKeyLen {
		return nil, record.ID{}, nil, false
	}
	vk, rest := raw[:valueKeyLen], raw[valueKeyLen:]
	size, n := binary.Uvarint(rest)
	if n <= 0 || uint64(len(rest)-n) < size+8 {
		return nil, record.ID{}, nil, false
	}
	rest = rest[n:]
	id = record.ID{Team: string(rest[:size]), Ticket: binary.BigEndian.Uint64(rest[size:])}
	return vk, id, rest[size+8:], true
}

// setJournal writes the journal key at pos: record id holds n, whose
// value key is vk, and head is correlationValue of the record.
func (a *applier) setJournal(pos uint64, vk []byte, id record.ID, head []byte, n record.Normalized) {
	raw := journalValue(vk, id, head, n)
	a.set(journalKey(pos), raw)
	a.corr().journal[pos] = raw
}

// journalEntry reads the journal key at pos as the batch so far left it.
func (a *applier) journalEntry(pos uint64) (vk []byte, id record.ID, v []byte, ok bool) {
	c := a.corr()
	raw, inBatch := c.journal[pos]
	if !inBatch {
		got, closer, err := a.fsm.db.Get(journalKey(pos))
		if err != nil {
			a.fail(fmt.Errorf("fsm: correlation journal at %d: %w", pos, err))
			return nil, record.ID{}, nil, false
		}
		raw = bytes.Clone(got)
		_ = closer.Close()
	}
	if vk, id, v, ok = parseJournalValue(raw); !ok {
		a.fail(fmt.Errorf("fsm: malformed correlation journal entry at %d", pos))
	}
	return vk, id, v, ok
}

// journalHolds says whether the journal key at pos is record id's.
func (a *applier) journalHolds(pos uint64, id record.ID) bool {
	_, holder, _, ok := a.journalEntry(pos)
	return ok && holder == id
}

// recordValues returns the normalised values of a record version, in the
// order of their texts, each once. A withdrawn version (and a stub) holds
// none.
func recordValues(inc *irxv1.Incident) valueSet {
	if inc == nil || inc.GetWithdrawTime() != nil {
		return nil
	}
	sender := inc.GetProvenance().GetReceivedFrom()
	var out valueSet
	add := func(v string) {
		if n, ok := record.Normalize(v, sender); ok {
			out = append(out, n)
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
	slices.SortFunc(out, func(x, y record.Normalized) int { return strings.Compare(x.Text, y.Text) })
	return slices.CompactFunc(out, func(x, y record.Normalized) bool { return x.Text == y.Text })
}

// A valueSet is the values of one record version, sorted by text: a record
// holds a handful, for which a sorted slice is cheaper than a map.
type valueSet []record.Normalized

func (s valueSet) has(text string) bool {
	_, found := slices.BinarySearchFunc(s, text, func(n record.Normalized, t string) int { return strings.Compare(n.Text, t) })
	return found
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
	return appendEntryValue(make([]byte, 0, len(head)+len(n.Text)), head, n)
}

func appendEntryValue(dst, head []byte, n record.Normalized) []byte {
	dst = append(dst, head...)
	if ordered(n.Kind) {
		dst = append(dst, canonicalText(n)...)
	}
	return dst
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
	// journal holds the journal keys written by this batch, by position;
	// a nil value is a deletion.
	journal map[uint64][]byte
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
		a.cor = &correlator{overlay: corOverlay{}, journal: map[uint64][]byte{}, alerts: map[string]*irxv1.Alert{}, keys: map[string][]byte{}}
	}
	if !a.cor.loaded {
		a.cor.loaded = true
		a.cor.window = a.fsm.settings.Load().alert.GetWindow().AsDuration()
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
	// touched: the values whose alerts the change touches; grew: because
	// a record came to hold it; fresh: a value no record held before this
	// one (an alert exists only while some record holds its value, so
	// there is none to read, but one this batch made).
	type change struct {
		n           record.Normalized
		grew, fresh bool
	}
	var touched []change
	for _, n := range before {
		if after.has(n.Text) {
			if bytes.Equal(oldV, newV) {
				continue
			}
		} else {
			vk := c.valueKey(n)
			var k []byte
			if was := a.fsm.held.remove(n, vk); was.journal != 0 && (was.count == 1 || a.journalHolds(was.journal, id)) {
				k = journalKey(was.journal)
				c.journal[was.journal] = nil
				if was.count > 1 {
					a.fsm.held.setJournal(n, vk, 0)
				}
			} else {
				k = correlationKey(vk, id)
				c.put(k, nil)
			}
			a.del(k)
			if erase {
				a.erasedKeys(k)
			}
		}
		touched = append(touched, change{n: n})
	}
	// after is in the order of the texts, so every replica numbers the
	// journal keys alike.
	for _, n := range after {
		had := before.has(n.Text)
		if had && bytes.Equal(oldV, newV) {
			continue
		}
		vk := c.valueKey(n)
		if had {
			// A new report time: the value's key holds it.
			for i := range touched {
				if touched[i].n.Text == n.Text {
					touched[i].grew = true
				}
			}
			if cur := a.fsm.held.count(n, vk); cur.journal != 0 && (cur.count == 1 || a.journalHolds(cur.journal, id)) {
				a.setJournal(cur.journal, vk, id, newV, n)
				continue
			}
		} else {
			pos := a.nextJournalPos()
			was := a.fsm.held.add(n, vk, pos)
			if n.Kind == record.ValueNet {
				a.fsm.netBits.add(n.Prefix)
			}
			touched = append(touched, change{n: n, grew: true, fresh: was.count == 0})
			if was.count == 0 && pos != 0 {
				a.setJournal(pos, vk, id, newV, n)
				continue
			}
		}
		k, v := correlationKey(vk, id), entryValue(newV, n)
		a.set(k, v)
		c.put(k, v)
	}
	if len(touched) == 0 {
		return
	}
	// Recompute each alert once, in an order every replica shares.
	type anchor struct {
		n             record.Normalized
		shrank, fresh bool
	}
	var anchors []anchor
	for _, t := range touched {
		for _, an := range a.anchorsOf(t.n) {
			anchors = append(anchors, anchor{n: an, shrank: !t.grew, fresh: t.fresh && an.Text == t.n.Text})
		}
	}
	slices.SortStableFunc(anchors, func(x, y anchor) int { return strings.Compare(x.n.Text, y.n.Text) })
	for i := 0; i < len(anchors); {
		an := anchors[i]
		j := i + 1
		for ; j < len(anchors) && anchors[j].n.Text == an.n.Text; j++ {
			an.shrank = an.shrank || anchors[j].shrank
			an.fresh = an.fresh || anchors[j].fresh
		}
		a.recomputeAlert(an.n, erase, an.shrank, an.fresh)
		i = j
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

// holders returns the records that hold the value whose value key is vk
// exactly; held is what the memory of held values says of it. When this
// batch wrote all of its index keys, the database has no other and is not
// read: that is the common case of a new value, and a read of the index
// is a seek in every level of the database.
func (a *applier) holders(vk []byte, held heldCount) []member {
	if held.count == 0 {
		return nil
	}
	var out []member
	inIndex := int(held.count)
	if held.journal != 0 {
		_, id, v, ok := a.journalEntry(held.journal)
		if !ok {
			return nil
		}
		t, sender, _, ok := parseEntryValue(v)
		if !ok {
			a.fail(fmt.Errorf("fsm: malformed correlation journal entry at %d", held.journal))
			return nil
		}
		out = append(out, member{id: id, time: t, sender: sender})
		if inIndex--; inIndex == 0 {
			return out
		}
	}
	add := func(k, v []byte) {
		id, err := idFromKey(k, prefixCorrelation)
		t, sender, _, ok := parseEntryValue(v)
		if err != nil || !ok {
			a.fail(fmt.Errorf("fsm: malformed correlation entry %x", k))
			return
		}
		out = append(out, member{id: id, time: t, sender: sender})
	}
	// A value group's keys all start with it and no other group's do (a
	// group has a fixed length), so the batch's writes of it are the
	// overlay's entry for it alone.
	group := valueGroup(vk)
	written := a.corr().overlay[string(group)]
	live := 0
	for _, v := range written {
		if v != nil {
			live++
		}
	}
	if inIndex == live {
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
func (a *applier) candidates(n record.Normalized, containers []member) (out []member, exact bool) {
	vk := a.corr().valueKey(n)
	out = a.holders(vk, a.fsm.held.count(n, vk))
	exact = len(out) > 0
	out = append(out, containers...)
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

// containers lists the records that hold a prefix containing n (an
// address) or a name above n (a name).
func (a *applier) containers(n record.Normalized) []member {
	var out []member
	switch n.Kind {
	case record.ValueIP:
		addr := n.Prefix.Addr()
		for bits := range a.fsm.netBits.lengths(addr) {
			p, err := addr.Prefix(bits)
			if err != nil {
				continue
			}
			out = append(out, a.heldBy(record.Normalized{Kind: record.ValueNet, Prefix: p})...)
		}
	case record.ValueDomain:
		for _, d := range record.ParentDomains(n.Domain) {
			out = append(out, a.heldBy(record.Normalized{Kind: record.ValueDomain, Domain: d})...)
		}
	}
	return out
}

// heldBy lists the records that hold n itself. Most names above a name
// are held by none, which the memory of held values answers without the
// value key (a digest) where n has an order.
func (a *applier) heldBy(n record.Normalized) []member {
	held, ordered := a.fsm.held.countOrdered(n)
	if ordered && held.count == 0 {
		return nil
	}
	vk := a.corr().valueKey(n)
	if !ordered {
		held = a.fsm.held.count(n, vk)
	}
	return a.holders(vk, held)
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
	var buf [len("alr/sat/") + valueKeyLen]byte
	probe := append(append(buf[:0], prefixSaturated...), c.valueKey(n)...)
	_, saturated := a.fsm.saturated[string(probe)]
	if saturated && !shrank {
		return
	}

	containers := a.containers(n)
	// A value no record held before this one is held by the one record
	// now: with no record holding a container of it, it has no alert to
	// open, and none to close unless this batch made one.
	if fresh && len(containers) == 0 && (len(c.alerts) == 0 || c.alerts[AlertID(n.Text)] == nil) {
		return
	}
	satKey := bytes.Clone(probe)
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
	all, exact := a.candidates(n, containers)
	if a.err != nil {
		return
	}
	if !exact {
		// No record holds the value: neither its alert nor its mark stays
		// (a mark left behind would keep the alert of a value held again
		// from being made).
		if saturated {
			a.del(satKey)
			delete(a.fsm.saturated, string(satKey))
		}
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
	a.settingsChanged = true
	// The rest of this batch correlates with the new window, as the next
	// entry would: replicas group entries into batches differently.
	a.corr().window = s.GetWindow().AsDuration()
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

// correlationSettings are what FSM.settings holds; neither part is
// modified once loaded.
type correlationSettings struct {
	alert  *irxv1.AlertSettings
	groups []*irxv1.SharingGroup // with their keys, in name order
}

func loadCorrelationSettings(db pebble.Reader) (*correlationSettings, error) {
	s := &correlationSettings{alert: &irxv1.AlertSettings{}}
	found, err := getProto(db, keyAlertSettings, s.alert)
	if err != nil {
		return nil, err
	}
	if !found {
		s.alert.Window = durationpb.New(DefaultAlertWindow)
	}
	if s.groups, err = readGroups(db); err != nil {
		return nil, err
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
	err := scanFamily(db, prefixSaturated, func(key, _ []byte) error {
		out[string(key)] = struct{}{}
		return nil
	})
	return out, err
}

// loadCorrelationMemory reads the prefix lengths and the addresses and
// names the index and its journal hold from their entries' values.
func loadCorrelationMemory(db *pebble.DB) (*netBits, *heldValues, error) {
	nb, held := &netBits{}, newHeldValues()
	remember := func(vk, entry []byte, journal uint64) bool {
		_, _, text, ok := parseEntryValue(entry)
		if !ok {
			return false
		}
		// A digest, URL or e-mail address is counted by its value key
		// alone (n's kind is then the zero one, which has no order).
		n, _ := parseCanonical(text)
		held.add(n, vk, journal)
		if n.Kind == record.ValueNet {
			nb.add(n.Prefix)
		}
		return true
	}
	// The journal first: a value's journal position is kept by the add
	// that counts its first key.
	err := scanFamily(db, prefixCorJournal, func(key, value []byte) error {
		vk, _, entry, ok := parseJournalValue(value)
		if !ok || len(key) != len(prefixCorJournal)+8 || !remember(vk, entry, binary.BigEndian.Uint64(key[len(prefixCorJournal):])) {
			return fmt.Errorf("fsm: malformed correlation journal entry %x", key)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = scanFamily(db, prefixCorrelation, func(key, value []byte) error {
		if len(key) < len(prefixCorrelation)+valueKeyLen || !remember(key[len(prefixCorrelation):len(prefixCorrelation)+valueKeyLen], value, 0) {
			return fmt.Errorf("fsm: malformed correlation entry %x", key)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return nb, held, nil
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

// AlertSettings returns the settings in force (the default when none were
// set).
func (f *FSM) AlertSettings() (*irxv1.AlertSettings, error) {
	return proto.CloneOf(f.settings.Load().alert), nil
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
