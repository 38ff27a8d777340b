package fsm

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func TestListPagination(t *testing.T) {
	h := newHarness(t)
	var logs []*raft.Log
	for range 130 {
		logs = append(logs, h.createLog(newIncident(), ""))
	}
	applyInBatches(t, h.f, logs, 64)

	var got []string
	token := ""
	for i, want := range []int{50, 50, 30} {
		incs, next, err := h.f.List(Query{}, 50, token)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if len(incs) != want {
			t.Fatalf("page %d: %d incidents, want %d", i, len(incs), want)
		}
		if last := i == 2; (next == "") != last {
			t.Fatalf("page %d: next token %q", i, next)
		}
		for _, inc := range incs {
			got = append(got, inc.GetId())
		}
		token = next
	}
	want := make([]string, 130)
	for i := range want {
		want[i] = idOf(uint64(i + 1))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages hold %v, want tickets 1..130 in order", got)
	}

	// Page size 0 is the default, anything above the maximum is clamped.
	if incs, next, err := h.f.List(Query{}, 0, ""); err != nil || len(incs) != DefaultPageSize || next == "" {
		t.Fatalf("List(page size 0) = %d incidents, next %q, err %v", len(incs), next, err)
	}
	if incs, next, err := h.f.List(Query{}, MaxPageSize*10, ""); err != nil || len(incs) != 130 || next != "" {
		t.Fatalf("List(huge page) = %d incidents, next %q, err %v", len(incs), next, err)
	}
	// A page that ends exactly at the last incident has no next token.
	if incs, next, err := h.f.List(Query{}, 130, ""); err != nil || len(incs) != 130 || next != "" {
		t.Fatalf("List(page size 130) = %d incidents, next %q, err %v", len(incs), next, err)
	}
	// Records created after a page was served appear on later pages.
	incs, next, err := h.f.List(Query{}, 100, "")
	if err != nil || len(incs) != 100 {
		t.Fatal(err)
	}
	h.create(newIncident())
	rest, next, err := h.f.List(Query{}, 100, next)
	if err != nil || len(rest) != 31 || next != "" || rest[30].GetId() != idOf(131) {
		t.Fatalf("second page after a create: %d incidents, next %q, err %v", len(rest), next, err)
	}
}

func TestListEmpty(t *testing.T) {
	h := newHarness(t)
	incs, next, err := h.f.List(Query{}, 10, "")
	if err != nil || len(incs) != 0 || next != "" {
		t.Fatalf("List on an empty state: %v %q %v", incs, next, err)
	}
}

// fixture is one incident of the filter data set, described independently
// of how the state machine indexes it.
type fixture struct {
	team      string
	status    irxv1.Status
	tlp       irxv1.Tlp
	class     string
	typ       string
	reported  time.Time
	indicator []string
}

func (x fixture) incident() *irxv1.Incident {
	inc := newIncident()
	inc.Status, inc.Tlp = x.status, x.tlp
	inc.Taxonomy = &irxv1.Taxonomy{Class: x.class, Type: x.typ}
	inc.ReportTime = timestamppb.New(x.reported)
	for _, v := range x.indicator {
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_OTHER, Value: v})
	}
	return inc
}

// want reports whether fixture x answers q, from the documented meaning of
// each filter.
func (x fixture) want(q Query) bool {
	return (q.Status == 0 || q.Status == x.status) &&
		(q.TLP == 0 || q.TLP == x.tlp) &&
		(q.TaxonomyClass == "" || q.TaxonomyClass == x.class) &&
		(q.TaxonomyType == "" || q.TaxonomyType == x.typ) &&
		(q.OriginTeam == "" || q.OriginTeam == x.team) &&
		(q.ReportedAfter.IsZero() || !x.reported.Before(q.ReportedAfter)) &&
		(q.ReportedBefore.IsZero() || x.reported.Before(q.ReportedBefore)) &&
		(q.Indicator == "" || slices.Contains(x.indicator, q.Indicator))
}

func hour(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }

var fixtures = []fixture{
	{"cert-a", irxv1.Status_STATUS_NEW, irxv1.Tlp_TLP_AMBER, "intrusions", "system-compromise", hour(5), []string{"198.51.100.7"}},
	{"cert-a", irxv1.Status_STATUS_IN_PROGRESS, irxv1.Tlp_TLP_RED, "fraud", "phishing", hour(1), []string{"evil.example"}},
	{"cert-a", irxv1.Status_STATUS_NEW, irxv1.Tlp_TLP_GREEN, "intrusions", "burglary", hour(3), []string{"198.51.100.7", "evil.example", "198.51.100.7"}},
	{"cert-a", irxv1.Status_STATUS_RESOLVED, irxv1.Tlp_TLP_AMBER, "fraud", "masquerade", hour(3).Add(time.Nanosecond), nil},
	{"cert-a", irxv1.Status_STATUS_NEW, irxv1.Tlp_TLP_RED, "malicious-code", "c2-server", hour(-20), []string{"a\x00b"}},
	{"cert-a", irxv1.Status_STATUS_IN_PROGRESS, irxv1.Tlp_TLP_AMBER, "intrusions", "system-compromise", hour(8), []string{"evil.example"}},
	{"cert-b", irxv1.Status_STATUS_NEW, irxv1.Tlp_TLP_AMBER, "intrusions", "system-compromise", hour(2), []string{"198.51.100.7"}},
	{"cert-b", irxv1.Status_STATUS_RESOLVED, irxv1.Tlp_TLP_CLEAR, "other", "other", hour(3), nil},
	{"cert-ab", irxv1.Status_STATUS_NEW, irxv1.Tlp_TLP_CLEAR, "intrusion-attempts", "exploit", hour(4), nil},
}

