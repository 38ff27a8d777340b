package record

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func TestCheckMask(t *testing.T) {
	tests := []struct {
		name string
		mask *fieldmaskpb.FieldMask
		want []string
	}{
		{"nil mask", nil, []string{"update_mask"}},
		{"no paths", mask(), []string{"update_mask"}},
		{"star alone", mask("*"), nil},
		{"star first with others", mask("*", "tlp"), []string{"update_mask.paths[0]"}},
		{"star last with others", mask("tlp", "status", "*"), []string{"update_mask.paths[2]"}},
		{"star twice", mask("*", "*"), []string{"update_mask.paths[0]", "update_mask.paths[1]"}},
		{"top-level fields", mask("tlp", "status", "victim_hosts", "taxonomy", "additional_taxonomies", "report_time"), nil},
		{"nested singular path", mask("reporting_site.name"), nil},
		{"nested paths", mask("taxonomy.class", "taxonomy.type", "disclosure_consent.law_enforcement.hosts", "related_activity.incident_ids"), nil},
		{"unknown field", mask("tlp", "severity"), []string{"update_mask.paths[1]"}},
		{"unknown nested field", mask("reporting_site.nickname"), []string{"update_mask.paths[0]"}},
		{"through a repeated field", mask("victim_hosts.hostname"), []string{"update_mask.paths[0]"}},
		{"through a scalar", mask("tlp.value"), []string{"update_mask.paths[0]"}},
		{"json name", mask("reportingSite"), []string{"update_mask.paths[0]"}},
		{"wrong case", mask("TLP"), []string{"update_mask.paths[0]"}},
		{"empty path", mask(""), []string{"update_mask.paths[0]"}},
		{"trailing dot", mask("taxonomy."), []string{"update_mask.paths[0]"}},
		{"leading dot", mask(".taxonomy"), []string{"update_mask.paths[0]"}},
		{"double dot", mask("taxonomy..class"), []string{"update_mask.paths[0]"}},
		{"output only", mask("id", "version", "generation_time", "create_time", "provenance"),
			[]string{"update_mask.paths[0]", "update_mask.paths[1]", "update_mask.paths[2]", "update_mask.paths[3]", "update_mask.paths[4]"}},
		{"nested output only", mask("tlp", "provenance.origin_team", "create_time.seconds"),
			[]string{"update_mask.paths[1]", "update_mask.paths[2]"}},
		{"mixed", mask("status", "nope", "id", "reporting_site.name"), []string{"update_mask.paths[1]", "update_mask.paths[2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violationFields(t, CheckMask(tt.mask, "update_mask"))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("CheckMask(%v) violations = %q, want %q", tt.mask.GetPaths(), got, tt.want)
			}
		})
	}
	// The field name given is the prefix of every violation.
	got := violationFields(t, CheckMask(mask("tlp", "x"), "req.mask"))
	if !slices.Equal(got, []string{"req.mask.paths[1]"}) {
		t.Fatalf("violations = %q, want [req.mask.paths[1]]", got)
	}
}

// stored is a current version as the state machine holds it, output-only
// fields included.
func stored() *irxv1.Incident {
	inc := fullIncident()
	inc.Id = "cert-a:7"
	inc.Version = 3
	inc.CreateTime = timestamppb.New(t0.Add(-48 * time.Hour))
	inc.GenerationTime = timestamppb.New(t0.Add(-time.Hour))
	inc.Provenance = &irxv1.Provenance{OriginTeam: "cert-a"}
	inc.ReportingSite = &irxv1.ReportingSite{Name: "Example Ltd", Domain: "example.org", Description: "retail", IsIsp: true}
	return inc
}

func TestApplyMaskTopLevelReplace(t *testing.T) {
	current := stored()
	orig := proto.Clone(current)
	patch := &irxv1.Incident{
		Tlp:          irxv1.Tlp_TLP_RED,
		Status:       irxv1.Status_STATUS_RESOLVED, // not in the mask: ignored
		Descriptions: []*irxv1.Description{{Text: "b"}, {Text: "c"}},
		VictimHosts:  []*irxv1.Host{{Hostname: "db.example.org"}},
	}
	next := ApplyMask(current, patch, mask("tlp", "descriptions", "victim_hosts"))

	want := proto.Clone(orig).(*irxv1.Incident)
	want.Tlp = irxv1.Tlp_TLP_RED
	want.Descriptions = []*irxv1.Description{{Text: "b"}, {Text: "c"}}
	want.VictimHosts = []*irxv1.Host{{Hostname: "db.example.org"}}
	if !proto.Equal(next, want) {
		t.Fatalf("ApplyMask:\n got %v\nwant %v", next, want)
	}
	if !proto.Equal(current, orig) {
		t.Fatalf("ApplyMask modified current")
	}
}

