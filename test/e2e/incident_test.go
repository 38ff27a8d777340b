// Package e2e drives real irxd processes through their public gRPC API.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// irxdBin is built before the tests run: nearly every one starts a node.
var irxdBin string

func TestMain(m *testing.M) {
	var err error
	if irxdBin, err = irxdtest.SharedBinary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		irxdtest.RemoveSharedBinary()
		os.Exit(1)
	}
	irxdtest.Main(m)
}

type client struct {
	incidents irxv1.IncidentServiceClient
	cluster   irxv1.ClusterServiceClient
	health    healthpb.HealthClient
}

func dial(t *testing.T, n *irxdtest.Node) client {
	t.Helper()
	conn, err := n.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return clientOf(conn)
}

func clientOf(conn *grpc.ClientConn) client {
	return client{
		incidents: irxv1.NewIncidentServiceClient(conn),
		cluster:   irxv1.NewClusterServiceClient(conn),
		health:    healthpb.NewHealthClient(conn),
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sample is a realistic small report: a C2 server contacted from a victim.
func sample(n int) *irxv1.Incident {
	return &irxv1.Incident{
		Tlp:      irxv1.Tlp_TLP_AMBER,
		Taxonomy: &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
		Priority: irxv1.Priority_PRIORITY_HIGH,
		Descriptions: []*irxv1.Description{{
			Lang: "en", Text: fmt.Sprintf("Beaconing to a C2 server from a workstation (report %d)", n),
		}},
		VictimHosts:    []*irxv1.Host{{Hostname: fmt.Sprintf("ws%d.example.org", n), Addresses: []string{"192.0.2.10"}, Compromised: true}},
		AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}, Services: []*irxv1.Service{{IpProtocol: 6, Port: 443}}}},
		Indicators:     []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2.bad.example"}},
		Contacts: []*irxv1.Contact{{
			Role: irxv1.ContactRole_CONTACT_ROLE_REPORTER, Type: irxv1.ContactType_CONTACT_TYPE_PERSON,
			Name: "A. Reporter", Email: "soc@example.org",
		}},
	}
}

func create(t *testing.T, c client, inc *irxv1.Incident) *irxv1.Incident {
	t.Helper()
	resp, err := c.incidents.CreateIncident(ctxT(t), &irxv1.CreateIncidentRequest{Incident: inc})
	if err != nil {
		t.Fatalf("CreateIncident: %v", err)
	}
	return resp.GetIncident()
}

func clusterStatus(t *testing.T, c client) *irxv1.GetClusterStatusResponse {
	t.Helper()
	st, err := c.cluster.GetClusterStatus(ctxT(t), &irxv1.GetClusterStatusRequest{})
	if err != nil {
		t.Fatalf("GetClusterStatus: %v", err)
	}
	return st
}

