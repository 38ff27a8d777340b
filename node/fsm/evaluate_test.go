package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// fillMessage sets every field of m to a value that is not its default,
// recursing depth levels into messages, so a test sees every field of the
// schema.
func fillMessage(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !fd.HasPresence() {
			continue
		}
		switch {
		case fd.IsMap():
			continue
		case fd.IsList():
			list := m.Mutable(fd).List()
			if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
				if depth > 0 {
					el := list.NewElement()
					fillMessage(el.Message(), depth-1)
					list.Append(el)
				}
				continue
			}
			list.Append(scalarValue(fd))
		case fd.Kind() == protoreflect.MessageKind:
			if depth > 0 {
				fillMessage(m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, scalarValue(fd))
		}
	}
}

func scalarValue(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(fd.Enum().Values().Get(fd.Enum().Values().Len() - 1).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(7)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(7)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(7)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(7)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(0.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(0.5)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("x")
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{1})
	}
	panic(fmt.Sprintf("no value for %v", fd.Kind()))
}

func TestWithoutOutputOnlyCopiesEveryField(t *testing.T) {
	inc := &irxv1.Incident{}
	fillMessage(inc.ProtoReflect(), 2)
	inc.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 1))
	got := withoutOutputOnly(inc)
	fields := inc.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch has := got.ProtoReflect().Has(fd); {
		case record.IsOutputOnly(fd.Name()) && has:
			t.Errorf("%s is output only, and was copied", fd.Name())
		case !record.IsOutputOnly(fd.Name()) && !has:
			t.Errorf("%s was not copied: withoutOutputOnly must name every field of irx.v1.Incident", fd.Name())
		}
	}
	want := proto.Clone(inc).(*irxv1.Incident)
	record.ClearOutputOnly(want)
	if !proto.Equal(got, want) {
		t.Errorf("copy differs from the original without its output-only fields")
	}
}

// CompleteCreate leaves the proposal as it was: callers may still hold it.
func TestCompleteCreateLeavesItsInput(t *testing.T) {
	proposed := benchIncident()
	proposed.Id, proposed.Version = "cert-z:9", 4
	before := proto.Clone(proposed)
	inc, data, err := CompleteCreate(team, proposed, timestamppb.New(t0))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(proposed, before) {
		t.Error("CompleteCreate changed its input")
	}
	var decoded irxv1.Incident
	if err := proto.Unmarshal(data, &decoded); err != nil || !proto.Equal(&decoded, inc) {
		t.Errorf("encoding decodes to %v (%v), want %v", &decoded, err, inc)
	}
	if inc.GetId() != "" || inc.GetVersion() != 1 || inc.GetStatus() != irxv1.Status_STATUS_NEW ||
		!proto.Equal(inc.GetCreateTime(), timestamppb.New(t0)) || inc.GetProvenance().GetOriginTeam() != team {
		t.Errorf("completed incident %v", inc)
	}
}

// drawMessage sets random fields of m, with random values, recursing
// depth levels.
func drawMessage(t *rapid.T, m protoreflect.Message, depth int, label string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsMap() || !rapid.Bool().Draw(t, label+"."+string(fd.Name())) {
			continue
		}
		name := label + "." + string(fd.Name())
		switch {
		case fd.IsList():
			list := m.Mutable(fd).List()
			for range rapid.IntRange(0, 3).Draw(t, name+".len") {
				if fd.Kind() == protoreflect.MessageKind {
					if depth == 0 {
						break
					}
					el := list.NewElement()
					drawMessage(t, el.Message(), depth-1, name)
					list.Append(el)
					continue
				}
				list.Append(drawScalar(t, fd, name))
			}
		case fd.Kind() == protoreflect.MessageKind:
			if depth > 0 {
				drawMessage(t, m.Mutable(fd).Message(), depth-1, name)
			}
		default:
			m.Set(fd, drawScalar(t, fd, name))
		}
	}
}

