package fsm

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// fuzzSeeds are marshalled commands, valid and not, for FuzzApply's corpus.
func fuzzSeeds(t testing.TB) [][]byte {
	now := timestamppb.New(t0)
	with := func(cmd *irxv1.Command) *irxv1.Command { cmd.ProposeTime = now; return cmd }
	noTLP := newIncident()
	noTLP.Tlp = 0
	badEnum := newIncident()
	badEnum.VictimHosts[0].Restriction = 99
	badTax := newIncident()
	badTax.Taxonomy.Type = "phishing"
	rich := newIncident()
	rich.Indicators = []*irxv1.Indicator{
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7", Confidence: 90},
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: strings.Repeat("ab", 32)},
	}
	rich.ReportingSite = &irxv1.ReportingSite{Name: "Example", Domain: "example.org"}
	rich.StartTime, rich.EndTime = timestamppb.New(t0.Add(-7200e9)), timestamppb.New(t0.Add(-3600e9))
	rich.Id, rich.Version = "cert-z:9", 5 // output only: ignored

	cmds := []*irxv1.Command{
		with(createCmd(newIncident(), "")),
		with(createCmd(rich, "req-1")),
		with(createCmd(newIncident(), "req-1")),
		with(createCmd(noTLP, "")),
		with(createCmd(badEnum, "")),
		with(createCmd(badTax, "req-2")),
		with(createCmd(nil, "")),
		createCmd(newIncident(), ""), // no propose time
		with(updateCmd(&irxv1.Incident{Id: idOf(1), Tlp: irxv1.Tlp_TLP_RED}, 0, "tlp")),
		with(updateCmd(&irxv1.Incident{Id: idOf(1), ReportingSite: &irxv1.ReportingSite{Name: "x"}}, 2, "reporting_site.name")),
		with(updateCmd(&irxv1.Incident{Id: idOf(1), Status: irxv1.Status_STATUS_RESOLVED}, 99, "status")),
		with(updateCmd(rich, 0, "*")),
		with(updateCmd(&irxv1.Incident{Id: idOf(2)}, 0, "tlp", "taxonomy")),
		with(updateCmd(&irxv1.Incident{Id: idOf(2)}, 0, "status", "report_time", "restriction")),
		with(updateCmd(&irxv1.Incident{Id: idOf(1)}, 0, "id", "victim_hosts.hostname", "*")),
		with(updateCmd(&irxv1.Incident{Id: "cert-b:1"}, 0, "tlp")),
		with(updateCmd(&irxv1.Incident{Id: "nope"}, 0, "tlp")),
		with(&irxv1.Command{}),
	}
	// Creates as an evaluating leader writes them, alone and in a batch.
	_, evaluated, err := CompleteCreate(team, rich, now)
	if err != nil {
		t.Fatal(err)
	}
	cmds = append(cmds,
		with(EvaluatedCreate(&irxv1.CreateIncidentCommand{RequestId: "irx-fresh", FreshRequestId: true}, evaluated)),
		with(&irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: []*irxv1.Command{
			EvaluatedCreate(&irxv1.CreateIncidentCommand{RequestId: "req-1"}, evaluated), createCmd(newIncident(), ""),
		}}}}))
	var out [][]byte
	for _, c := range cmds {
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, nil, []byte("\x0a\x00"), []byte("garbage \xff"))
}

