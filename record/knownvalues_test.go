package record

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// planLeaves lists the path to every enum and timestamp checkEnums checks,
// derived from the schema's descriptors (the reflective plan), so a field
// added to the schema shows up here without anyone listing it.
func planLeaves(plan *enumPlan, prefix []*plannedField, depth int, out *[][]*plannedField) {
	if depth > 8 {
		return // a recursive type: its leaves were listed on the way down
	}
	for i := range plan.fields {
		f := &plan.fields[i]
		path := append(append([]*plannedField(nil), prefix...), f)
		if f.sub != nil {
			planLeaves(f.sub, path, depth+1, out)
			continue
		}
		*out = append(*out, path)
	}
}

// incidentWith builds an incident where only the leaf at path is set
// (lists get one element), to an enum number or a timestamp's seconds.
func incidentWith(path []*plannedField, enum protoreflect.EnumNumber, seconds int64) *irxv1.Incident {
	inc := &irxv1.Incident{}
	m := inc.ProtoReflect()
	for _, f := range path[:len(path)-1] {
		if f.fd.IsList() {
			l := m.Mutable(f.fd).List()
			e := l.NewElement()
			l.Append(e)
			m = e.Message()
			continue
		}
		m = m.Mutable(f.fd).Message()
	}
	leaf := path[len(path)-1]
	var v protoreflect.Value
	if leaf.timestamp {
		v = protoreflect.ValueOfMessage((&timestamppb.Timestamp{Seconds: seconds}).ProtoReflect())
	} else {
		v = protoreflect.ValueOfEnum(enum)
	}
	if leaf.fd.IsList() {
		m.Mutable(leaf.fd).List().Append(v)
	} else {
		m.Set(leaf.fd, v)
	}
	return inc
}

func pathName(path []*plannedField) string {
	var names []string
	for _, f := range path {
		names = append(names, string(f.fd.Name()))
	}
	return strings.Join(names, ".")
}

// TestKnownValuesCoversThePlan: for every enum and timestamp of the
// schema, an undefined value or an out-of-range time makes knownValues say
// no (so the reflective walk runs and names it), and a defined value or a
// valid time leaves it saying yes (so the fast path is taken at all).
func TestKnownValuesCoversThePlan(t *testing.T) {
	var leaves [][]*plannedField
	planLeaves(plans.of((&irxv1.Incident{}).ProtoReflect().Descriptor()), nil, 0, &leaves)
	if len(leaves) < 40 {
		t.Fatalf("only %d planned enums and timestamps: the plan is not what this test expects", len(leaves))
	}
	const year10000 = 253402300800 // first second past what Timestamp allows
	for _, path := range leaves {
		leaf := path[len(path)-1]
		var good, bad protoreflect.EnumNumber
		if !leaf.timestamp {
			values := leaf.fd.Enum().Values()
			good = values.Get(values.Len() - 1).Number()
			bad = good + 1000
		}
		if inc := incidentWith(path, bad, year10000); knownValues(inc) {
			t.Errorf("%s: knownValues accepted an undefined value or invalid time: %v", pathName(path), inc)
		} else {
			var vs violations
			checkEnums(inc.ProtoReflect(), "incident", &vs)
			if len(vs) != 1 || !strings.HasSuffix(vs[0].Field, string(leaf.fd.Name())) && !strings.HasSuffix(vs[0].Field, string(leaf.fd.Name())+"[0]") {
				t.Errorf("%s: the walk reported %v", pathName(path), vs)
			}
		}
		if inc := incidentWith(path, good, 1_700_000_000); !knownValues(inc) {
			t.Errorf("%s: knownValues refused a defined value or valid time: %v", pathName(path), inc)
		}
	}
}

// FuzzKnownValues: on any decodable incident, knownValues says yes exactly
// when the reflective walk finds nothing.
func FuzzKnownValues(f *testing.F) {
	for _, s := range []*irxv1.Incident{
		fullIncident(), stored(),
		{Tlp: 77, Status: 9, VictimHosts: []*irxv1.Host{{Restriction: 99}}},
		{Assessments: []*irxv1.Assessment{{SystemImpacts: []*irxv1.SystemImpact{{Severity: 42}}}}},
		{Provenance: &irxv1.Provenance{Reshare: &irxv1.ReshareTerms{Scope: 12}, ReceiveTime: &timestamppb.Timestamp{Nanos: -1}}},
		{History: []*irxv1.HistoryItem{{Time: &timestamppb.Timestamp{Seconds: -62135596801}}}},
	} {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inc := &irxv1.Incident{}
		if err := proto.Unmarshal(data, inc); err != nil {
			t.Skip()
		}
		var vs violations
		w := &enumWalker{vs: &vs, root: "incident"}
		w.walk(inc.ProtoReflect(), plans.of(inc.ProtoReflect().Descriptor()))
		if fast := knownValues(inc); fast != (len(vs) == 0) {
			t.Fatalf("knownValues = %v, the walk found %v", fast, vs)
		}
	})
}