func TestApplyMaskClearsNamedUnsetFields(t *testing.T) {
	current := stored()
	next := ApplyMask(current, &irxv1.Incident{}, mask("victim_hosts", "assistance_requested", "reporting_site", "priority", "end_time"))
	if len(next.GetVictimHosts()) != 0 || next.AssistanceRequested != "" || next.ReportingSite != nil ||
		next.Priority != irxv1.Priority_PRIORITY_UNSPECIFIED || next.EndTime != nil {
		t.Fatalf("named fields not cleared: %v", next)
	}
	// Everything else is untouched.
	want := stored()
	want.VictimHosts, want.AssistanceRequested, want.ReportingSite, want.Priority, want.EndTime = nil, "", nil, 0, nil
	if !proto.Equal(next, want) {
		t.Fatalf("ApplyMask changed fields outside the mask:\n got %v\nwant %v", next, want)
	}
}

func TestApplyMaskNestedPath(t *testing.T) {
	current := stored()
	patch := &irxv1.Incident{
		ReportingSite: &irxv1.ReportingSite{Name: "Example Holdings", Domain: "changed.example", IsIsp: false},
		Tlp:           irxv1.Tlp_TLP_CLEAR,
	}
	next := ApplyMask(current, patch, mask("reporting_site.name"))
	want := stored()
	want.ReportingSite.Name = "Example Holdings"
	if !proto.Equal(next, want) {
		t.Fatalf("nested path changed more than its leaf:\n got %v\nwant %v", next.ReportingSite, want.ReportingSite)
	}

	// A nested leaf the patch leaves unset is cleared, its siblings kept.
	next = ApplyMask(current, &irxv1.Incident{}, mask("reporting_site.domain", "taxonomy.type"))
	if got := next.GetReportingSite(); got.GetDomain() != "" || got.GetName() != "Example Ltd" || !got.GetIsIsp() || got.GetDescription() != "retail" {
		t.Fatalf("reporting_site after clearing domain = %v", got)
	}
	if got := next.GetTaxonomy(); got.GetType() != "" || got.GetClass() != "intrusions" {
		t.Fatalf("taxonomy after clearing type = %v", got)
	}

	// A nested path into a message current does not have creates it.
	current.ReportingSite = nil
	next = ApplyMask(current, patch, mask("reporting_site.domain"))
	if got := next.GetReportingSite(); got.GetDomain() != "changed.example" || got.GetName() != "" {
		t.Fatalf("reporting_site created by nested path = %v", got)
	}
	// Three levels deep.
	current = stored()
	patch = &irxv1.Incident{DisclosureConsent: &irxv1.DisclosureConsent{LawEnforcement: &irxv1.ConsentScope{Hosts: true, Domain: true}}}
	next = ApplyMask(current, patch, mask("disclosure_consent.law_enforcement.hosts"))
	dc := next.GetDisclosureConsent()
	if !dc.GetLawEnforcement().GetHosts() || dc.GetLawEnforcement().GetDomain() || !dc.GetResponseTeams().GetDomain() {
		t.Fatalf("disclosure_consent = %v", dc)
	}
}