// FuzzApply feeds arbitrary bytes as a command to a real state machine. It
// must never panic; a rejected entry consumes no ticket and no feed
// sequence; an accepted one is stored, valid, and read back as returned.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	// One state machine per fuzzing process: entries accumulate, so updates
	// find incidents that earlier inputs created.
	fsm, err := Open(f.TempDir()+"/state", team, discard)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = fsm.Close() })
	// Start from a few incidents so update inputs reach the merge even
	// when a crasher is replayed alone.
	h := &harness{t: f, f: fsm, clock: t0}
	h.create(newIncident())
	h.create(newIncident())
	h.update(&irxv1.Incident{Id: idOf(2), Status: irxv1.Status_STATUS_IN_PROGRESS}, "status")
	index := h.index

	f.Fuzz(func(t *testing.T, data []byte) {
		index++
		before := countersOf(fsm)
		res := asResult(t, fsm.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}))
		after := countersOf(fsm)
		if after.applied != index {
			t.Fatalf("applied index %d, want %d", after.applied, index)
		}
		results := []*Result{res}
		if res.Err == nil && res.Batch != nil {
			results = res.Batch
		}
		// Which results answer creates, and which of those the leader
		// evaluated: whether they are valid was its call.
		creates, evaluated := make([]bool, len(results)), make([]bool, len(results))
		var cmd irxv1.Command
		if proto.Unmarshal(data, &cmd) == nil {
			subs := []*irxv1.Command{&cmd}
			if cmd.GetBatch() != nil {
				subs = cmd.GetBatch().GetCommands()
			}
			for i := range min(len(subs), len(results)) {
				creates[i] = subs[i].GetCreateIncident() != nil
			}
		}
		if e, ok := parseEntry(data); ok && len(e.commands) == len(results) {
			for i, c := range e.commands {
				evaluated[i] = c.evaluated != nil
			}
		}
		var tickets, minFeeds, maxFeeds uint64
		for i, r := range results {
			switch kind := checkApplied(t, fsm, r, before.ticket, creates[i], evaluated[i]); kind {
			case appliedCreate:
				tickets++
				minFeeds++
				maxFeeds++
			case appliedVersion: // an update, or the retry of a create
				maxFeeds++
			}
		}
		if after.ticket != before.ticket+tickets || after.feed < before.feed+minFeeds || after.feed > before.feed+maxFeeds {
			t.Fatalf("%d results (%d new incidents, %d-%d feed entries) moved counters %+v -> %+v", len(results), tickets, minFeeds, maxFeeds, before, after)
		}
	})
}

type appliedKind int

const (
	appliedNothing appliedKind = iota
	appliedCreate
	appliedVersion
)

// checkApplied checks one command's result against what the state machine
// holds and says what it did. create: the command was a create;
// evaluated: one the leader evaluated.
func checkApplied(t *testing.T, fsm *FSM, res *Result, ticketBefore uint64, create, evaluated bool) appliedKind {
	t.Helper()
	if res.Err != nil {
		if res.Incident != nil || res.Encoded != nil {
			t.Fatalf("error %v came with an incident", res.Err)
		}
		var verr *record.ValidationError
		var perr *record.ValidationError
		refusals := []error{ErrInvalidCommand, ErrNotFound, ErrVersionConflict, ErrForeignIncident, ErrAlreadyExists, ErrStaleCursor, ErrWithdrawn}
		if !errors.As(res.Err, &verr) && !errors.As(res.Err, &perr) && !slices.ContainsFunc(refusals, func(e error) bool { return errors.Is(res.Err, e) }) {
			t.Fatalf("unexpected error kind: %v", res.Err)
		}
		return appliedNothing
	}
	inc, err := res.Created()
	if err != nil {
		// A replica reads only the indexed fields of the leader's
		// encoding; the rest is stored as the leader made it.
		if !evaluated {
			t.Fatalf("stored an incident that does not decode: %v", err)
		}
		return appliedCreate
	}
	if inc == nil {
		return appliedNothing // a command that changes no incident, such as a leader no-op
	}
	id, err := record.ParseID(inc.GetId())
	if err != nil || id.Team != team {
		t.Fatalf("stored id %q: %v", inc.GetId(), err)
	}
	// An evaluated create is stored as the leader completed and checked
	// it (CompleteCreate): whether it is valid was the leader's to decide,
	// and the retry of a create answers with what the first one stored.
	// Whatever the state machine completed or changed itself is valid.
	retried := create && id.Ticket <= ticketBefore
	if !evaluated && !retried {
		if err := record.Validate(inc, "incident"); err != nil {
			t.Fatalf("stored an invalid incident: %v", err)
		}
		if inc.GetStatus() == 0 || inc.GetPurpose() == 0 || inc.GetRestriction() == 0 || inc.GetReportTime() == nil {
			t.Fatalf("stored incident without defaults: %v", inc)
		}
	}
	if got, err := fsm.Get(inc.GetId(), inc.GetVersion()); err != nil || !proto.Equal(got, inc) {
		t.Fatalf("Get(%s, %d) = %v, %v", inc.GetId(), inc.GetVersion(), got, err)
	}
	if id.Ticket > ticketBefore {
		if inc.GetVersion() != 1 {
			t.Fatalf("create made version %d", inc.GetVersion())
		}
		return appliedCreate
	}
	return appliedVersion

}
