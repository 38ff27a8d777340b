package fsm

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// benchIncident is an incident of about 1 KiB encoded.
func benchIncident() *irxv1.Incident {
	inc := newIncident()
	inc.Descriptions[0].Text = strings.Repeat("web server defaced; ", 37)
	inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{"198.51.100.7", "198.51.100.8"}, Asn: 64500}}
	inc.Indicators = []*irxv1.Indicator{
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7", Confidence: 80},
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: strings.Repeat("ab", 32)},
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "evil.example"},
	}
	inc.Contacts = []*irxv1.Contact{{Role: irxv1.ContactRole_CONTACT_ROLE_REPORTER, Name: "A. Reporter", Email: "reporter@example.org"}}
	inc.ReportingSite = &irxv1.ReportingSite{Name: "Example Ltd", Domain: "example.org"}
	return inc
}

// BenchmarkApplyBatchCreate applies entries of 64 creates of a ~1 KiB
// incident each, as the leader's group commit writes them: evaluated (the
// leader completed each incident, and replicas store its bytes) or plain
// (each replica completes it). Each create carries a request id its node
// made, as every create does that a client sent without one. One op is
// one entry. "evaluated-actor" is "evaluated" with each create made by an
// operator call, whose action the state machine records with it. "one"
// applies entries of a single evaluated create, as one sequential client
// makes them: the leader's apply is on that client's reply path.
func BenchmarkApplyBatchCreate(b *testing.B) {
	b.Run("evaluated", func(b *testing.B) { benchApplyCreates(b, 64, true, false) })
	b.Run("evaluated-actor", func(b *testing.B) { benchApplyCreates(b, 64, true, true) })
	b.Run("plain", func(b *testing.B) { benchApplyCreates(b, 64, false, false) })
	b.Run("one", func(b *testing.B) { benchApplyCreates(b, 1, true, false) })
}

func benchApplyCreates(b *testing.B, batch int, evaluated, actor bool) {
	if n := proto.Size(benchIncident()); n < 900 || n > 1300 {
		b.Fatalf("incident is %d bytes, want about 1 KiB", n)
	}
	now := timestamppb.New(t0)
	cmds := make([]*irxv1.Command, batch)
	for i := range cmds {
		c := &irxv1.CreateIncidentCommand{Incident: benchIncident(), RequestId: fmt.Sprintf("irx-%032x", i), FreshRequestId: true}
		cmds[i] = &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: c}}
		if evaluated {
			_, data, err := CompleteCreate(team, c.GetIncident(), now)
			if err != nil {
				b.Fatal(err)
			}
			cmds[i] = EvaluatedCreate(c, data)
		}
		if actor {
			cmds[i].Actor = &irxv1.OperatorAction{Identity: "irx://" + team + "/operator/alice",
				Method: "/irx.v1.IncidentService/CreateIncident", RequestId: fmt.Sprintf("%032x", i)}
		}
	}
	entry := &irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}}
	if batch == 1 {
		entry = cmds[0] // as the group commit proposes a lone write
	}
	entry.ProposeTime = now
	data, err := proto.Marshal(entry)
	if err != nil {
		b.Fatal(err)
	}
	f := openFSM(b, b.TempDir())
	l := &raft.Log{Type: raft.LogCommand, Data: data}
	var index uint64
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		index++
		l.Index = index
		res := asResult(b, f.ApplyBatch([]*raft.Log{l})[0])
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		for _, r := range res.Batch {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(index*uint64(batch))/b.Elapsed().Seconds(), "creates/s")
	if f.LastTicket() != index*uint64(batch) {
		b.Fatalf("last ticket %d, want %d", f.LastTicket(), index*uint64(batch))
	}
}

// BenchmarkApplyPeerFeed applies a peer's feed as a catch-up does: entries
// of 1,024 new ~1 KiB views each, as a leader proposes them (check_text)
// without and with views_checked. One op is one entry.
func BenchmarkApplyPeerFeed(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchApplyPeerFeed(b, false) })
	b.Run("checked", func(b *testing.B) { benchApplyPeerFeed(b, true) })
}

