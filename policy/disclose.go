package policy

import (
	"hash"
	"reflect"
	"strconv"
	"unsafe"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Disclose computes what the peer of c receives of inc, and why.
//
// It is a pure function: no I/O, no clock, no global state; the same record
// and policy give a byte-identical view and explanation (marshalled with
// proto.MarshalOptions{Deterministic: true}), so an audit can recompute any
// past disclosure. A nil view means nothing is disclosed; the explanation
// always says why.
//
// Memory contract: the view is built fresh where anything changes, but
// shares with inc what it forwards unchanged — strings (immutable in Go) and
// whole sub-messages and repeated fields that go out as they are (an
// attacking host, the indicator list, a timestamp). Stored incident versions
// are immutable, so this is safe for the node; a caller that wants to
// mutate inc or the view after Disclose must proto.Clone first. Disclose
// itself never writes to inc. Sharing is deliberate: cloning the forwarded
// parts of a realistic record (its attacking hosts and indicators) would
// add dozens of messages to build, and as many allocations, to every call
// (TestDiscloseAllocations holds the budget).
func Disclose(inc *irxv1.Incident, c *Compiled) (*irxv1.Incident, *irxv1.Explanation) {
	if c == nil {
		return nil, &irxv1.Explanation{IncidentId: inc.GetId(), IncidentVersion: inc.GetVersion(), Reasons: []*irxv1.Reason{{
			Code: irxv1.ReasonCode_REASON_CODE_RECORD, Message: "no compiled policy for the peer: nothing is disclosed (default deny)",
		}}}
	}
	w := c.pool.Get().(*walker)
	defer w.release()
	w.inc = inc

	ok := w.conditions()
	if !ok {
		// Withheld: the explanation and its reasons only, in one
		// allocation.
		out := &withheld{}
		out.ex.Reasons = w.takeReasons(out.reasons[:], out.rptrs[:])
		out.ex.PeerTeamId, out.ex.PolicyVersion = c.peer, c.version
		out.ex.IncidentId, out.ex.IncidentVersion = inc.GetId(), inc.GetVersion()
		return nil, &out.ex
	}
	// Disclosed: the view, its explanation, its re-share terms and its
	// reasons, in one allocation.
	out := &disclosed{}
	ex := &out.ex
	ex.Reasons = w.takeReasons(out.reasons[:], out.rptrs[:])
	ex.PeerTeamId, ex.PolicyVersion = c.peer, c.version
	ex.IncidentId, ex.IncidentVersion = inc.GetId(), inc.GetVersion()
	src, dst := unsafe.Pointer(inc), unsafe.Pointer(&out.view)
	w.walkMsg(src, c.root, inc.GetRestriction(), dst)
	ex.Disclosed = true
	ex.Fields = w.takeDecisions()
	out.reshare.Scope = w.reshare
	out.reshare.HopsLeft = w.hopsLeft
	out.reshare.MayReshare = w.hopsLeft > 0
	ex.Reshare = &out.reshare
	return &out.view, ex
}

// withheld is what Disclose allocates for a record it withholds.
type withheld struct {
	ex      irxv1.Explanation
	reasons [8]irxv1.Reason
	rptrs   [8]*irxv1.Reason
}

// disclosed is what Disclose allocates for a view. (Embedding more of the
// per-call storage here was slower in BenchmarkDisclose: memory a call does
// not use still has to be zeroed and cached.)
type disclosed struct {
	view    irxv1.Incident
	ex      irxv1.Explanation
	reshare irxv1.ReshareTerms
	reasons [8]irxv1.Reason
	rptrs   [8]*irxv1.Reason
}

// walker is the state of one Disclose call. Walkers are pooled per
// Compiled: the HMAC state and scratch buffers are reused; everything that
// ends up in a view (arena, slabs, decisions) is dropped on release and
// allocated fresh by the next call.
//
// The walker reads and writes the generated message structs through field
// offsets computed once per Compile from reflect and checked against the
// descriptors (see checkGoType), as protobuf-go's own fast path does.
// protoreflect's setters box every value (an allocation per string), which
// alone would cost more allocations than the whole call is allowed.
type walker struct {
	c   *Compiled
	mac hash.Hash // HMAC-SHA256 keyed with the peer's key
	in  []byte    // HMAC input scratch
	sum []byte    // HMAC output scratch

	inc      *irxv1.Incident
	granted  consentBits
	ntkDone  bool
	ntkHolds bool
	reshare  irxv1.ReshareScope
	hopsLeft uint32
	reasons  [maxReasons]reasonRec
	nReasons int

	frames  []frame                 // scratch: the current field path
	path    []byte                  // scratch: the current path spelt out
	decs    []decision              // scratch: decisions so far
	groups  []group                 // scratch: takeDecisions
	groupOf []int                   // scratch: takeDecisions
	cache   []cachedToken           // scratch: pseudonyms of this call
	slabs   []slab                  // holders of the per-call message slabs
	arena   []byte                  // per call: strings of the view and explanation
	ts      []timestamppb.Timestamp // per call: generalised times
	strs    []string                // per call: repeated string fields rebuilt
	ptrs    []unsafe.Pointer        // per call: repeated message fields rebuilt
	chunked bool                    // the first chunks have been handed out
}

// maxReasons bounds the record-level reasons of one call: conditions()
// records at most twelve today, and a reason that does not fit is dropped,
// so leave room for conditions yet to come.
const maxReasons = 16

// slab hands out messages of one Go type from one allocation (a []T made
// by the plan's makeSlab).
type slab struct {
	base unsafe.Pointer
	n    int
	used int
}

func (w *walker) release() {
	clear(w.in[:cap(w.in)]) // the last value pseudonymised: do not keep it around
	w.inc = nil
	w.granted, w.ntkDone, w.ntkHolds = 0, false, false
	w.reshare, w.hopsLeft = 0, 0
	w.reasons, w.nReasons = [maxReasons]reasonRec{}, 0
	w.frames, w.path = w.frames[:0], w.path[:0]
	clear(w.decs)
	w.decs = w.decs[:0]
	clear(w.cache)
	w.cache = w.cache[:0]
	clear(w.slabs)
	w.arena, w.ts, w.strs, w.ptrs, w.chunked = nil, nil, nil, nil, false
	w.c.pool.Put(w)
}

// takeReasons materialises the reasons, in rs and ps when they fit.
func (w *walker) takeReasons(rs []irxv1.Reason, ps []*irxv1.Reason) []*irxv1.Reason {
	n := w.nReasons
	if n > len(rs) {
		rs, ps = make([]irxv1.Reason, n), make([]*irxv1.Reason, n)
	}
	ps = ps[:n]
	for i := 0; i < n; i++ {
		r := &w.reasons[i]
		rs[i].Code, rs[i].Satisfied, rs[i].Message = r.code, r.ok, r.msg
		ps[i] = &rs[i]
	}
	return ps
}

// decision is a FieldDecision while the walk is under way; the messages
// are made once, at their final number, by takeDecisions.
type decision struct {
	path    string
	class   irxv1.InfoClass
	action  irxv1.DisclosureAction
	outcome irxv1.FieldOutcome
	cause   irxv1.DecisionCause
	rule    string
}

// key packs what, with the rule, makes two decisions one.
func (d *decision) key() uint64 {
	return uint64(uint8(d.class)) | uint64(uint8(d.action))<<8 | uint64(uint8(d.outcome))<<16 | uint64(uint8(d.cause))<<24
}

// takeDecisions makes the FieldDecision messages: one per distinct
// (class, action, outcome, cause, rule), in the order each first occurred,
// with its paths in record order.
func (w *walker) takeDecisions() []*irxv1.FieldDecision {
	w.groups = w.groups[:0]
	w.groupOf = w.groupOf[:0]
	for i := range w.decs {
		r := &w.decs[i]
		rk := r.key()
		g := -1
		for j := range w.groups {
			if w.groups[j].key == rk && w.decs[w.groups[j].first].rule == r.rule {
				g = j
				break
			}
		}
		if g < 0 {
			g = len(w.groups)
			w.groups = append(w.groups, group{first: i, key: rk})
		}
		w.groups[g].n++
		w.groupOf = append(w.groupOf, g)
	}
	paths := make([]string, len(w.decs))
	ds := make([]irxv1.FieldDecision, len(w.groups))
	ps := make([]*irxv1.FieldDecision, len(w.groups))
	off := 0
	for j := range w.groups {
		g := &w.groups[j]
		r, d := &w.decs[g.first], &ds[j]
		d.InfoClass, d.Action, d.Outcome, d.Cause, d.Rule = r.class, r.action, r.outcome, r.cause, r.rule
		d.Paths = paths[off : off : off+g.n]
		off += g.n
		ps[j] = d
	}
	for i := range w.decs {
		d := &ds[w.groupOf[i]]
		d.Paths = append(d.Paths, w.decs[i].path)
	}
	return ps
}

// group is one FieldDecision being assembled: its first record and the
// number of its paths.
type group struct {
	first, n int
	key      uint64
}

// decide records a decision for the current path and returns its index.
func (w *walker) decide(class irxv1.InfoClass, action irxv1.DisclosureAction, outcome irxv1.FieldOutcome, cause irxv1.DecisionCause, rule string) int {
	w.decs = append(w.decs, decision{w.pathString(), class, action, outcome, cause, rule})
	return len(w.decs) - 1
}

// decideAt records a decision for the current path at index i, before the
// decisions made beneath it since: a field's decision precedes those of
// what it holds, as the record lists them.
func (w *walker) decideAt(i int, class irxv1.InfoClass, action irxv1.DisclosureAction, outcome irxv1.FieldOutcome, cause irxv1.DecisionCause, rule string) {
	w.decide(class, action, outcome, cause, rule)
	if last := len(w.decs) - 1; i < last {
		d := w.decs[last]
		copy(w.decs[i+1:], w.decs[i:last])
		w.decs[i] = d
	}
}

// dropDecisions forgets the decisions from index i on: those beneath a
// part that is then removed whole, whose one decision says why.
func (w *walker) dropDecisions(i int) {
	clear(w.decs[i:])
	w.decs = w.decs[:i]
}

// unknownDecision records that the fields of the current message that the
// schema does not know are removed.
func (w *walker) unknownDecision() {
	m := w.push("(unknown)")
	w.decide(irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP,
		irxv1.FieldOutcome_FIELD_OUTCOME_REMOVED, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY, w.c.text.unknown)
	w.pop(m)
}

// frame is one step of the current path: a field name, or an index into
// the repeated field before it. The path is spelt out only when a
// decision needs it.
type frame struct {
	name  string
	index int // -1 for a name
}

// push appends a field name to the current path and returns the mark to
// pop back to.
func (w *walker) push(name string) int {
	w.frames = append(w.frames, frame{name, -1})
	return len(w.frames) - 1
}

func (w *walker) pushIndex(i int) int {
	w.frames = append(w.frames, frame{"", i})
	return len(w.frames) - 1
}

func (w *walker) pop(m int) { w.frames = w.frames[:m] }

// pathString is the current path as a string, e.g.
// "victim_hosts[3].addresses[0]". A field of the Incident itself is its
// name, which the plan already holds; deeper paths go into the arena.
func (w *walker) pathString() string {
	if len(w.frames) == 1 && w.frames[0].index < 0 {
		return w.frames[0].name
	}
	b := w.path[:0]
	for i, f := range w.frames {
		if f.index >= 0 {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(f.index), 10)
			b = append(b, ']')
			continue
		}
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, f.name...)
	}
	w.path = b
	return w.str(b)
}

