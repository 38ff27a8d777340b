package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

const team = "cert-a"

var (
	t0      = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	discard = slog.New(slog.DiscardHandler)
)

// openFSM opens a state machine in dir and closes it when the test ends.
func openFSM(t testing.TB, dir string) *FSM {
	t.Helper()
	f, err := Open(dir, team, discard)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// harness drives one FSM with raft log entries of increasing index and a
// leader clock that advances one second per command.
type harness struct {
	t     testing.TB
	f     *FSM
	dir   string
	index uint64
	clock time.Time
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	dir := t.TempDir() + "/state"
	return &harness{t: t, f: openFSM(t, dir), dir: dir, clock: t0}
}

// now returns the next propose time.
func (h *harness) now() *timestamppb.Timestamp {
	h.clock = h.clock.Add(time.Second)
	return timestamppb.New(h.clock)
}

// entry wraps data in the next raft log entry.
func (h *harness) entry(typ raft.LogType, data []byte) *raft.Log {
	h.index++
	return &raft.Log{Index: h.index, Term: 1, Type: typ, Data: data, AppendedAt: h.clock}
}

func (h *harness) command(cmd *irxv1.Command) *raft.Log {
	if cmd.ProposeTime == nil {
		cmd.ProposeTime = h.now()
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		h.t.Fatalf("marshal command: %v", err)
	}
	return h.entry(raft.LogCommand, data)
}

func (h *harness) createLog(inc *irxv1.Incident, requestID string) *raft.Log {
	return h.command(createCmd(inc, requestID))
}

func (h *harness) updateLog(inc *irxv1.Incident, expected int64, paths ...string) *raft.Log {
	return h.command(updateCmd(inc, expected, paths...))
}

func createCmd(inc *irxv1.Incident, requestID string) *irxv1.Command {
	return &irxv1.Command{Kind: &irxv1.Command_CreateIncident{
		CreateIncident: &irxv1.CreateIncidentCommand{Incident: inc, RequestId: requestID},
	}}
}

func updateCmd(inc *irxv1.Incident, expected int64, paths ...string) *irxv1.Command {
	return &irxv1.Command{Kind: &irxv1.Command_UpdateIncident{
		UpdateIncident: &irxv1.UpdateIncidentCommand{
			Incident: inc, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}, ExpectedVersion: expected,
		},
	}}
}

// result applies one entry with Apply and returns its *Result.
func (h *harness) apply(l *raft.Log) *Result {
	h.t.Helper()
	return asResult(h.t, h.f.Apply(l))
}

func asResult(t testing.TB, v any) *Result {
	t.Helper()
	res, ok := v.(*Result)
	if !ok || res == nil {
		t.Fatalf("apply returned %T (%v), want *Result", v, v)
	}
	return res
}

// create applies a create and fails the test unless it succeeds.
func (h *harness) create(inc *irxv1.Incident) *irxv1.Incident {
	h.t.Helper()
	res := h.apply(h.createLog(inc, ""))
	if res.Err != nil {
		h.t.Fatalf("create: %v", res.Err)
	}
	return res.Incident
}

// update applies an update and fails the test unless it succeeds.
func (h *harness) update(inc *irxv1.Incident, paths ...string) *irxv1.Incident {
	h.t.Helper()
	res := h.apply(h.updateLog(inc, 0, paths...))
	if res.Err != nil {
		h.t.Fatalf("update %s %v: %v", inc.GetId(), paths, res.Err)
	}
	return res.Incident
}

// asTeam runs fn with the state machine acting for another team, to store
// records whose origin is not the local team (as federation will).
func (h *harness) asTeam(other string, fn func()) {
	saved := h.f.team
	h.f.team = other
	defer func() { h.f.team = saved }()
	fn()
}

// newIncident is a small valid incident.
func newIncident() *irxv1.Incident {
	return &irxv1.Incident{
		Tlp:      irxv1.Tlp_TLP_AMBER,
		Taxonomy: &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
		VictimHosts: []*irxv1.Host{{
			Hostname: "www.example.org", Addresses: []string{"192.0.2.10"},
		}},
		Descriptions: []*irxv1.Description{{Lang: "en", Text: "defaced"}},
	}
}

// counters is the state machine's view of its counters.
type counters struct{ applied, ticket, feed uint64 }

func countersOf(f *FSM) counters {
	return counters{f.AppliedIndex(), f.LastTicket(), f.FeedSequence()}
}

// dump returns every key and value of the database except m/applied, which
// every applied entry advances whatever it does. It fails the test on a key
// under no family of keyFamilies.
func dump(t testing.TB, f *FSM) map[string]string {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, err := f.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	families := keyFamilies()
	for valid := it.First(); valid; valid = it.Next() {
		// A key outside every family would share tables with its
		// neighbours (splitTablesAtFamilies): add its prefix there.
		if family(families, it.Key()) < 0 {
			t.Errorf("key %q is under no family of keyFamilies", it.Key())
		}
		if bytes.Equal(it.Key(), keyApplied) {
			continue
		}
		out[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// contentDigest hashes dump: Digest without the applied index.
func contentDigest(t testing.TB, f *FSM) [32]byte {
	t.Helper()
	var b bytes.Buffer
	for _, kv := range sortedKV(dump(t, f)) {
		b.WriteString(fmt.Sprintf("%d:%s%d:%s", len(kv[0]), kv[0], len(kv[1]), kv[1]))
	}
	return sha256.Sum256(b.Bytes())
}

func sortedKV(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func digest(t testing.TB, f *FSM) []byte {
	t.Helper()
	d, err := f.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}

// storedApplied reads m/applied from the database itself.
func storedApplied(t testing.TB, f *FSM) uint64 {
	t.Helper()
	n, err := getUint64(f.db, keyApplied)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustGet(t testing.TB, f *FSM, id string, version int64) *irxv1.Incident {
	t.Helper()
	inc, err := f.Get(id, version)
	if err != nil {
		t.Fatalf("Get(%s, %d): %v", id, version, err)
	}
	return inc
}

// listAll pages through q and returns the ids, in order.
func listAll(t testing.TB, f *FSM, q Query, pageSize int) []string {
	t.Helper()
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("List(%+v) does not terminate", q)
		}
		incs, next, err := f.List(q, pageSize, token)
		if err != nil {
			t.Fatalf("List(%+v, %d, %q): %v", q, pageSize, token, err)
		}
		if len(incs) > pageSize && pageSize > 0 {
			t.Fatalf("List returned %d incidents for page size %d", len(incs), pageSize)
		}
		for _, inc := range incs {
			ids = append(ids, inc.GetId())
		}
		if next == "" {
			return ids
		}
		token = next
	}
}

func idOf(n uint64) string { return record.ID{Team: team, Ticket: n}.String() }

func ids(ns ...uint64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = idOf(n)
	}
	return out
}

// violations returns the field paths of a *record.ValidationError.
func violations(t testing.TB, err error) []string {
	t.Helper()
	var verr *record.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v (%T) is not a *record.ValidationError", err, err)
	}
	var out []string
	for _, v := range verr.Violations {
		out = append(out, v.Field)
	}
	return out
}

// be64 is a big-endian uint64 as stored.
func be64(b string) uint64 {
	if len(b) != 8 {
		return ^uint64(0)
	}
	return binary.BigEndian.Uint64([]byte(b))
}

func hasPrefixKey(m map[string]string, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