func drawScalar(t *rapid.T, fd protoreflect.FieldDescriptor, label string) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(rapid.String().Draw(t, label))
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(rapid.Int32Range(0, 40).Draw(t, label)))
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(rapid.Int64().Draw(t, label))
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(rapid.Int32().Draw(t, label))
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(rapid.Uint32().Draw(t, label))
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(rapid.Uint64().Draw(t, label))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(rapid.SliceOf(rapid.Byte()).Draw(t, label))
	}
	return scalarValue(fd)
}

// The stored encoding of an incident is its id field and then the encoding
// of the rest: what makes the bytes a replica stores for an evaluated
// create the bytes one that completes the incident itself stores.
func TestStoredEncodingIsIDThenRest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		inc := &irxv1.Incident{}
		drawMessage(t, inc.ProtoReflect(), 3, "incident")
		inc.Id = ""
		rest, err := marshal.Marshal(inc)
		if err != nil {
			t.Skip("not encodable (invalid UTF-8):", err)
		}
		id := record.ID{Team: team, Ticket: rapid.Uint64Min(1).Draw(t, "ticket")}.String()
		inc.Id = id
		whole, err := marshal.Marshal(inc)
		if err != nil {
			t.Fatal(err)
		}
		if got := withID(id, rest); !bytes.Equal(got, whole) {
			t.Fatalf("id + rest:\n%x\nwhole encoding:\n%x", got, whole)
		}
	})
}

// drawValidIncident is a valid record with random content.
func drawValidIncident(t *rapid.T) *irxv1.Incident {
	inc := benchIncident()
	inc.Tlp = rapid.SampledFrom([]irxv1.Tlp{irxv1.Tlp_TLP_CLEAR, irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_AMBER, irxv1.Tlp_TLP_RED}).Draw(t, "tlp")
	inc.Status = rapid.SampledFrom([]irxv1.Status{irxv1.Status_STATUS_UNSPECIFIED, irxv1.Status_STATUS_NEW, irxv1.Status_STATUS_RESOLVED}).Draw(t, "status")
	inc.Taxonomy = rapid.SampledFrom([]*irxv1.Taxonomy{
		{Class: "intrusions", Type: "system-compromise"}, {Class: "fraud", Type: "phishing"}, {Class: "vulnerable", Type: "weak-crypto"},
	}).Draw(t, "taxonomy")
	inc.Descriptions[0].Text = rapid.StringMatching(`[a-z ]{0,200}`).Draw(t, "text")
	if rapid.Bool().Draw(t, "report time") {
		inc.ReportTime = timestamppb.New(t0.Add(-time.Duration(rapid.IntRange(0, 1e6).Draw(t, "age")) * time.Second))
	}
	inc.Indicators = inc.Indicators[:rapid.IntRange(0, len(inc.Indicators)).Draw(t, "indicators")]
	if rapid.Bool().Draw(t, "output only") { // clients may send them; they are dropped
		inc.Id, inc.Version = "cert-z:9", 4
	}
	if rapid.Bool().Draw(t, "invalid") {
		inc.Tlp = irxv1.Tlp_TLP_UNSPECIFIED
	}
	return inc
}