// storage is the first chunk of everything a rebuilt part needs, in one
// allocation made when the walk first needs any of it.
type storage struct {
	arena [512]byte
	strs  [8]string
	ptrs  [16]unsafe.Pointer
}

// firstChunks hands out a storage's chunks the first time one runs out.
func (w *walker) firstChunks() bool {
	if w.chunked {
		return false
	}
	w.chunked = true
	s := &storage{}
	w.arena, w.strs, w.ptrs = s.arena[:0], s.strs[:], s.ptrs[:]
	return true
}

// grow makes room for n more bytes in the arena without moving what is
// already there: a full arena is replaced, never appended to in place, so
// strings already handed out keep pointing at bytes nobody writes again.
func (w *walker) grow(n int) {
	if cap(w.arena)-len(w.arena) < n && (!w.firstChunks() || cap(w.arena) < n) {
		w.arena = make([]byte, 0, max(n, 512))
	}
}

// str copies b into the arena and returns it as a string.
func (w *walker) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	w.grow(len(b))
	start := len(w.arena)
	w.arena = append(w.arena, b...)
	return w.since(start)
}

// since returns the arena bytes from start as a string. The bytes are never
// written again (see grow), which is what makes the conversion without a
// copy sound, as in strings.Builder.
func (w *walker) since(start int) string {
	n := len(w.arena) - start
	if n == 0 {
		return ""
	}
	return unsafe.String(&w.arena[start], n)
}

