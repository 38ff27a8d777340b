package fsm

import (
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// referenceIndexKeys spells the index layout out one key at a time, as
// keys.go documents it: <prefix><field>\0<team>\0<ticket8>, one indicator
// key per distinct value. indexKeys builds the same keys in one buffer.
func referenceIndexKeys(id record.ID, inc *irxv1.Incident) [][]byte {
	key := func(prefix, field []byte) []byte { return cat(prefix, field, []byte{0}, idKey(id)) }
	tax := inc.GetTaxonomy()
	keys := [][]byte{
		key(prefixStatus, []byte{byte(inc.GetStatus())}),
		key(prefixTLP, []byte{byte(inc.GetTlp())}),
		key(prefixTaxonomy, cat([]byte(tax.GetClass()), []byte{0}, []byte(tax.GetType()))),
		key(prefixTime, timeKey(inc.GetReportTime().AsTime())),
	}
	var seen []string
	for _, ind := range inc.GetIndicators() {
		if !slices.Contains(seen, ind.GetValue()) {
			seen = append(seen, ind.GetValue())
			keys = append(keys, key(prefixInd, indicatorKey(ind.GetValue())))
		}
	}
	return keys
}

func TestIndexKeysLayout(t *testing.T) {
	withIndicators := func(values ...string) *irxv1.Incident {
		inc := newIncident()
		inc.ReportTime = timestamppb.New(t0)
		for _, v := range values {
			inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: v})
		}
		return inc
	}
	var many []string // past the scan's limit, with repeats spread out
	for i := range 100 {
		many = append(many, fmt.Sprintf("host%d.example", i%37))
	}
	cases := map[string]*irxv1.Incident{
		"empty":                  {},
		"no indicators":          withIndicators(),
		"repeated indicators":    withIndicators("a.example", "b.example", "a.example", "", ""),
		"many repeated":          withIndicators(many...),
		"NUL in taxonomy values": {Taxonomy: &irxv1.Taxonomy{Class: "x\x00y", Type: "\x00"}, Status: irxv1.Status_STATUS_RESOLVED},
	}
	ids := []record.ID{{Team: "cert-a", Ticket: 1}, {Team: "a-very-long-team-identifier", Ticket: 1<<63 + 5}}
	for name, inc := range cases {
		for _, id := range ids {
			got, want := indexKeys(id, inc), referenceIndexKeys(id, inc)
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("%s, %v: indexKeys = %q, want %q", name, id, got, want)
			}
			for i, k := range got {
				if cap(k) != len(k) {
					t.Errorf("%s: key %d has room to grow into the next key", name, i)
				}
			}
		}
	}
	if n := len(indexKeys(ids[0], withIndicators(many...))); n != 4+37 {
		t.Errorf("100 indicators with 37 values: %d keys, want %d", n, 4+37)
	}
}

// TestKeyEncodingsAreStable pins the stored encodings byte for byte: a
// change to any of them changes the on-disk format, which existing
// databases and snapshots would no longer match.
func TestKeyEncodingsAreStable(t *testing.T) {
	id := record.ID{Team: "cert-a", Ticket: 258}
	at := t0.Add(123456789 * time.Nanosecond)
	cases := []struct {
		name string
		got  []byte
		want string // hex
	}{
		{"time", timeKey(at), "0000000ee27a4810075bcd15"},
		{"indicator", indicatorKey("198.51.100.7"), "e183220b699c10a83ca7be3433d228ed"},
		{"incident", incidentKey(id), hex.EncodeToString([]byte("inc/cert-a\x00")) + "0000000000000102"},
		{"version", versionKey(id, 3), hex.EncodeToString([]byte("ver/cert-a\x00")) + "0000000000000102" + "0000000000000003"},
		{"status index", indexKeys(id, &irxv1.Incident{Status: irxv1.Status_STATUS_NEW})[0],
			hex.EncodeToString([]byte("idx/status/")) + fmt.Sprintf("%02x", int(irxv1.Status_STATUS_NEW)) + "00" + hex.EncodeToString([]byte("cert-a\x00")) + "0000000000000102"},
		{"indicator index", indexKeys(id, &irxv1.Incident{Indicators: []*irxv1.Indicator{{Value: "198.51.100.7"}}})[4],
			hex.EncodeToString([]byte("idx/ind/")) + "e183220b699c10a83ca7be3433d228ed" + "00" + hex.EncodeToString([]byte("cert-a\x00")) + "0000000000000102"},
	}
	for _, c := range cases {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s key: %s, want %s", c.name, got, c.want)
		}
	}
}
