package node_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	"github.com/irxfed/irx/node"
	"github.com/irxfed/irx/node/api"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// startImportNode starts a one-node team with import defaults.
func startImportNode(t *testing.T, defaults api.ImportDefaults) irxv1.IncidentServiceClient {
	t.Helper()
	n, err := node.Start(node.Config{
		DataDir: filepath.Join(t.TempDir(), "data"), APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Import: defaults,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	conn, err := grpc.NewClient(n.APIAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cluster := irxv1.NewClusterServiceClient(conn)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := cluster.GetClusterStatus(context.Background(), &irxv1.GetClusterStatusRequest{})
		if err == nil && st.GetRole() == irxv1.NodeRole_NODE_ROLE_LEADER {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader: %v", err)
		}
	}
	return irxv1.NewIncidentServiceClient(conn)
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "formats", "iodef", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestImportExportIncidents imports RFC 8727's minimal example with the
// team's defaults, replays it, exports it in both formats and reads the
// exports back.
func TestImportExportIncidents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startImportNode(t, api.ImportDefaults{TLP: irxv1.Tlp_TLP_AMBER, Taxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"}})
	doc := readSample(t, "json/rfc8727-4.1-minimal.json")
	req := &irxv1.ImportIncidentsRequest{Document: doc, Format: irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON, DocumentName: "minimal.json"}
	resp, err := c.ImportIncidents(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != 1 {
		t.Fatalf("results %v", resp.GetResults())
	}
	r := resp.GetResults()[0]
	// restriction="private" says TLP:RED; no taxonomy entry can be derived.
	if r.GetId() == "" || r.GetErrorCode() != "" || r.GetTlpDefaulted() || !r.GetTaxonomyDefaulted() || r.GetRequestReplayed() {
		t.Fatalf("result %v: want created with the team's default taxonomy", r)
	}
	got, err := c.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: r.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if inc := got.GetIncident(); inc.GetTlp() != irxv1.Tlp_TLP_RED || inc.GetTaxonomy().GetClass() != "other" {
		t.Errorf("stored %v: want TLP:RED from the document, the team's default taxonomy", inc)
	}

	// The same document again creates nothing.
	again, err := c.ImportIncidents(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a := again.GetResults()[0]; !a.GetRequestReplayed() || a.GetId() != r.GetId() {
		t.Errorf("re-import %v: want the first import's %s replayed", a, r.GetId())
	}
	// A request's own default wins over the team's.
	own := proto.CloneOf(req)
	own.DefaultTaxonomy = &irxv1.Taxonomy{Class: "test", Type: "test"}
	own.RequestId = "own-defaults"
	test, err := c.ImportIncidents(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	if inc := test.GetResults()[0].GetIncident(); inc.GetTaxonomy().GetClass() != "test" {
		t.Errorf("with default_taxonomy test/test: %v", inc)
	}

	held := got.GetIncident()
	for _, format := range []irxv1.DocumentFormat{irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML, irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON} {
		exp, err := c.ExportIncidents(ctx, &irxv1.ExportIncidentsRequest{Format: format, Ids: []string{r.GetId()}})
		if err != nil {
			t.Fatal(err)
		}
		// The export is the held record encoded, nothing more.
		var want bytes.Buffer
		opts := iodef.EncodeOptions{Team: "dev"}
		if format == irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON {
			err = iodef.EncodeJSON(&want, []*irxv1.Incident{held}, opts)
		} else {
			err = iodef.Encode(&want, []*irxv1.Incident{held}, opts)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(exp.GetDocument(), want.Bytes()) {
			t.Errorf("%v: export differs from the held record encoded:\n%s\n---\n%s", format, exp.GetDocument(), want.Bytes())
		}
		if ct := exp.GetContentType(); !strings.HasPrefix(ct, "application/") {
			t.Errorf("content type %q", ct)
		}
		// Re-imported, the export makes the same record.
		back, err := c.ImportIncidents(ctx, &irxv1.ImportIncidentsRequest{Document: exp.GetDocument(), Format: format})
		if err != nil {
			t.Fatal(err)
		}
		b := back.GetResults()[0]
		if b.GetErrorCode() != "" {
			t.Fatalf("re-import of the %v export: %s %s", format, b.GetErrorCode(), b.GetErrorMessage())
		}
		reimported, err := c.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: b.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if a, z := comparable(held), comparable(reimported.GetIncident()); !proto.Equal(a, z) {
			t.Errorf("%v: re-imported record differs:\n%v\n%v", format, a, z)
		}
	}
}

// comparable is a record without what the team sets on every create (its
// id, times and provenance) and the sender's id, which a re-import adds.
func comparable(inc *irxv1.Incident) *irxv1.Incident {
	c := proto.CloneOf(inc)
	c.Id, c.Version, c.CreateTime, c.GenerationTime, c.Provenance, c.SenderGenerationTime = "", 0, nil, nil, nil, nil
	c.AlternativeIds = nil
	return c
}

// TestExportPages: without ids, an export pages through the filters'
// matches, each once.
func TestExportPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startImportNode(t, api.ImportDefaults{TLP: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"}})
	multi := readSample(t, "multi.xml")
	resp, err := c.ImportIncidents(ctx, &irxv1.ImportIncidentsRequest{Document: multi, Format: irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, r := range resp.GetResults() {
		if r.GetErrorCode() == "" {
			want[r.GetId()] = true
		}
	}
	if len(want) < 2 {
		t.Fatalf("multi.xml made %d incidents: %v", len(want), resp.GetResults())
	}
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("more pages than incidents")
		}
		exp, err := c.ExportIncidents(ctx, &irxv1.ExportIncidentsRequest{Format: irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON, PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range exp.GetIds() {
			if seen[id] {
				t.Errorf("%s exported twice", id)
			}
			seen[id] = true
		}
		if len(exp.GetIds()) > 0 {
			if _, err := iodef.DecodeJSON(bytes.NewReader(exp.GetDocument()), "page", iodef.Options{}); err != nil {
				t.Errorf("page: %v", err)
			}
		}
		if token = exp.GetNextPageToken(); token == "" {
			break
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("%s not exported", id)
		}
	}
}

// TestImportExportBadInput: bad requests are INVALID_ARGUMENT or NOT_FOUND
// naming the field, and nothing is created.
func TestImportExportBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startImportNode(t, api.ImportDefaults{TLP: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"}})
	xml := irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML
	jsonF := irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON
	dos := readSample(t, "dos.xml")
	for _, tc := range []struct {
		name  string
		req   *irxv1.ImportIncidentsRequest
		field string
		want  string
	}{
		{"empty", &irxv1.ImportIncidentsRequest{Format: xml}, "document", "is required"},
		{"no format", &irxv1.ImportIncidentsRequest{Document: dos}, "format", "is required"},
		{"unknown format", &irxv1.ImportIncidentsRequest{Document: dos, Format: 9}, "format", "not a DocumentFormat"},
		{"oversize", &irxv1.ImportIncidentsRequest{Document: bytes.Repeat([]byte(" "), iodef.MaxDocumentBytes+1), Format: xml}, "document", "limit"},
		{"truncated XML", &irxv1.ImportIncidentsRequest{Document: dos[:len(dos)/2], Format: xml}, "document", "line "},
		{"XML as JSON", &irxv1.ImportIncidentsRequest{Document: dos, Format: jsonF}, "document", "JSON syntax error"},
		{"DTD", &irxv1.ImportIncidentsRequest{Document: []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p "x">]><IODEF-Document/>`), Format: xml}, "document", ""},
		{"bad taxonomy", &irxv1.ImportIncidentsRequest{Document: dos, Format: xml, DefaultTaxonomy: &irxv1.Taxonomy{Class: "no", Type: "such"}}, "default_taxonomy", "not an entry"},
		{"bad tlp", &irxv1.ImportIncidentsRequest{Document: dos, Format: xml, DefaultTlp: 42}, "default_tlp", "not a Tlp"},
		{"long request id", &irxv1.ImportIncidentsRequest{Document: dos, Format: xml, RequestId: strings.Repeat("x", 97)}, "request_id", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ImportIncidents(ctx, tc.req)
			code, fields, desc := badFields(err)
			if code != codes.InvalidArgument || len(fields) == 0 || fields[0] != tc.field || !strings.Contains(desc, tc.want) {
				t.Errorf("got %v %v %q; want INVALID_ARGUMENT on %s containing %q", code, fields, desc, tc.field, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		req   *irxv1.ExportIncidentsRequest
		code  codes.Code
		field string
	}{
		{"no format", &irxv1.ExportIncidentsRequest{Ids: []string{"dev:1"}}, codes.InvalidArgument, "format"},
		{"bad id", &irxv1.ExportIncidentsRequest{Format: xml, Ids: []string{"nope"}}, codes.InvalidArgument, "ids[0]"},
		{"twice", &irxv1.ExportIncidentsRequest{Format: xml, Ids: []string{"dev:1", "dev:1"}}, codes.InvalidArgument, "ids[1]"},
		{"ids and filters", &irxv1.ExportIncidentsRequest{Format: xml, Ids: []string{"dev:1"}, Tlp: irxv1.Tlp_TLP_RED}, codes.InvalidArgument, "ids"},
		{"page size", &irxv1.ExportIncidentsRequest{Format: xml, PageSize: 5000}, codes.InvalidArgument, "page_size"},
		{"bad token", &irxv1.ExportIncidentsRequest{Format: xml, PageToken: "garbage"}, codes.InvalidArgument, "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ExportIncidents(ctx, tc.req)
			code, fields, _ := badFields(err)
			if code != tc.code || len(fields) == 0 || fields[0] != tc.field {
				t.Errorf("got %v %v (%v); want %v on %s", code, fields, err, tc.code, tc.field)
			}
		})
	}
	_, err := c.ExportIncidents(ctx, &irxv1.ExportIncidentsRequest{Format: xml, Ids: []string{"dev:999"}})
	if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "ids[0]") {
		t.Errorf("unknown id: %v; want NOT_FOUND naming ids[0]", err)
	}
	list, err := c.ListIncidents(ctx, &irxv1.ListIncidentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetIncidents()); n != 0 {
		t.Errorf("%d incidents created by bad requests", n)
	}
}