// newMsg returns a new zero message of mp's type from the call's slab.
// Generated messages are plain structs whose zero value is ready to use,
// so they can live in one []T, a typed array (the collector knows its
// pointers); hint sizes a new slab.
func (w *walker) newMsg(mp *msgPlan, hint int) unsafe.Pointer {
	s := w.ensure(mp, 1, hint)
	p := unsafe.Add(s.base, uintptr(s.used)*mp.size)
	s.used++
	return p
}

// ensure makes room for need messages of mp's type, allocating a slab of
// max(need, hint) when there is not.
func (w *walker) ensure(mp *msgPlan, need, hint int) *slab {
	if w.slabs == nil {
		w.slabs = make([]slab, w.c.nSlabs)
	}
	s := &w.slabs[mp.slab]
	if s.n-s.used < need {
		n := max(need, hint)
		s.base, s.n, s.used = mp.makeSlab(n), n, 0
	}
	return s
}

// reserve makes room, in one allocation per type, for the parts held in
// lists by the elements about to be rebuilt (the services of the victim
// hosts, say), which would otherwise each get their own slab.
func (w *walker) reserve(mp *msgPlan, elems []unsafe.Pointer) {
	for i := range mp.fields {
		f := &mp.fields[i]
		if f.kind != kindMessage || !f.list {
			continue
		}
		total := 0
		for _, e := range elems {
			if e != nil {
				total += at[sliceHeader](e, f.off).len
			}
		}
		if total > 1 {
			w.ensure(f.msg, total, total)
		}
	}
}

