package node_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func hygieneIncident(tlp irxv1.Tlp) *irxv1.Incident {
	return &irxv1.Incident{
		Tlp:          tlp,
		Taxonomy:     &irxv1.Taxonomy{Class: "information-gathering", Type: "scanner"},
		Descriptions: []*irxv1.Description{{Lang: "en", Text: "two lines\n\tindented"}},
		VictimHosts:  []*irxv1.Host{{Hostname: "ws17.example.edu", Addresses: []string{"192.0.2.1"}}},
	}
}

// badFields returns the code of err and the fields its BadRequest names.
func badFields(err error) (codes.Code, []string, string) {
	st := status.Convert(err)
	var fields []string
	var descs []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
				descs = append(descs, v.GetDescription())
			}
		}
	}
	return st.Code(), fields, strings.Join(descs, "; ")
}

// TestOperatorInputHygiene drives a real node's operator API with what
// the input rules refuse: each is INVALID_ARGUMENT naming the field, and
// nothing is stored.
func TestOperatorInputHygiene(t *testing.T) {
	_, conn := startNode(t)
	incidents := irxv1.NewIncidentServiceClient(conn)
	cluster := irxv1.NewClusterServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	unknownHost := hygieneIncident(irxv1.Tlp_TLP_GREEN)
	unknownHost.VictimHosts[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	unknownTop := &irxv1.CreateIncidentRequest{Incident: hygieneIncident(irxv1.Tlp_TLP_GREEN)}
	unknownTop.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 1))
	escText := hygieneIncident(irxv1.Tlp_TLP_GREEN)
	escText.Descriptions[0].Text = "fine\x1b[2K\rINFO forged log line"
	bidi := hygieneIncident(irxv1.Tlp_TLP_GREEN)
	bidi.VictimHosts[0].Site = "lab\u202eexe.txt"
	future := hygieneIncident(irxv1.Tlp_TLP_GREEN)
	future.ReportTime = timestamppb.New(time.Now().AddDate(50, 0, 0))

	for _, c := range []struct {
		name      string
		req       *irxv1.CreateIncidentRequest
		field     string
		descHolds string
	}{
		{"unknown nested field", &irxv1.CreateIncidentRequest{Incident: unknownHost}, "incident.victim_hosts[0]", "field number 99"},
		{"unknown top-level field", unknownTop, "(request)", "field number 7"},
		{"ESC in free text", &irxv1.CreateIncidentRequest{Incident: escText}, "incident.descriptions[0].text", "ESC (U+001B)"},
		{"bidi override in a one-line field", &irxv1.CreateIncidentRequest{Incident: bidi}, "incident.victim_hosts[0].site", "U+202E"},
		{"control character in request_id", &irxv1.CreateIncidentRequest{Incident: hygieneIncident(irxv1.Tlp_TLP_GREEN), RequestId: "a\nb"}, "request_id", "line feed"},
		{"report time 50 years ahead", &irxv1.CreateIncidentRequest{Incident: future}, "incident.report_time", "in the future"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, err := cluster.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = incidents.CreateIncident(ctx, c.req)
			code, fields, desc := badFields(err)
			if code != codes.InvalidArgument || !slices.Contains(fields, c.field) || !strings.Contains(desc, c.descHolds) {
				t.Fatalf("got %v (fields %q), want INVALID_ARGUMENT naming %s with %q", err, fields, c.field, c.descHolds)
			}
			after, err := cluster.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if after.GetLastTicket() != before.GetLastTicket() {
				t.Fatal("a refused create took a ticket")
			}
		})
	}

	// Any other request is walked for unknown fields too.
	statusReq := &irxv1.GetClusterStatusRequest{}
	statusReq.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 42, protowire.VarintType), 1))
	_, err := cluster.GetClusterStatus(ctx, statusReq)
	if code, fields, desc := badFields(err); code != codes.InvalidArgument || !slices.Equal(fields, []string{"(request)"}) || !strings.Contains(desc, "field number 42") {
		t.Fatalf("GetClusterStatus with an unknown field: %v", err)
	}

	// Every other request's strings follow the free-text rule, nested ones
	// included, and a refused one changes nothing.
	policies := irxv1.NewPolicyServiceClient(conn)
	_, err = policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{Policy: &irxv1.DisclosurePolicy{
		PeerTeamId: "cert-b", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM, TlpCeiling: irxv1.Tlp_TLP_AMBER,
		Constituency: &irxv1.Constituency{Domains: []string{"example.org", "exe‮gro.example"}},
	}})
	if code, fields, desc := badFields(err); code != codes.InvalidArgument || !slices.Equal(fields, []string{"policy.constituency.domains[1]"}) || !strings.Contains(desc, "U+202E") {
		t.Fatalf("SetPolicy with a bidi override in a domain: %v", err)
	}
	if _, err := policies.GetPolicy(ctx, &irxv1.GetPolicyRequest{PeerTeamId: "cert-b"}); status.Code(err) != codes.NotFound {
		t.Fatalf("the refused policy: %v", err)
	}
	_, err = incidents.ListIncidents(ctx, &irxv1.ListIncidentsRequest{Indicator: "c2[2J.example"})
	if code, fields, _ := badFields(err); code != codes.InvalidArgument || !slices.Equal(fields, []string{"indicator"}) {
		t.Fatalf("ListIncidents with ESC in a filter: %v", err)
	}

	// The same record with clean input is stored, newlines and all.
	resp, err := incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: hygieneIncident(irxv1.Tlp_TLP_GREEN)})
	if err != nil {
		t.Fatal(err)
	}
	patch := &irxv1.Incident{Id: resp.GetIncident().GetId(), Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}}
	patch.Taxonomy.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 1))
	_, err = incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{Incident: patch, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"taxonomy"}}})
	if code, fields, _ := badFields(err); code != codes.InvalidArgument || !slices.Equal(fields, []string{"incident.taxonomy"}) {
		t.Fatalf("update with an unknown field in the taxonomy: %v", err)
	}
	if got := resp.GetIncident().GetDescriptions()[0].GetText(); got != "two lines\n\tindented" {
		t.Fatalf("stored text %q", got)
	}
	// An update is held to the same rules.
	_, err = incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
		Incident:   &irxv1.Incident{Id: resp.GetIncident().GetId(), ReportTime: timestamppb.New(time.Now().Add(time.Hour))},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"report_time"}},
	})
	if code, fields, _ := badFields(err); code != codes.InvalidArgument || !slices.Contains(fields, "incident.report_time") {
		t.Fatalf("update with a future report time: %v", err)
	}
}