func TestCreateGetUpdateVersions(t *testing.T) {
	n := irxdtest.StartNode(t, irxdBin)
	c := dial(t, n)
	ctx := ctxT(t)

	created := create(t, c, sample(1))
	if created.GetId() != "dev:1" || created.GetVersion() != 1 {
		t.Fatalf("created %q version %d, want dev:1 version 1", created.GetId(), created.GetVersion())
	}
	if created.GetStatus() != irxv1.Status_STATUS_NEW || created.GetRestriction() != irxv1.Restriction_RESTRICTION_PRIVATE {
		t.Errorf("defaults: status %v restriction %v", created.GetStatus(), created.GetRestriction())
	}
	if created.GetProvenance().GetOriginTeam() != "dev" || created.GetCreateTime() == nil || created.GetReportTime() == nil {
		t.Errorf("output-only fields not set: %v", created)
	}

	got, err := c.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetIncident(), created) {
		t.Errorf("GetIncident differs from CreateIncident's answer:\n got %v\nwant %v", got.GetIncident(), created)
	}

	upd, err := c.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
		Incident:   &irxv1.Incident{Id: created.GetId(), Status: irxv1.Status_STATUS_IN_PROGRESS, ReportingSite: &irxv1.ReportingSite{Name: "Example Org"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status", "reporting_site.name"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v2 := upd.GetIncident()
	if v2.GetVersion() != 2 || v2.GetStatus() != irxv1.Status_STATUS_IN_PROGRESS || v2.GetReportingSite().GetName() != "Example Org" {
		t.Fatalf("update: %v", v2)
	}
	if v2.GetDescriptions()[0].GetText() != created.GetDescriptions()[0].GetText() {
		t.Errorf("update changed a field outside the mask")
	}

	// Optimistic concurrency: expecting version 1 now fails, nothing changes.
	_, err = c.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
		Incident:        &irxv1.Incident{Id: created.GetId(), Status: irxv1.Status_STATUS_RESOLVED},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"status"}},
		ExpectedVersion: 1,
	})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("stale expected_version: %v, want ABORTED", err)
	}

	versions, err := c.incidents.ListIncidentVersions(ctx, &irxv1.ListIncidentVersionsRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(versions.GetIncidents()) != 2 || !proto.Equal(versions.GetIncidents()[0], created) || !proto.Equal(versions.GetIncidents()[1], v2) {
		t.Fatalf("versions: %v", versions.GetIncidents())
	}
	old, err := c.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: created.GetId(), Version: 1})
	if err != nil || !proto.Equal(old.GetIncident(), created) {
		t.Fatalf("GetIncident version 1: %v, %v", old.GetIncident(), err)
	}

	// Idempotent retry: the same request_id returns the same incident.
	req := &irxv1.CreateIncidentRequest{Incident: sample(2), RequestId: "7d1f0c1e-retry"}
	first, err := c.incidents.CreateIncident(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.incidents.CreateIncident(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetIncident().GetId() != second.GetIncident().GetId() || clusterStatus(t, c).GetLastTicket() != 2 {
		t.Fatalf("retry created another incident: %s then %s", first.GetIncident().GetId(), second.GetIncident().GetId())
	}
}

func TestListPaginationAndFilters(t *testing.T) {
	n := irxdtest.StartNode(t, irxdBin)
	c := dial(t, n)
	ctx := ctxT(t)

	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const total = 120
	for i := 1; i <= total; i++ {
		inc := sample(i)
		inc.ReportTime = timestamppb.New(base.Add(time.Duration(i) * time.Hour))
		switch {
		case i%10 == 0:
			inc.Taxonomy = &irxv1.Taxonomy{Class: "fraud", Type: "phishing"}
			inc.Tlp = irxv1.Tlp_TLP_GREEN
		case i%3 == 0:
			inc.Taxonomy = &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"}
		}
		if i == 77 {
			inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "203.0.113.77"})
		}
		create(t, c, inc)
	}
	if _, err := c.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
		Incident:   &irxv1.Incident{Id: "dev:5", Status: irxv1.Status_STATUS_RESOLVED},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}},
	}); err != nil {
		t.Fatal(err)
	}

	list := func(req *irxv1.ListIncidentsRequest) []string {
		t.Helper()
		var ids []string
		pages := 0
		for {
			resp, err := c.incidents.ListIncidents(ctx, req)
			if err != nil {
				t.Fatalf("ListIncidents(%v): %v", req, err)
			}
			pages++
			for _, inc := range resp.GetIncidents() {
				ids = append(ids, inc.GetId())
			}
			if resp.GetNextPageToken() == "" {
				break
			}
			if pages > total {
				t.Fatal("pagination does not end")
			}
			req = proto.Clone(req).(*irxv1.ListIncidentsRequest)
			req.PageToken = resp.GetNextPageToken()
		}
		return ids
	}
	want := func(pred func(i int) bool) []string {
		var ids []string
		for i := 1; i <= total; i++ {
			if pred(i) {
				ids = append(ids, fmt.Sprintf("dev:%d", i))
			}
		}
		return ids
	}
	check := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %d ids %v\nwant %d ids %v", name, len(got), got, len(want), want)
		}
	}

	// Pages of 50 over 120: 50, 50, 20, in ticket order.
	first, err := c.incidents.ListIncidents(ctx, &irxv1.ListIncidentsRequest{PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.GetIncidents()) != 50 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %d incidents, token %q", len(first.GetIncidents()), first.GetNextPageToken())
	}
	check("all", list(&irxv1.ListIncidentsRequest{PageSize: 50}), want(func(int) bool { return true }))
	check("status resolved", list(&irxv1.ListIncidentsRequest{Status: irxv1.Status_STATUS_RESOLVED}), []string{"dev:5"})
	check("status new", list(&irxv1.ListIncidentsRequest{Status: irxv1.Status_STATUS_NEW, PageSize: 7}), want(func(i int) bool { return i != 5 }))
	check("taxonomy class", list(&irxv1.ListIncidentsRequest{TaxonomyClass: "fraud", PageSize: 5}), want(func(i int) bool { return i%10 == 0 }))
	check("taxonomy type", list(&irxv1.ListIncidentsRequest{TaxonomyClass: "intrusion-attempts", TaxonomyType: "brute-force"}),
		want(func(i int) bool { return i%10 != 0 && i%3 == 0 }))
	check("tlp", list(&irxv1.ListIncidentsRequest{Tlp: irxv1.Tlp_TLP_GREEN}), want(func(i int) bool { return i%10 == 0 }))
	check("origin", list(&irxv1.ListIncidentsRequest{OriginTeam: "dev", PageSize: 33}), want(func(int) bool { return true }))
	check("other origin", list(&irxv1.ListIncidentsRequest{OriginTeam: "cert-b"}), nil)
	check("indicator", list(&irxv1.ListIncidentsRequest{Indicator: "203.0.113.77"}), []string{"dev:77"})
	check("time range", list(&irxv1.ListIncidentsRequest{
		ReportedAfter:  timestamppb.New(base.Add(10 * time.Hour)),
		ReportedBefore: timestamppb.New(base.Add(20 * time.Hour)),
		PageSize:       4,
	}), want(func(i int) bool { return i >= 10 && i < 20 }))
	check("time and tlp", list(&irxv1.ListIncidentsRequest{
		ReportedAfter: timestamppb.New(base.Add(50 * time.Hour)),
		Tlp:           irxv1.Tlp_TLP_GREEN,
	}), want(func(i int) bool { return i >= 50 && i%10 == 0 }))

	// A token only continues the query that issued it.
	_, err = c.incidents.ListIncidents(ctx, &irxv1.ListIncidentsRequest{Tlp: irxv1.Tlp_TLP_GREEN, PageToken: first.GetNextPageToken()})
	assertInvalid(t, err, "page_token")
}

