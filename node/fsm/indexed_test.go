package fsm

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// indexedPart is what readIndexed reads of inc, taken from the decoded
// message: the fields, with their presence, and nothing else.
func indexedPart(inc *irxv1.Incident) *irxv1.Incident {
	out := &irxv1.Incident{Id: inc.GetId(), Version: inc.GetVersion(), Status: inc.GetStatus(), Tlp: inc.GetTlp(), Priority: inc.GetPriority()}
	if t := inc.GetTaxonomy(); t != nil {
		out.Taxonomy = &irxv1.Taxonomy{Class: t.GetClass(), Type: t.GetType()}
	}
	for _, ts := range []struct {
		from *timestamppb.Timestamp
		to   **timestamppb.Timestamp
	}{{inc.GetReportTime(), &out.ReportTime}, {inc.GetGenerationTime(), &out.GenerationTime}, {inc.GetCreateTime(), &out.CreateTime}} {
		if ts.from != nil {
			*ts.to = &timestamppb.Timestamp{Seconds: ts.from.GetSeconds(), Nanos: ts.from.GetNanos()}
		}
	}
	for _, ind := range inc.GetIndicators() {
		out.Indicators = append(out.Indicators, &irxv1.Indicator{Value: ind.GetValue()})
	}
	for _, h := range inc.GetAttackingHosts() {
		out.AttackingHosts = append(out.AttackingHosts, &irxv1.Host{Hostname: h.GetHostname(), Domain: h.GetDomain(), Addresses: h.GetAddresses()})
	}
	if p := inc.GetProvenance(); p != nil {
		out.Provenance = &irxv1.Provenance{OriginTeam: p.GetOriginTeam(), Path: p.GetPath(), ReceivedFrom: p.GetReceivedFrom()}
	}
	if r := inc.GetReportingSite(); r != nil {
		out.ReportingSite = &irxv1.ReportingSite{Sector: r.GetSector(), Country: r.GetCountry()}
	}
	return out
}

// Whatever an encoder makes of an incident, readIndexed reads (the slow
// path is for bytes no leader writes, and for withdrawn stubs) and reads
// as proto.Unmarshal does.
func TestReadIndexedReadsEveryEncodedIncident(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		inc := &irxv1.Incident{}
		drawMessage(t, inc.ProtoReflect(), 3, "incident")
		b, err := marshal.Marshal(inc)
		if err != nil {
			t.Skip("not encodable (invalid UTF-8):", err)
		}
		got, ok := readIndexed(b)
		if withdrawn := inc.WithdrawTime != nil || inc.WithdrawReason != ""; ok == withdrawn {
			t.Fatalf("readIndexed of %v (withdrawn: %v): %v", inc, withdrawn, ok)
		} else if withdrawn {
			return
		}
		if want := indexedPart(inc); !proto.Equal(got, want) {
			t.Fatalf("readIndexed read\n%v\nwant\n%v", got, want)
		}
	})
}

// FuzzReadIndexed: where readIndexed reads bytes that proto.Unmarshal
// decodes, it reads the same values. (It may read bytes the decoder
// refuses, in fields it steps over: a leader's encoding always decodes.)
func FuzzReadIndexed(f *testing.F) {
	_, data, err := CompleteCreate(team, newIncident(), timestamppb.New(t0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	bench, err := marshal.Marshal(benchIncident())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bench)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := readIndexed(b)
		full := &irxv1.Incident{}
		if !ok || proto.Unmarshal(b, full) != nil {
			return
		}
		if want := indexedPart(full); !proto.Equal(got, want) {
			t.Fatalf("readIndexed read\n%v\nproto.Unmarshal\n%v", got, want)
		}
	})
}