// TestRequestIDReuse: a request id reused with the same incident answers
// the first record, marked replayed; with another incident it is refused
// with ALREADY_EXISTS naming the record, and the record keeps its TLP.
func TestRequestIDReuse(t *testing.T) {
	_, conn := startNode(t)
	incidents := irxv1.NewIncidentServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, err := incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: hygieneIncident(irxv1.Tlp_TLP_GREEN), RequestId: "import-7"})
	if err != nil || first.GetRequestReplayed() {
		t.Fatalf("first create: replayed %v, %v", first.GetRequestReplayed(), err)
	}
	id := first.GetIncident().GetId()
	again, err := incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: hygieneIncident(irxv1.Tlp_TLP_GREEN), RequestId: "import-7"})
	if err != nil || !again.GetRequestReplayed() || again.GetIncident().GetId() != id {
		t.Fatalf("retry: %v replayed %v, %v", again.GetIncident().GetId(), again.GetRequestReplayed(), err)
	}
	_, err = incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: hygieneIncident(irxv1.Tlp_TLP_RED), RequestId: "import-7"})
	st := status.Convert(err)
	var named string
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.ResourceInfo); ok {
			named = ri.GetResourceName()
		}
	}
	if st.Code() != codes.AlreadyExists || named != id || !strings.Contains(st.Message(), "different incident body") {
		t.Fatalf("reuse with another body: %v (resource %q), want ALREADY_EXISTS naming %s", err, named, id)
	}
	got, err := incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: id})
	if err != nil || got.GetIncident().GetTlp() != irxv1.Tlp_TLP_GREEN || got.GetIncident().GetVersion() != 1 {
		t.Fatalf("stored record after the refused reuse: %v %v", got.GetIncident(), err)
	}
}