// assertInvalid checks INVALID_ARGUMENT with a BadRequest naming each field.
func assertInvalid(t *testing.T, err error, fields ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT naming %v", err, fields)
	}
	var named []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				named = append(named, v.GetField())
			}
		}
	}
	for _, f := range fields {
		if !slices.Contains(named, f) {
			t.Errorf("violations %v do not name %q (message: %s)", named, f, st.Message())
		}
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	n := irxdtest.StartNode(t, irxdBin)
	c := dial(t, n)
	ctx := ctxT(t)
	create(t, c, sample(1))
	before := clusterStatus(t, c)

	valid := sample(0)
	with := func(mut func(*irxv1.Incident)) *irxv1.Incident {
		inc := proto.Clone(valid).(*irxv1.Incident)
		mut(inc)
		return inc
	}
	creates := []struct {
		name   string
		req    *irxv1.CreateIncidentRequest
		fields []string
	}{
		{"no incident", &irxv1.CreateIncidentRequest{}, []string{"incident"}},
		{"missing tlp and taxonomy", &irxv1.CreateIncidentRequest{Incident: &irxv1.Incident{}}, []string{"incident.tlp", "incident.taxonomy"}},
		{"unknown taxonomy class", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) { i.Taxonomy.Class = "malware" })}, []string{"incident.taxonomy.class"}},
		{"type of another class", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) { i.Taxonomy.Type = "phishing" })}, []string{"incident.taxonomy.type"}},
		{"bad address", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) { i.VictimHosts[0].Addresses = []string{"192.0.2.300"} })}, []string{"incident.victim_hosts[0].addresses[0]"}},
		{"undefined enum", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) { i.Tlp = 42 })}, []string{"incident.tlp"}},
		{"ipv4 indicator", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) {
			i.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "2001:db8::1"}}
		})}, []string{"incident.indicators[0].value"}},
		{"end before start", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) {
			i.StartTime = timestamppb.New(time.Unix(2000, 0))
			i.EndTime = timestamppb.New(time.Unix(1000, 0))
		})}, []string{"incident.end_time"}},
		{"oversize incident", &irxv1.CreateIncidentRequest{Incident: with(func(i *irxv1.Incident) {
			i.LogExcerpts = []*irxv1.LogExcerpt{{Content: strings.Repeat("x", 300<<10)}}
		})}, []string{"incident"}},
		{"long request id", &irxv1.CreateIncidentRequest{Incident: valid, RequestId: strings.Repeat("r", 200)}, []string{"request_id"}},
	}
	for _, tc := range creates {
		_, err := c.incidents.CreateIncident(ctx, tc.req)
		t.Run("create/"+tc.name, func(t *testing.T) { assertInvalid(t, err, tc.fields...) })
	}

	// Beyond the transport limit (4 MiB and 64 KiB, for a whole IODEF
	// document to ImportIncidents) gRPC itself refuses the message.
	huge := with(func(i *irxv1.Incident) { i.LogExcerpts = []*irxv1.LogExcerpt{{Content: strings.Repeat("x", 5<<20)}} })
	if _, err := c.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: huge}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("5 MiB request: %v, want RESOURCE_EXHAUSTED", err)
	}

	updates := []struct {
		name   string
		req    *irxv1.UpdateIncidentRequest
		fields []string
	}{
		{"no mask", &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev:1"}}, []string{"update_mask"}},
		{"unknown path", &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev:1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"colour"}}}, []string{"update_mask.paths[0]"}},
		{"output-only path", &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev:1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status", "version"}}}, []string{"update_mask.paths[1]"}},
		{"bad id", &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev-1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}}}, []string{"incident.id"}},
		{"clearing a required field", &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev:1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"taxonomy"}}}, []string{"incident.taxonomy"}},
		{"bad value", &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev:1", Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "nope"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"taxonomy"}}}, []string{"incident.taxonomy.type"}},
	}
	for _, tc := range updates {
		_, err := c.incidents.UpdateIncident(ctx, tc.req)
		t.Run("update/"+tc.name, func(t *testing.T) { assertInvalid(t, err, tc.fields...) })
	}

	_, err := c.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:99"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown id: %v, want NOT_FOUND", err)
	}
	_, err = c.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{Incident: &irxv1.Incident{Id: "dev:99"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("update unknown id: %v, want NOT_FOUND", err)
	}
	_, err = c.incidents.ListIncidentVersions(ctx, &irxv1.ListIncidentVersionsRequest{Id: "dev:99"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("versions of unknown id: %v, want NOT_FOUND", err)
	}
	_, err = c.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:01"})
	assertInvalid(t, err, "id")
	_, err = c.incidents.ListIncidents(ctx, &irxv1.ListIncidentsRequest{TaxonomyClass: "nope", PageSize: -1})
	assertInvalid(t, err, "taxonomy_class", "page_size")

	after := clusterStatus(t, c)
	if after.GetLastTicket() != before.GetLastTicket() || after.GetFeedSequence() != before.GetFeedSequence() {
		t.Errorf("bad input changed the state: tickets %d -> %d, feed %d -> %d",
			before.GetLastTicket(), after.GetLastTicket(), before.GetFeedSequence(), after.GetFeedSequence())
	}
	got, err := c.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:1"})
	if err != nil || got.GetIncident().GetVersion() != 1 {
		t.Errorf("dev:1 after bad updates: %v, %v", got.GetIncident(), err)
	}
}

func TestPersistenceAcrossRestartAndCrash(t *testing.T) {
	n, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	start := func() client {
		t.Helper()
		if err := n.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		conn, err := n.Dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return clientOf(conn)
	}
	t.Cleanup(func() { _ = n.Kill() })

	c := start()
	inc := create(t, c, sample(1))
	upd, err := c.incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{
		Incident:   &irxv1.Incident{Id: inc.GetId(), Status: irxv1.Status_STATUS_RESOLVED},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	c = start()
	versions, err := c.incidents.ListIncidentVersions(ctxT(t), &irxv1.ListIncidentVersionsRequest{Id: inc.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(versions.GetIncidents()) != 2 || !proto.Equal(versions.GetIncidents()[0], inc) || !proto.Equal(versions.GetIncidents()[1], upd.GetIncident()) {
		t.Fatalf("after restart: %v", versions.GetIncidents())
	}

	// A crash (SIGKILL) loses no acknowledged write: the Raft log is synced
	// before a create is acknowledged, and the state machine replays it.
	var acked []*irxv1.Incident
	for i := 0; i < 50; i++ {
		acked = append(acked, create(t, c, sample(i)))
	}
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	c = start()
	for _, want := range acked {
		got, err := c.incidents.GetIncident(ctxT(t), &irxv1.GetIncidentRequest{Id: want.GetId()})
		if err != nil || !proto.Equal(got.GetIncident(), want) {
			t.Fatalf("%s after SIGKILL: %v, %v", want.GetId(), got.GetIncident(), err)
		}
	}
	st := clusterStatus(t, c)
	if st.GetLastTicket() != 51 {
		t.Errorf("last ticket %d after restart, want 51", st.GetLastTicket())
	}
	next := create(t, c, sample(99))
	if next.GetId() != "dev:52" {
		t.Errorf("ticket after crash: %s, want dev:52 (unique, no gap)", next.GetId())
	}
}

func TestServicesAndHealth(t *testing.T) {
	n := irxdtest.StartNode(t, irxdBin)
	c := dial(t, n)
	resp, err := c.health.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "irx.v1.IncidentService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", resp, err)
	}
	st := clusterStatus(t, c)
	if st.GetTeamId() != "dev" || st.GetNodeId() != "node1" || st.GetRole() != irxv1.NodeRole_NODE_ROLE_LEADER ||
		st.GetLeaderId() != "node1" || len(st.GetMembers()) != 1 || !st.GetMembers()[0].GetVoter() || st.GetTerm() == 0 {
		t.Errorf("cluster status: %v", st)
	}
	if st.GetAppliedIndex() == 0 || st.GetAppliedIndex() > st.GetCommitIndex() {
		t.Errorf("applied %d, commit %d", st.GetAppliedIndex(), st.GetCommitIndex())
	}

	// Every call has a request id for the logs: the caller's, or a new one,
	// returned in the response header either way.
	var header metadata.MD
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-request-id", "ticket-42")
	if _, err := c.cluster.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "ticket-42" {
		t.Errorf("request id echoed as %v", got)
	}
	if _, err := c.cluster.GetClusterStatus(ctxT(t), &irxv1.GetClusterStatusRequest{}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || len(got[0]) != 32 {
		t.Errorf("generated request id %v", got)
	}
}

// TestCrashAfterSnapshotsLosesNothing: the state machine keeps no
// write-ahead log (the Raft log is the durable copy), and snapshots let raft
// truncate that log. A SIGKILL after many snapshots must still lose no
// acknowledged write: the node replays the log tail, or restores its newest
// snapshot first when its database is older than that.
func TestCrashAfterSnapshotsLosesNothing(t *testing.T) {
	n, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "data"),
		"--snapshot-threshold", "64", "--trailing-logs", "16", "--snapshot-interval", "200ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Kill() })
	if err := n.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n)
	const total = 1500
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 15 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 15 {
				if _, err := c.incidents.CreateIncident(ctxT(t), &irxv1.CreateIncidentRequest{Incident: sample(i), RequestId: fmt.Sprintf("crash-%d", i)}); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d creates failed", failed.Load())
	}
	// The crash must come after snapshots (the log is truncated behind
	// them), or the test proves only the plain replay.
	eventually(t, 30*time.Second, "a snapshot was taken", func() error {
		entries, err := os.ReadDir(filepath.Join(n.DataDir, "snapshots", "snapshots"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".tmp") {
				return nil
			}
		}
		return fmt.Errorf("%d snapshot entries, none complete", len(entries))
	})
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c = dial(t, n)
	st := clusterStatus(t, c)
	if st.GetLastTicket() != total {
		t.Fatalf("last ticket %d after the crash, want %d", st.GetLastTicket(), total)
	}
	for _, id := range []string{"dev:1", fmt.Sprintf("dev:%d", total/2), fmt.Sprintf("dev:%d", total)} {
		if _, err := c.incidents.GetIncident(ctxT(t), &irxv1.GetIncidentRequest{Id: id}); err != nil {
			t.Fatalf("%s after the crash: %v", id, err)
		}
	}
	if next := create(t, c, sample(0)); next.GetId() != fmt.Sprintf("dev:%d", total+1) {
		t.Fatalf("next ticket %s, want dev:%d", next.GetId(), total+1)
	}
}