func benchApplyPeerFeed(b *testing.B, checked bool) {
	const perEntry = 1024
	h := newHarness(b)
	h.addPeer("cert-z")
	view := benchIncident()
	view.Version = 1
	view.CreateTime = timestamppb.New(t0)
	view.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-z", team}, ReceivedFrom: "cert-z"}
	var seq uint64
	next := func() *raft.Log {
		items := make([]*irxv1.FeedItem, perEntry)
		from := seq
		for i := range items {
			seq++
			v := proto.Clone(view).(*irxv1.Incident)
			v.Id = record.ID{Team: "cert-z", Ticket: seq}.String()
			items[i] = viewItem(seq, v)
		}
		return h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
			PeerTeamId: "cert-z", FromCursor: from, Cursor: seq, Head: seq, Items: items, CheckText: true, ViewsChecked: checked,
		}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		l := next()
		b.SetBytes(int64(len(l.Data)))
		b.StartTimer()
		if res := asResult(b, h.f.ApplyBatch([]*raft.Log{l})[0]); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "records/s")
	st, err := h.f.PeerState("cert-z")
	if err != nil || st.GetReceived() != seq {
		b.Fatalf("peer state %v (%v), want %d received", st, err, seq)
	}
}

// BenchmarkWritePending orders the writes of a group commit of 256 creates
// and adds them to a batch, as ApplyBatch does for entries nothing reads.
func BenchmarkWritePending(b *testing.B) {
	const creates = 256
	inc := benchIncident()
	var writes []pendingSet
	for i := range uint64(creates) {
		id := record.ID{Team: team, Ticket: 1000 + i}
		writes = append(writes,
			pendingSet{key: incidentKey(id)}, pendingSet{key: versionKey(id, 1), value: make([]byte, 1024)},
			pendingSet{key: feedKey(5000 + i)}, pendingSet{key: requestKey(fmt.Sprintf("irx-%032x", i*0x9e3779b97f4a7c15))})
		for _, k := range indexKeys(id, inc) {
			writes = append(writes, pendingSet{key: k})
		}
	}
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: pebbleLogger{discard}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	for b.Loop() {
		batch := db.NewBatch()
		a := applier{fsm: &FSM{families: keyFamilies()}, batch: batch, sorted: true, pending: append(make([]pendingSet, 0, len(writes)), writes...)}
		a.writePending()
		if a.err != nil {
			b.Fatal(a.err)
		}
		_ = batch.Close()
	}
}

// BenchmarkRetentionTick applies retention ticks that each purge a full
// budget of versions (a class rule over ~1 KiB records). One op is one
// tick entry of retentionBudget purges.
func BenchmarkRetentionTick(b *testing.B) {
	h := newHarness(b)
	inc := benchIncident()
	inc.LogExcerpts = []*irxv1.LogExcerpt{{Source: "sshd", Content: "session of a user"}}
	created := 0
	add := func(n int) {
		for range n {
			if res := h.apply(h.createLog(proto.CloneOf(inc), "")); res.Err != nil {
				b.Fatal(res.Err)
			}
			created++
		}
	}
	add(retentionBudget)
	if res := h.setRetention(rule("pu", irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, 0, time.Hour)); res.Err != nil {
		b.Fatal(res.Err)
	}
	purged := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		add(retentionBudget)
		h.clock = h.clock.Add(2 * time.Hour)
		l := h.command(&irxv1.Command{ProposeTime: timestamppb.New(h.clock), Kind: &irxv1.Command_RetentionTick{RetentionTick: &irxv1.RetentionTickCommand{}}})
		b.StartTimer()
		if res := h.apply(l); res.Err != nil {
			b.Fatal(res.Err)
		}
		purged += retentionBudget
	}
	b.ReportMetric(float64(purged)/b.Elapsed().Seconds(), "purges/s")
}