func (w *walker) newTimestamp(seconds int64, nanos int32) *timestamppb.Timestamp {
	if len(w.ts) == 0 {
		w.ts = make([]timestamppb.Timestamp, 8)
	}
	t := &w.ts[0]
	w.ts = w.ts[1:]
	t.Seconds, t.Nanos = seconds, nanos
	return t
}

// strings returns an empty slice with room for n strings, carved from the
// call's string slab; its capacity is exactly n, so appending to it never
// reaches another field's strings.
func (w *walker) strings(n int) []string {
	if len(w.strs) < n && (!w.firstChunks() || len(w.strs) < n) {
		w.strs = make([]string, max(n, 8))
	}
	out := w.strs[0:0:n]
	w.strs = w.strs[n:]
	return out
}

// pointers is strings for repeated message fields: a []*T has the layout of
// a []unsafe.Pointer, and the array is typed as pointers for the collector.
func (w *walker) pointers(n int) []unsafe.Pointer {
	if len(w.ptrs) < n && (!w.firstChunks() || len(w.ptrs) < n) {
		w.ptrs = make([]unsafe.Pointer, max(n, 16))
	}
	out := w.ptrs[0:0:n]
	w.ptrs = w.ptrs[n:]
	return out
}

// Field access by offset. p is a pointer to a generated message struct and
// off a field offset that checkGoType verified for the field's Go type.

func at[T any](p unsafe.Pointer, off uintptr) *T { return (*T)(unsafe.Add(p, off)) }

// sliceHeader is the layout of every Go slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// populated is proto3 presence for the Go kinds of the schema: a non-zero
// word at the field's presence offset (a string's or slice's length, a
// pointer, a number, a boolean), as plan.go computed it.
func populated(p unsafe.Pointer, f *fieldPlan) bool {
	q := unsafe.Add(p, f.presOff)
	switch f.presSize {
	case 8:
		return *(*uint64)(q) != 0
	case 4:
		return *(*uint32)(q) != 0
	}
	return *(*uint8)(q) != 0
}