// Three replicas apply the same creates: one from a leader that does not
// evaluate them, one from a leader that does, and one that decodes the
// evaluating leader's entries whole (as a replica does for an entry it
// does not parse, and as one that predates evaluated creates does). All
// three end in the same state.
func TestEvaluatedCreatesStoreWhatReplicasWould(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		plain, evaluated, whole := newHarness(t), newHarness(t), newHarness(t)
		for e := range rapid.IntRange(1, 6).Draw(rt, "entries") {
			now := timestamppb.New(t0.Add(time.Duration(e) * time.Second))
			var plainCmds, evaluatedCmds []*irxv1.Command
			for i := range rapid.IntRange(1, 5).Draw(rt, "commands") {
				c := &irxv1.CreateIncidentCommand{Incident: drawValidIncident(rt)}
				switch rapid.IntRange(0, 2).Draw(rt, "request id") {
				case 1:
					c.RequestId, c.FreshRequestId = fmt.Sprintf("irx-%d-%d", e, i), true
				case 2:
					c.RequestId = rapid.SampledFrom([]string{"client-1", "client-2"}).Draw(rt, "client id")
				}
				plainCmds = append(plainCmds, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: proto.Clone(c).(*irxv1.CreateIncidentCommand)}})
				_, data, err := CompleteCreate(team, c.GetIncident(), now)
				var verr *record.ValidationError
				if errors.As(err, &verr) {
					continue // the evaluating leader answers it and proposes nothing
				}
				if err != nil {
					rt.Fatal(err)
				}
				evaluatedCmds = append(evaluatedCmds, EvaluatedCreate(c, data))
			}
			asEntry := func(cmds []*irxv1.Command) *irxv1.Command {
				if len(cmds) == 1 {
					return &irxv1.Command{ProposeTime: now, Kind: cmds[0].Kind}
				}
				return &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}}
			}
			plain.apply(plain.command(asEntry(plainCmds)))
			if len(evaluatedCmds) == 0 {
				// Keep the raft indexes in step.
				evaluated.apply(evaluated.command(&irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}))
				whole.apply(whole.command(&irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}))
				continue
			}
			l := evaluated.command(asEntry(evaluatedCmds))
			if _, ok := parseEntry(l.Data); !ok {
				rt.Fatal("the evaluating leader's entry is not read by parseEntry")
			}
			evaluated.apply(l)
			// A field parseEntry does not know makes it decode the entry whole.
			w := whole.entry(raft.LogCommand, protowire.AppendVarint(protowire.AppendTag(bytes.Clone(l.Data), 999, protowire.VarintType), 1))
			if _, ok := parseEntry(w.Data); ok {
				rt.Fatal("parseEntry read an entry with an unknown field")
			}
			whole.apply(w)
		}
		p, e, w := contentDigest(t, plain.f), contentDigest(t, evaluated.f), contentDigest(t, whole.f)
		if p != e || p != w {
			rt.Fatalf("states differ: plain %x, evaluated %x, decoded whole %x", p[:6], e[:6], w[:6])
		}
		if plain.f.LastTicket() != evaluated.f.LastTicket() || plain.f.FeedSequence() != evaluated.f.FeedSequence() {
			rt.Fatalf("counters differ: %v %v", countersOf(plain.f), countersOf(evaluated.f))
		}
	})
}

// An evaluated create's result is the stored bytes, which decode to the
// stored incident; bytes a leader should never send (they do not parse)
// store nothing.
func TestEvaluatedCreateResult(t *testing.T) {
	h := newHarness(t)
	now := h.now()
	inc, data, err := CompleteCreate(team, newIncident(), now)
	if err != nil {
		t.Fatal(err)
	}
	res := h.apply(h.command(&irxv1.Command{ProposeTime: now, Kind: EvaluatedCreate(&irxv1.CreateIncidentCommand{}, data).Kind}))
	inc.Id = idOf(1)
	if created, err := res.Created(); res.Err != nil || err != nil || !proto.Equal(created, inc) {
		t.Fatalf("result %+v (%v), want %v", res, err, inc)
	}
	stored, err := h.f.Get(idOf(1), 0)
	if err != nil || !proto.Equal(stored, inc) {
		t.Fatalf("stored %v (%v), want %v", stored, err, inc)
	}
	if want, _ := marshal.Marshal(inc); !bytes.Equal(res.Encoded, want) {
		t.Errorf("result bytes are not the stored record")
	}
	before := contentDigest(t, h.f)
	bad := EvaluatedCreate(&irxv1.CreateIncidentCommand{}, []byte{0xff})
	if res := h.apply(h.command(bad)); !errors.Is(res.Err, ErrInvalidCommand) || h.f.LastTicket() != 1 || contentDigest(t, h.f) != before {
		t.Errorf("malformed evaluated create: %v, last ticket %d", res.Err, h.f.LastTicket())
	}
}