// loadFixtures creates the fixtures and returns their ids, in order.
func loadFixtures(t *testing.T, h *harness) []string {
	t.Helper()
	var out []string
	for _, x := range fixtures {
		h.asTeam(x.team, func() { out = append(out, h.create(x.incident()).GetId()) })
	}
	// Updates move incidents between index entries; re-assert the
	// fixture's values so the final state is what the fixture says.
	for i, x := range fixtures {
		if i%2 == 0 && x.team == team {
			inc := x.incident()
			inc.Id = out[i]
			h.update(inc, "status", "tlp", "taxonomy", "indicators", "report_time")
		}
	}
	return out
}

func TestListFilters(t *testing.T) {
	h := newHarness(t)
	all := loadFixtures(t, h)
	pick := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, all[i])
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name string
		q    Query
		want []string // nil: compute from the fixtures only
	}{
		{"everything", Query{}, pick(0, 1, 2, 3, 4, 5, 6, 7, 8)},
		{"status new", Query{Status: irxv1.Status_STATUS_NEW}, pick(0, 2, 4, 6, 8)},
		{"status in progress", Query{Status: irxv1.Status_STATUS_IN_PROGRESS}, pick(1, 5)},
		{"status future", Query{Status: irxv1.Status_STATUS_FUTURE}, pick()},
		{"class", Query{TaxonomyClass: "intrusions"}, pick(0, 2, 5, 6)},
		{"class is not a prefix match", Query{TaxonomyClass: "intrusion"}, pick()},
		{"class and type", Query{TaxonomyClass: "intrusions", TaxonomyType: "system-compromise"}, pick(0, 5, 6)},
		{"type only", Query{TaxonomyType: "system-compromise"}, pick(0, 5, 6)},
		{"class with another class's type", Query{TaxonomyClass: "fraud", TaxonomyType: "burglary"}, pick()},
		{"tlp amber", Query{TLP: irxv1.Tlp_TLP_AMBER}, pick(0, 3, 5, 6)},
		{"tlp clear", Query{TLP: irxv1.Tlp_TLP_CLEAR}, pick(7, 8)},
		{"origin cert-b", Query{OriginTeam: "cert-b"}, pick(6, 7)},
		{"origin cert-a", Query{OriginTeam: "cert-a"}, pick(0, 1, 2, 3, 4, 5)},
		{"origin is not a prefix match", Query{OriginTeam: "cert"}, pick()},
		{"reported after (inclusive)", Query{ReportedAfter: hour(3)}, pick(0, 2, 3, 5, 7, 8)},
		{"reported before (exclusive)", Query{ReportedBefore: hour(3)}, pick(1, 4, 6)},
		{"reported window", Query{ReportedAfter: hour(2), ReportedBefore: hour(3).Add(time.Nanosecond)}, pick(2, 6, 7)},
		{"reported window nanosecond", Query{ReportedAfter: hour(3).Add(time.Nanosecond), ReportedBefore: hour(3).Add(2 * time.Nanosecond)}, pick(3)},
		{"reported window empty", Query{ReportedAfter: hour(9), ReportedBefore: hour(10)}, pick()},
		{"reported window reversed", Query{ReportedAfter: hour(5), ReportedBefore: hour(1)}, pick()},
		{"reported window of zero width", Query{ReportedAfter: hour(5), ReportedBefore: hour(5)}, pick()},
		{"indicator ip", Query{Indicator: "198.51.100.7"}, pick(0, 2, 6)},
		{"indicator domain", Query{Indicator: "evil.example"}, pick(1, 2, 5)},
		{"indicator with NUL", Query{Indicator: "a\x00b"}, pick(4)},
		{"indicator unknown", Query{Indicator: "198.51.100.8"}, pick()},
		{"status and tlp", Query{Status: irxv1.Status_STATUS_NEW, TLP: irxv1.Tlp_TLP_AMBER}, pick(0, 6)},
		{"class and status", Query{TaxonomyClass: "intrusions", Status: irxv1.Status_STATUS_NEW}, pick(0, 2, 6)},
		{"indicator and origin", Query{Indicator: "198.51.100.7", OriginTeam: "cert-a"}, pick(0, 2)},
		{"indicator and status", Query{Indicator: "evil.example", Status: irxv1.Status_STATUS_IN_PROGRESS}, pick(1, 5)},
		{"origin and status", Query{OriginTeam: "cert-b", Status: irxv1.Status_STATUS_RESOLVED}, pick(7)},
		{"time and tlp", Query{ReportedAfter: hour(2), TLP: irxv1.Tlp_TLP_AMBER}, pick(0, 3, 5, 6)},
		{"class, type and time", Query{TaxonomyClass: "intrusions", TaxonomyType: "system-compromise", ReportedBefore: hour(6)}, pick(0, 6)},
		{"everything at once", Query{
			Status: irxv1.Status_STATUS_NEW, TaxonomyClass: "intrusions", TaxonomyType: "system-compromise", TLP: irxv1.Tlp_TLP_AMBER,
			OriginTeam: "cert-b", ReportedAfter: hour(2), ReportedBefore: hour(3), Indicator: "198.51.100.7",
		}, pick(6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The expectation written here agrees with the fixtures' meaning.
			var fromFixtures []string
			for i, x := range fixtures {
				if x.want(tt.q) {
					fromFixtures = append(fromFixtures, all[i])
				}
			}
			slices.Sort(fromFixtures)
			if !slices.Equal(fromFixtures, tt.want) {
				t.Fatalf("test table is wrong: fixtures give %v, table says %v", fromFixtures, tt.want)
			}
			for _, size := range []int{1, 2, 100} {
				got := listAll(t, h.f, tt.q, size)
				sorted := slices.Clone(got)
				slices.Sort(sorted)
				if len(slices.Compact(slices.Clone(sorted))) != len(sorted) {
					t.Fatalf("page size %d: duplicates in %v", size, got)
				}
				if !slices.Equal(sorted, tt.want) {
					t.Fatalf("List(%+v) page size %d = %v, want %v", tt.q, size, got, tt.want)
				}
			}
		})
	}

	// A time range is served in report time order.
	got := listAll(t, h.f, Query{ReportedAfter: hour(-100)}, 3)
	want := []string{all[4], all[1], all[6], all[2], all[7], all[3], all[8], all[0], all[5]}
	if !slices.Equal(got, want) {
		t.Fatalf("time-ordered list = %v, want %v", got, want)
	}
}