// share copies a field's value from src to dst as it is: strings and the
// headers of slices and pointers are copied, what they point to is shared.
func share(dst, src unsafe.Pointer, f *fieldPlan) {
	switch f.goKind {
	case reflect.String:
		*at[string](dst, f.off) = *at[string](src, f.off)
	case reflect.Slice:
		*at[sliceHeader](dst, f.off) = *at[sliceHeader](src, f.off)
	case reflect.Pointer:
		*at[unsafe.Pointer](dst, f.off) = *at[unsafe.Pointer](src, f.off)
	case reflect.Bool:
		*at[bool](dst, f.off) = *at[bool](src, f.off)
	case reflect.Int32, reflect.Uint32:
		*at[uint32](dst, f.off) = *at[uint32](src, f.off)
	case reflect.Int64, reflect.Uint64:
		*at[uint64](dst, f.off) = *at[uint64](src, f.off)
	}
}

func hasUnknown(p unsafe.Pointer, mp *msgPlan) bool {
	return mp.hasUnknown && at[sliceHeader](p, mp.unknownOff).len > 0
}

func (w *walker) tsHasUnknown(t unsafe.Pointer) bool {
	return w.c.tsHasUnknown && at[sliceHeader](t, w.c.tsUnknownOff).len > 0
}

// walkMsg fills dst (a new, empty message) from src under mp. It reports
// whether anything changed and whether the result may be kept: a part the
// rules left without what the record validator requires is not (one that
// came without it is no worse for the walk, and is kept as it came, as the
// parts shared unwalked are).
func (w *walker) walkMsg(src unsafe.Pointer, mp *msgPlan, r irxv1.Restriction, dst unsafe.Pointer) (changed, keep bool) {
	if hasUnknown(src, mp) {
		w.unknownDecision()
		changed = true
	}
	for i := range mp.fields {
		f := &mp.fields[i]
		if !populated(src, f) {
			continue
		}
		if f.copyAsIs {
			share(dst, src, f)
			continue
		}
		if w.field(f, src, dst, r) != kept {
			changed = true
		}
	}
	return changed, complete(dst, mp) || !complete(src, mp)
}

// complete applies the record validator's completeness rules to a rebuilt
// part.
func complete(p unsafe.Pointer, mp *msgPlan) bool {
	for _, i := range mp.requireAll {
		if !populated(p, &mp.fields[i]) {
			return false
		}
	}
	if len(mp.requireAny) == 0 {
		return true
	}
	for _, i := range mp.requireAny {
		if populated(p, &mp.fields[i]) {
			return true
		}
	}
	return false
}

// field handles one populated field: it writes the disclosed value into dst
// (or leaves it unset) and records a decision where the explanation needs
// one: at class boundaries, and wherever a value is removed.
func (w *walker) field(f *fieldPlan, src, dst unsafe.Pointer, r irxv1.Restriction) irxv1.FieldOutcome {
	m := w.push(f.name)
	dec := -1
	if f.boundary {
		dec = w.decide(f.class, f.action, kept, f.cause, f.rule)
	}
	beneath := len(w.decs)
	oc, cause, rule := w.value(f, src, dst, r)
	switch {
	case dec >= 0:
		d := &w.decs[dec]
		d.outcome = oc
		if cause != 0 {
			d.cause, d.rule = cause, rule
		}
	case oc == removed:
		w.decideAt(beneath, f.class, f.action, oc, cause, rule)
	}
	w.pop(m)
	return oc
}

const (
	kept    = irxv1.FieldOutcome_FIELD_OUTCOME_KEPT
	changed = irxv1.FieldOutcome_FIELD_OUTCOME_CHANGED
	removed = irxv1.FieldOutcome_FIELD_OUTCOME_REMOVED
)

