package fsm

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// TestRetentionEqualsBruteForce: random records, versions, rules and clock
// ticks; after every tick the state machine holds exactly what applying
// every rule to every version from scratch gives (a record, or a class
// of a version, past its term is gone from every version and every
// index), and a replica replaying the log holds the same state.
func TestRetentionEqualsBruteForce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t)
		var logs []*raft.Log
		do := func(l *raft.Log) *Result {
			logs = append(logs, l)
			return h.apply(l)
		}
		classes := []irxv1.InfoClass{0, irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, irxv1.InfoClass_INFO_CLASS_INTRUDER, irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE}
		tlps := []irxv1.Tlp{0, irxv1.Tlp_TLP_AMBER, irxv1.Tlp_TLP_RED}
		var rules []*irxv1.RetentionRule
		for i := range rapid.IntRange(1, 3).Draw(rt, "rules") {
			rules = append(rules, rule(fmt.Sprintf("r%d", i),
				rapid.SampledFrom(classes).Draw(rt, "class"), rapid.SampledFrom(tlps).Draw(rt, "tlp"),
				time.Duration(rapid.IntRange(1, 120).Draw(rt, "keep minutes"))*time.Minute))
		}
		if res := do(h.command(&irxv1.Command{Kind: &irxv1.Command_SetRetentionPolicy{SetRetentionPolicy: &irxv1.SetRetentionPolicyCommand{
			Policy: &irxv1.RetentionPolicy{Rules: rules},
		}}})); res.Err != nil {
			rt.Fatal(res.Err)
		}
		// The model: every version of every record as it must be stored.
		model := map[string][]*irxv1.Incident{}
		removed := map[string]bool{}
		statuses := []irxv1.Status{irxv1.Status_STATUS_NEW, irxv1.Status_STATUS_RESOLVED}
		for op := range rapid.IntRange(1, 30).Draw(rt, "ops") {
			live := slices.Sorted(maps.Keys(model))
			live = slices.DeleteFunc(live, func(id string) bool { return removed[id] })
			switch kind := rapid.IntRange(0, 2).Draw(rt, "op"); {
			case kind == 0 || len(live) == 0:
				inc := newIncident()
				inc.Tlp = rapid.SampledFrom(tlps[1:]).Draw(rt, "new tlp")
				inc.Status = rapid.SampledFrom(statuses).Draw(rt, "new status")
				if rapid.Bool().Draw(rt, "excerpt") {
					withExcerpt(inc, fmt.Sprintf("user %d", op))
				}
				if rapid.Bool().Draw(rt, "indicator") {
					inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: fmt.Sprintf("198.51.100.%d", op)}}
				}
				res := do(h.createLog(inc, ""))
				if res.Err != nil {
					rt.Fatal(res.Err)
				}
				model[res.Incident.GetId()] = []*irxv1.Incident{proto.CloneOf(res.Incident)}
			case kind == 1:
				id := rapid.SampledFrom(live).Draw(rt, "update")
				patch := &irxv1.Incident{Id: id}
				var path string
				switch rapid.IntRange(0, 2).Draw(rt, "field") {
				case 0:
					patch.Status, path = rapid.SampledFrom(statuses).Draw(rt, "status"), "status"
				case 1:
					patch.Tlp, path = rapid.SampledFrom(tlps[1:]).Draw(rt, "tlp"), "tlp"
				default:
					withExcerpt(patch, fmt.Sprintf("user %d", op))
					path = "log_excerpts"
				}
				res := do(h.updateLog(patch, 0, path))
				if res.Err != nil {
					rt.Fatal(res.Err)
				}
				model[id] = append(model[id], proto.CloneOf(res.Incident))
			default:
				h.clock = h.clock.Add(time.Duration(rapid.IntRange(0, 90).Draw(rt, "advance minutes")) * time.Minute)
				for more := true; more; {
					res := do(h.command(&irxv1.Command{ProposeTime: timestamppb.New(h.clock), Kind: &irxv1.Command_RetentionTick{RetentionTick: &irxv1.RetentionTickCommand{}}}))
					if res.Err != nil {
						rt.Fatal(res.Err)
					}
					more = res.RetentionMore
				}
				bruteForce(model, removed, rules, h.clock)
				checkRetained(rt, h.f, model, removed)
			}
		}
		other := openFSM(t, t.TempDir()+"/state")
		for _, l := range logs {
			asResult(t, other.Apply(l))
		}
		if contentDigest(t, other) != contentDigest(t, h.f) {
			rt.Fatal("a replica replaying the log holds another state")
		}
	})
}

// bruteForce applies every rule to every version at time now.
func bruteForce(model map[string][]*irxv1.Incident, removed map[string]bool, rules []*irxv1.RetentionRule, now time.Time) {
	due := func(inc *irxv1.Incident, r *irxv1.RetentionRule) bool {
		return !inc.GetGenerationTime().AsTime().Add(r.GetKeep().AsDuration()).After(now) &&
			(r.GetTlp() == 0 || r.GetTlp() == inc.GetTlp())
	}
	for id, versions := range model {
		for _, r := range rules {
			if removed[id] {
				break
			}
			if r.GetInfoClass() == 0 {
				latest := versions[len(versions)-1]
				removed[id] = due(latest, r) && !IncidentOpen(latest)
				continue
			}
			for _, v := range versions {
				if due(v, r) {
					policy.Purge(v, r.GetInfoClass())
				}
			}
		}
	}
}

func checkRetained(t *rapid.T, f *FSM, model map[string][]*irxv1.Incident, removed map[string]bool) {
	wantIdx, wantTime := map[string]bool{}, map[string]bool{}
	for id, versions := range model {
		if removed[id] {
			if _, err := f.Get(id, 0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s past its term: %v", id, err)
			}
			continue
		}
		rid, _ := record.ParseID(id)
		for _, v := range versions {
			got, err := f.Get(id, v.GetVersion())
			if err != nil {
				t.Fatalf("Get(%s, %d): %v", id, v.GetVersion(), err)
			}
			if !proto.Equal(got, v) {
				t.Fatalf("%s version %d:\n got %v\nwant %v", id, v.GetVersion(), got, v)
			}
			wantTime[string(versionTimeKey(rid, v))] = true
		}
		for _, k := range indexKeys(rid, versions[len(versions)-1]) {
			wantIdx[string(k)] = true
		}
	}
	gotIdx, gotTime := map[string]bool{}, map[string]bool{}
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, err := f.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		switch k := string(it.Key()); {
		case len(k) > 4 && k[:4] == "idx/":
			gotIdx[k] = true
		case len(k) > len(prefixRetentionTime) && k[:len(prefixRetentionTime)] == string(prefixRetentionTime):
			gotTime[k] = true
		}
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(gotIdx, wantIdx) {
		t.Fatalf("index keys differ from the records held:\n got %q\nwant %q", slices.Sorted(maps.Keys(gotIdx)), slices.Sorted(maps.Keys(wantIdx)))
	}
	if !maps.Equal(gotTime, wantTime) {
		t.Fatalf("time index keys differ from the versions held")
	}
}