func TestListPageTokens(t *testing.T) {
	h := newHarness(t)
	loadFixtures(t, h)

	q := Query{Status: irxv1.Status_STATUS_NEW}
	_, token, err := h.f.List(q, 1, "")
	if err != nil || token == "" {
		t.Fatalf("first page: token %q, err %v", token, err)
	}
	if _, _, err := h.f.List(q, 1, token); err != nil {
		t.Fatalf("token on its own query: %v", err)
	}
	// Page size is not part of the query.
	if _, _, err := h.f.List(q, 7, token); err != nil {
		t.Fatalf("token with another page size: %v", err)
	}
	others := []Query{
		{},
		{Status: irxv1.Status_STATUS_RESOLVED},
		{Status: irxv1.Status_STATUS_NEW, TLP: irxv1.Tlp_TLP_AMBER},
		{TLP: irxv1.Tlp_TLP_AMBER},
		{Status: irxv1.Status_STATUS_NEW, TaxonomyClass: "intrusions"},
		{Status: irxv1.Status_STATUS_NEW, OriginTeam: "cert-a"},
		{Status: irxv1.Status_STATUS_NEW, ReportedAfter: hour(0)},
		{Status: irxv1.Status_STATUS_NEW, ReportedBefore: hour(0)},
		{Status: irxv1.Status_STATUS_NEW, Indicator: "x"},
	}
	for _, o := range others {
		if _, _, err := h.f.List(o, 1, token); !errors.Is(err, ErrBadPageToken) {
			t.Errorf("token of %+v used with %+v: %v, want ErrBadPageToken", q, o, err)
		}
	}
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	for name, bad := range map[string]string{
		"garbage":         "!!not-a-token!!",
		"standard base64": base64.StdEncoding.EncodeToString(raw) + "+/=",
		"short":           base64.RawURLEncoding.EncodeToString(raw[:7]),
		"flipped":         base64.RawURLEncoding.EncodeToString(append([]byte{raw[0] ^ 1}, raw[1:]...)),
	} {
		if _, _, err := h.f.List(q, 1, bad); !errors.Is(err, ErrBadPageToken) {
			t.Errorf("%s token: %v, want ErrBadPageToken", name, err)
		}
		if _, _, err := h.f.Versions(idOf(1), 1, bad); !errors.Is(err, ErrBadPageToken) {
			t.Errorf("%s token on Versions: %v, want ErrBadPageToken", name, err)
		}
	}
}
