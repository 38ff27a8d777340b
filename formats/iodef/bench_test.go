package iodef_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// benchDocument is a document of one incident as test/bench iodef sends
// it: a brute-force report with its attacker, victim, indicator and
// reporter.
func benchDocument(b *testing.B) []byte {
	b.Helper()
	gen := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	inc := &irxv1.Incident{
		Id:             "csirt-example:100042",
		Tlp:            irxv1.Tlp_TLP_GREEN,
		Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
		Taxonomy:       &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"},
		ReportTime:     timestamppb.New(gen.Add(-42 * time.Second)),
		GenerationTime: timestamppb.New(gen),
		Descriptions:   []*irxv1.Description{{Lang: "en", Text: "SSH password guessing against the mail relay, report 42"}},
		Contacts: []*irxv1.Contact{{Role: irxv1.ContactRole_CONTACT_ROLE_CREATOR, Type: irxv1.ContactType_CONTACT_TYPE_ORGANIZATION,
			Organization: "Example CSIRT", Email: "contact@csirt.example.com"}},
		VictimHosts:    []*irxv1.Host{{Hostname: "mail.example.org", Addresses: []string{"192.0.2.25"}}},
		AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.43"}, Services: []*irxv1.Service{{IpProtocol: 6, Port: 22}}}},
		Indicators:     []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.43"}},
	}
	var out bytes.Buffer
	if err := iodef.Encode(&out, []*irxv1.Incident{inc}, iodef.EncodeOptions{Team: "csirt.example.com"}); err != nil {
		b.Fatal(err)
	}
	return out.Bytes()
}

func benchmarkDecode(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		doc, err := iodef.Decode(bytes.NewReader(data), "bench.xml", tlpAndTaxonomy)
		if err != nil {
			b.Fatal(err)
		}
		if doc.Incidents[0].Err != nil {
			b.Fatal(doc.Incidents[0].Err)
		}
	}
}

// BenchmarkDecode decodes what ImportIncidents decodes per document in
// test/bench iodef.
func BenchmarkDecode(b *testing.B) { benchmarkDecode(b, benchDocument(b)) }

// BenchmarkDecodeMalware decodes a larger document, modelled on RFC 7970's
// malware example.
func BenchmarkDecodeMalware(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "malware.xml"))
	if err != nil {
		b.Fatal(err)
	}
	benchmarkDecode(b, data)
}