// FuzzParseEntry: whatever parseEntry reads, proto.Unmarshal reads the
// same way, except that an evaluated create's incident is the leader's
// encoding, which parseEntry leaves as it is: where the decoder refuses an
// entry parseEntry read, one of those incidents is what it refuses.
func FuzzParseEntry(f *testing.F) {
	now := timestamppb.New(t0)
	_, data, err := CompleteCreate(team, newIncident(), now)
	if err != nil {
		f.Fatal(err)
	}
	one := &irxv1.Command{ProposeTime: now, Kind: EvaluatedCreate(&irxv1.CreateIncidentCommand{RequestId: "irx-1", FreshRequestId: true}, data).Kind}
	batch := &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: []*irxv1.Command{
		EvaluatedCreate(&irxv1.CreateIncidentCommand{RequestId: "client", RequestDigest: make([]byte, 32)}, data), createCmd(newIncident(), "r"),
		{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}},
	}}}}
	feed := &irxv1.ApplyPeerFeedCommand{PeerTeamId: "cert-z", Cursor: 3, ViewsChecked: true, Items: []*irxv1.FeedItem{
		viewItem(1, peerView(1)), withdrawalItem(2, "cert-z:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_UNSPECIFIED), viewItem(3, peerView(2)),
	}}
	checked := &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: feed}}
	checkedInBatch := &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: []*irxv1.Command{
		{Kind: checked.Kind}, createCmd(newIncident(), "r"),
	}}}}
	for _, c := range []*irxv1.Command{one, batch, createCmd(newIncident(), ""), checked, checkedInBatch} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := parseEntry(b)
		if !ok {
			return
		}
		var cmd irxv1.Command
		if err := proto.Unmarshal(b, &cmd); err != nil {
			for _, c := range e.commands {
				if c.evaluated != nil && proto.Unmarshal(c.evaluated.incident, &irxv1.Incident{}) != nil {
					return
				}
				for i, partial := range c.partial {
					if partial && proto.Unmarshal(c.views[i], &irxv1.Incident{}) != nil {
						return
					}
				}
			}
			t.Fatalf("parseEntry read what proto.Unmarshal refuses: %v", err)
		}
		if !proto.Equal(e.proposeTime, cmd.GetProposeTime()) {
			t.Fatalf("propose time %v, decoded %v", e.proposeTime, cmd.GetProposeTime())
		}
		subs := []*irxv1.Command{&cmd}
		if e.batch {
			subs = cmd.GetBatch().GetCommands()
			if cmd.GetBatch() == nil {
				t.Fatal("parseEntry saw a batch the decoder does not")
			}
		}
		if len(subs) != len(e.commands) {
			t.Fatalf("%d commands, decoded %d", len(e.commands), len(subs))
		}
		for i, c := range e.commands {
			if c.cmd != nil {
				if c.partial != nil {
					c.cmd = wholeViews(t, c)
				}
				if !proto.Equal(c.cmd, subs[i]) {
					t.Fatalf("command %d: %v, decoded %v", i, c.cmd, subs[i])
				}
				continue
			}
			want := subs[i].GetCreateIncident()
			var inc irxv1.Incident
			err := proto.Unmarshal(c.evaluated.incident, &inc)
			if !want.GetEvaluated() || err != nil || !proto.Equal(&inc, want.GetIncident()) ||
				c.evaluated.requestID != want.GetRequestId() || c.evaluated.fresh != want.GetFreshRequestId() ||
				!bytes.Equal(c.evaluated.digest, want.GetRequestDigest()) {
				t.Fatalf("command %d: evaluated create %+v, decoded %v", i, c.evaluated, want)
			}
		}
	})
}

// wholeViews is c, a checked peer feed as parseCheckedFeed read it, with
// each partial incident replaced by its view decoded whole, after checking
// that the partial one is what readIndexed reads of it.
func wholeViews(t *testing.T, c entryCommand) *irxv1.Command {
	t.Helper()
	cmd := proto.CloneOf(c.cmd)
	for i, item := range cmd.GetApplyPeerFeed().GetItems() {
		if !c.partial[i] {
			continue
		}
		whole := &irxv1.Incident{}
		if err := proto.Unmarshal(c.views[i], whole); err != nil {
			t.Fatalf("item %d: a partial view that does not decode: %v", i, err)
		}
		if !proto.Equal(item.GetIncident(), indexedPart(whole)) {
			t.Fatalf("item %d: partial view %v, decoded %v", i, item.GetIncident(), indexedPart(whole))
		}
		item.Kind = &irxv1.FeedItem_Incident{Incident: whole}
	}
	return cmd
}