// value applies the field's action and consent gate. cause and rule are set
// when they differ from the field's class rule.
func (w *walker) value(f *fieldPlan, src, dst unsafe.Pointer, r irxv1.Restriction) (irxv1.FieldOutcome, irxv1.DecisionCause, string) {
	switch {
	case f.placeholder && f.action == irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP:
		*at[*irxv1.Taxonomy](dst, f.off) = &irxv1.Taxonomy{Class: placeholderTaxonomyClass, Type: placeholderTaxonomyType}
		return changed, irxv1.DecisionCause_DECISION_CAUSE_PLACEHOLDER, w.c.text.placeholder[classIndex(f.class)]
	case f.action == irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP:
		return removed, f.cause, f.rule
	case f.gate != 0 && w.granted&f.gate == 0:
		return removed, irxv1.DecisionCause_DECISION_CAUSE_CONSENT, w.c.text.gate[f.gate]
	case f.kind == kindMessage && f.list:
		return w.messageList(f, src, dst, r)
	case f.kind == kindMessage:
		return w.message(f, src, dst, r)
	case f.list:
		return w.leafList(f, src, dst)
	}
	return w.leaf(f, src, dst)
}

// admits applies a part's restriction: its own, or the inherited r. It
// returns the part's effective restriction.
func (w *walker) admits(e unsafe.Pointer, mp *msgPlan, r irxv1.Restriction) (irxv1.Restriction, bool) {
	if !mp.hasRestriction {
		return r, true
	}
	own := *at[irxv1.Restriction](e, mp.restrictionOff)
	if own == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		return r, true // the enclosing part was admitted with r
	}
	return own, w.permitted(own)
}

func (w *walker) restrictionRule(e unsafe.Pointer, mp *msgPlan, r irxv1.Restriction) string {
	own := *at[irxv1.Restriction](e, mp.restrictionOff)
	if own < irxv1.Restriction_RESTRICTION_UNSPECIFIED || own > irxv1.Restriction_RESTRICTION_PRIVATE {
		return "restriction " + strconv.Itoa(int(own)) + " is not a restriction; the part is not disclosed"
	}
	if own == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		return w.c.text.partRestriction[1][r]
	}
	return w.c.text.partRestriction[0][own]
}

// unchanged reports whether the part at e would come out of the walk
// exactly as it is, so the view can share it: nothing in it is transformed,
// gated, restricted away, of another class, or unknown to the schema.
func (w *walker) unchanged(e unsafe.Pointer, mp *msgPlan, r irxv1.Restriction) bool {
	if e == nil || hasUnknown(e, mp) {
		return false
	}
	for _, i := range mp.checks {
		f := &mp.fields[i]
		if !populated(e, f) {
			continue
		}
		if f.boundary || f.gate != 0 && w.granted&f.gate == 0 {
			return false
		}
		if !f.identity {
			if f.codeChecked && isCode(e, f) {
				continue
			}
			return false
		}
		switch f.kind {
		case kindTime:
			if w.tsHasUnknown(*at[unsafe.Pointer](e, f.off)) {
				return false
			}
		case kindMessage:
			if !f.list {
				c := *at[unsafe.Pointer](e, f.off)
				eff, ok := w.admits(c, f.msg, r)
				if !ok || !w.unchanged(c, f.msg, eff) {
					return false
				}
				continue
			}
			for _, c := range *at[[]unsafe.Pointer](e, f.off) {
				if c == nil {
					return false
				}
				eff, ok := w.admits(c, f.msg, r)
				if !ok || !w.unchanged(c, f.msg, eff) {
					return false
				}
			}
		}
	}
	return true
}

func (w *walker) message(f *fieldPlan, src, dst unsafe.Pointer, r irxv1.Restriction) (irxv1.FieldOutcome, irxv1.DecisionCause, string) {
	mp := f.msg
	sv := *at[unsafe.Pointer](src, f.off)
	eff, ok := w.admits(sv, mp, r)
	if !ok {
		return removed, irxv1.DecisionCause_DECISION_CAUSE_RESTRICTION, w.restrictionRule(sv, mp, r)
	}
	if w.unchanged(sv, mp, eff) {
		*at[unsafe.Pointer](dst, f.off) = sv
		return kept, 0, ""
	}
	nv := w.newMsg(mp, 1)
	beneath := len(w.decs)
	ch, keep := w.walkMsg(sv, mp, eff, nv)
	if !keep {
		w.dropDecisions(beneath)
		return removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE, mp.incompleteRule
	}
	*at[unsafe.Pointer](dst, f.off) = nv
	if !ch {
		return kept, 0, ""
	}
	return changed, 0, ""
}