func TestApplyMaskStarKeepsOutputOnly(t *testing.T) {
	current := stored()
	patch := fullIncident()
	patch.Tlp = irxv1.Tlp_TLP_GREEN
	patch.AssistanceRequested = "" // unset in patch: cleared by "*"
	patch.Compromise = nil
	patch.Id = "cert-z:999"
	patch.Version = 42
	patch.CreateTime = timestamppb.New(t0.Add(time.Hour))
	patch.GenerationTime = timestamppb.New(t0.Add(time.Hour))
	patch.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-y"}}

	next := ApplyMask(current, patch, mask("*"))

	want := proto.Clone(patch).(*irxv1.Incident)
	want.Id, want.Version, want.CreateTime, want.GenerationTime, want.Provenance =
		current.Id, current.Version, current.CreateTime, current.GenerationTime, current.Provenance
	if !proto.Equal(next, want) {
		t.Fatalf("ApplyMask(*):\n got %v\nwant %v", next, want)
	}
	if next.AssistanceRequested != "" || next.Compromise != nil || next.ReportingSite.GetIsIsp() {
		t.Fatalf("\"*\" did not clear fields unset in the patch")
	}
}

// TestApplyMaskSharesNoMemory mutates the patch and current after the merge:
// the result must not change (the state machine keeps it as the new version).
func TestApplyMaskSharesNoMemory(t *testing.T) {
	for _, m := range []*fieldmaskpb.FieldMask{
		mask("*"),
		mask("victim_hosts", "taxonomy", "reporting_site.name", "named_recipients", "indicators", "start_time", "related_activity"),
	} {
		current, patch := stored(), fullIncident()
		patch.ReportingSite = &irxv1.ReportingSite{Name: "P"}
		next := ApplyMask(current, patch, m)
		snapshot := proto.Clone(next)

		patch.VictimHosts[0].Hostname = "mutated"
		patch.VictimHosts[0].Addresses[0] = "203.0.113.1"
		patch.VictimHosts[0].Services[0].Port = 1
		patch.VictimHosts = append(patch.VictimHosts, &irxv1.Host{Hostname: "appended"})
		patch.Taxonomy.Class = "fraud"
		patch.ReportingSite.Name = "mutated"
		patch.NamedRecipients[0] = "mutated"
		patch.Indicators[0].Value = "203.0.113.2"
		patch.StartTime.Seconds++
		patch.RelatedActivity.IncidentIds[0] = "cert-q:1"
		current.ReportingSite.Domain = "mutated.example"
		current.Provenance.OriginTeam = "mutated"
		current.CreateTime.Seconds++
		current.Descriptions[0].Text = "mutated"

		if !proto.Equal(next, snapshot) {
			t.Fatalf("mask %v: result changed when patch or current were mutated:\n got %v\nwant %v", m.GetPaths(), next, snapshot)
		}
	}
}

func TestClearOutputOnly(t *testing.T) {
	inc := stored()
	ClearOutputOnly(inc)
	if inc.Id != "" || inc.Version != 0 || inc.GenerationTime != nil || inc.CreateTime != nil || inc.Provenance != nil {
		t.Fatalf("output-only fields left: %v", inc)
	}
	want := fullIncident()
	want.ReportingSite = stored().ReportingSite
	if !proto.Equal(inc, want) {
		t.Fatalf("ClearOutputOnly cleared client fields:\n got %v\nwant %v", inc, want)
	}
}

func TestApplyDefaults(t *testing.T) {
	now := timestamppb.New(t0)
	inc := &irxv1.Incident{}
	ApplyDefaults(inc, now)
	if inc.Status != irxv1.Status_STATUS_NEW || inc.Purpose != irxv1.Purpose_PURPOSE_REPORTING ||
		inc.Restriction != irxv1.Restriction_RESTRICTION_PRIVATE || !proto.Equal(inc.ReportTime, now) {
		t.Fatalf("defaults = status %v purpose %v restriction %v report_time %v", inc.Status, inc.Purpose, inc.Restriction, inc.ReportTime)
	}
	set := fullIncident()
	want := proto.Clone(set)
	ApplyDefaults(set, timestamppb.New(t0.Add(time.Hour)))
	if !proto.Equal(set, want) {
		t.Fatalf("ApplyDefaults overwrote set fields:\n got %v\nwant %v", set, want)
	}
}

func TestViolationErrorMessage(t *testing.T) {
	err := CheckMask(mask("*", "nope"), "update_mask")
	msg := err.Error()
	for _, s := range []string{"invalid incident: ", "update_mask.paths[0]: ", "update_mask.paths[1]: ", `"nope"`, "; "} {
		if !strings.Contains(msg, s) {
			t.Errorf("Error() = %q, want it to contain %q", msg, s)
		}
	}
}