func (w *walker) messageList(f *fieldPlan, src, dst unsafe.Pointer, r irxv1.Restriction) (irxv1.FieldOutcome, irxv1.DecisionCause, string) {
	mp := f.msg
	list := *at[[]unsafe.Pointer](src, f.off)
	n := len(list)
	// The common case: every element is admitted and goes out as it is,
	// so the view shares the list.
	first := 0
	for ; first < n; first++ {
		e := list[first]
		if e == nil {
			break
		}
		eff, ok := w.admits(e, mp, r)
		if !ok || !w.unchanged(e, mp, eff) {
			break
		}
	}
	if first == n {
		*at[[]unsafe.Pointer](dst, f.off) = list
		return kept, 0, ""
	}
	out := append(w.pointers(n), list[:first]...)
	w.reserve(mp, list[first:])
	outcome := changed // elements are rebuilt or removed from here on
	var cause irxv1.DecisionCause
	var rule string
	rebuilt := false
	for j := first; j < n; j++ {
		e := list[j]
		if e == nil {
			continue
		}
		m := w.pushIndex(j)
		eff, ok := w.admits(e, mp, r)
		switch {
		case !ok:
			cause, rule = irxv1.DecisionCause_DECISION_CAUSE_RESTRICTION, w.restrictionRule(e, mp, r)
			w.decide(f.class, f.action, removed, cause, rule)
		case j > first && w.unchanged(e, mp, eff):
			out = append(out, e)
		default:
			nv := w.newMsg(mp, n-j) // room for the rest of the list
			beneath := len(w.decs)
			ch, keep := w.walkMsg(e, mp, eff, nv)
			if !keep {
				w.dropDecisions(beneath)
				cause, rule = irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE, mp.incompleteRule
				w.decide(f.class, f.action, removed, cause, rule)
				break
			}
			rebuilt = rebuilt || ch
			out = append(out, nv)
		}
		w.pop(m)
	}
	if len(out) == 0 {
		return removed, cause, rule
	}
	if len(out) == n && !rebuilt {
		outcome = kept // rebuilt copies identical to the input
	}
	*at[[]unsafe.Pointer](dst, f.off) = out
	return outcome, 0, ""
}

// leaf handles a single non-message value.
func (w *walker) leaf(f *fieldPlan, src, dst unsafe.Pointer) (irxv1.FieldOutcome, irxv1.DecisionCause, string) {
	switch f.kind {
	case kindScalar:
		share(dst, src, f)
		return kept, 0, ""
	case kindCode:
		if f.codeChecked && !isCode(src, f) {
			return removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE, w.c.text.notACode[classIndex(f.class)]
		}
		share(dst, src, f)
		return kept, 0, ""
	case kindMagnitude:
		if f.action == irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE && firstDigitOnly(dst, src, f) {
			return changed, 0, ""
		}
		share(dst, src, f)
		return kept, 0, ""
	case kindTime:
		tp := *at[unsafe.Pointer](src, f.off)
		t := (*timestamppb.Timestamp)(tp)
		sec, nanos := t.GetSeconds(), t.GetNanos()
		unknown := w.tsHasUnknown(tp)
		if unknown {
			w.unknownDecision()
		}
		if f.action == irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE {
			sec, nanos = floorDay(sec), 0
		}
		if unknown || sec != t.GetSeconds() || nanos != t.GetNanos() {
			*at[*timestamppb.Timestamp](dst, f.off) = w.newTimestamp(sec, nanos)
			return changed, 0, ""
		}
		share(dst, src, f)
		return kept, 0, ""
	case kindASN:
		switch f.action {
		case irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE:
			*at[uint32](dst, f.off) = w.asnToken(f.class, *at[uint32](src, f.off))
			return changed, 0, ""
		case irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE:
			return removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE, w.c.text.unrepresentable[classIndex(f.class)]
		}
		share(dst, src, f)
		return kept, 0, ""
	}
	if f.action == irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD {
		share(dst, src, f)
		return kept, 0, ""
	}
	in := *at[string](src, f.off)
	out, ok := w.transform(f, src, in)
	if !ok {
		return removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE, w.c.text.unrepresentable[classIndex(f.class)]
	}
	*at[string](dst, f.off) = out
	if out == in {
		return kept, 0, ""
	}
	return changed, 0, ""
}

// leafList handles a repeated string field (checkGoType admits no other
// repeated scalar).
func (w *walker) leafList(f *fieldPlan, src, dst unsafe.Pointer) (irxv1.FieldOutcome, irxv1.DecisionCause, string) {
	if f.identity {
		share(dst, src, f)
		return kept, 0, ""
	}
	list := *at[[]string](src, f.off)
	out := w.strings(len(list))
	outcome := kept
	var cause irxv1.DecisionCause
	var rule string
	for j, in := range list {
		v, ok := w.transform(f, src, in)
		if !ok {
			outcome = changed
			cause, rule = irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE, w.c.text.unrepresentable[classIndex(f.class)]
			if len(list) > 1 {
				m := w.pushIndex(j)
				w.decide(f.class, f.action, removed, cause, rule)
				w.pop(m)
			}
			continue
		}
		if v != in {
			outcome = changed
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return removed, cause, rule
	}
	*at[[]string](dst, f.off) = out
	return outcome, 0, ""
}

// isCode reports whether the kindCode field f of the message at p holds a
// code of its vocabulary: what the record validator accepts there.
func isCode(p unsafe.Pointer, f *fieldPlan) bool {
	v := *at[string](p, f.off)
	switch f.vocab {
	case vocabLanguage:
		return record.ValidLanguageTag(v)
	case vocabMediaType:
		return record.ValidMediaType(v)
	case vocabCurrency:
		return record.ValidCurrency(v)
	case vocabCountry:
		return record.ValidCountry(v)
	case vocabTaxonomyClass:
		return record.ValidTaxonomyClass(v)
	case vocabTaxonomyType:
		return record.ValidTaxonomy(*at[string](p, f.siblingOff), v)
	}
	return false
}

// firstDigitOnly writes the magnitude f of src to dst cut to its first
// significant digit, toward zero (1,250,000 -> 1,000,000; -47 -> -40),
// and reports whether that changed it. Cutting, not rounding: the result
// never has more digits than the value, so it cannot overflow, and it says
// "at least this much".
func firstDigitOnly(dst, src unsafe.Pointer, f *fieldPlan) bool {
	switch f.goKind {
	case reflect.Int64:
		v := *at[int64](src, f.off)
		*at[int64](dst, f.off) = cutSigned(v)
		return *at[int64](dst, f.off) != v
	case reflect.Int32:
		v := *at[int32](src, f.off)
		*at[int32](dst, f.off) = int32(cutSigned(int64(v)))
		return *at[int32](dst, f.off) != v
	case reflect.Uint64:
		v := *at[uint64](src, f.off)
		*at[uint64](dst, f.off) = firstDigit(v)
		return *at[uint64](dst, f.off) != v
	case reflect.Uint32:
		v := *at[uint32](src, f.off)
		*at[uint32](dst, f.off) = uint32(firstDigit(uint64(v)))
		return *at[uint32](dst, f.off) != v
	}
	return false
}

func cutSigned(v int64) int64 {
	if v < 0 {
		// -v overflows for the smallest int64, but as uint64 it is the
		// right magnitude.
		return -int64(firstDigit(uint64(-v)))
	}
	return int64(firstDigit(uint64(v)))
}

// firstDigit is v with every digit after its first replaced by zero.
func firstDigit(v uint64) uint64 {
	p := uint64(1)
	for v/p >= 10 {
		p *= 10
	}
	return v - v%p
}

// floorDay is the UTC midnight at or before a Unix time.
func floorDay(sec int64) int64 {
	d := sec % 86400
	if d < 0 {
		d += 86400
	}
	return sec - d
}
