package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The bounds of ImportIncidents' request beyond the document's own
// (iodef.MaxDocumentBytes).
const (
	// MaxImportRequestIDLength leaves room in CreateIncident's request id
	// for "/incident-N".
	MaxImportRequestIDLength = 96
	// MaxDocumentNameLength bounds ImportIncidentsRequest.document_name.
	MaxDocumentNameLength = 256
	// MaxImportRequestBytes is the largest ImportIncidents request: a
	// document at its bound and the few other fields. The operator API
	// reads requests up to it.
	MaxImportRequestBytes = iodef.MaxDocumentBytes + 64<<10
	// importConcurrency bounds the creates of one document in flight:
	// enough for the leader to batch them into few log entries.
	importConcurrency = 16
)

// ImportDefaults are the team's configured defaults for what an imported
// document does not say (irxd's import.default_tlp and
// import.default_taxonomy); a request's own defaults take precedence.
type ImportDefaults struct {
	TLP      irxv1.Tlp
	Taxonomy *irxv1.Taxonomy
}

// WithImportDefaults sets the team's import defaults and returns s.
func (s *IncidentService) WithImportDefaults(d ImportDefaults) *IncidentService {
	s.importDefaults = d
	return s
}

// ImportIncidents implements irx.v1.IncidentService: the document is
// decoded here, on the node, and every Incident in it created through
// CreateIncident, so an imported record passes the same checks, and is
// replayed the same way, as one created directly.
func (s *IncidentService) ImportIncidents(ctx context.Context, req *irxv1.ImportIncidentsRequest) (*irxv1.ImportIncidentsResponse, error) {
	vs := checkDocumentRequest(req)
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	name := req.GetDocumentName()
	// The names say where a default came from, or how to give one.
	opts := iodef.Options{
		DefaultTLP: req.GetDefaultTlp(), DefaultTaxonomy: req.GetDefaultTaxonomy(),
		DefaultTLPName: "default_tlp", DefaultTaxonomyName: "default_taxonomy",
	}
	switch {
	case opts.DefaultTLP != irxv1.Tlp_TLP_UNSPECIFIED:
	case s.importDefaults.TLP != irxv1.Tlp_TLP_UNSPECIFIED:
		opts.DefaultTLP, opts.DefaultTLPName = s.importDefaults.TLP, "the team's import.default_tlp"
	default:
		opts.DefaultTLPName = "default_tlp (or configure the team's import.default_tlp)"
	}
	switch {
	case opts.DefaultTaxonomy != nil:
	case s.importDefaults.Taxonomy != nil:
		opts.DefaultTaxonomy, opts.DefaultTaxonomyName = s.importDefaults.Taxonomy, "the team's import.default_taxonomy"
	default:
		opts.DefaultTaxonomyName = "default_taxonomy CLASS/TYPE (or configure the team's import.default_taxonomy)"
	}
	doc, defaulted, err := decodeWithDefaults(req.GetDocument(), req.GetFormat(), name, opts)
	if err != nil {
		return nil, err
	}
	prefix := req.GetRequestId()
	if prefix == "" {
		prefix = documentRequestID(req.GetFormat(), req.GetDocument())
	}

	resp := &irxv1.ImportIncidentsResponse{Warning: doc.Warning(), Results: make([]*irxv1.ImportedIncident, len(doc.Incidents))}
	var wg sync.WaitGroup
	sem := make(chan struct{}, importConcurrency)
	for i, d := range doc.Incidents {
		res := &irxv1.ImportedIncident{Index: int32(d.Index), Line: int32(d.Line), Incident: d.Incident}
		resp.Results[i] = res
		if d.Err != nil {
			res.ErrorCode, res.ErrorMessage = codes.InvalidArgument.String(), d.Err.Error()
			continue
		}
		res.TlpDefaulted, res.TaxonomyDefaulted = defaulted[i].tlp, defaulted[i].taxonomy
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.importOne(ctx, res, fmt.Sprintf("%s/incident-%d", prefix, d.Index))
		}()
	}
	wg.Wait()
	return resp, nil
}

// importOne creates one decoded incident and records the outcome in res.
func (s *IncidentService) importOne(ctx context.Context, res *irxv1.ImportedIncident, requestID string) {
	// CreateIncident may change what it is given (it clears output-only
	// fields of a refused request): it gets a copy, res keeps the record
	// as decoded.
	created, err := s.create(ctx, &irxv1.CreateIncidentRequest{Incident: proto.CloneOf(res.GetIncident()), RequestId: requestID})
	if err == nil {
		res.RequestReplayed = created.Replayed
		res.Id = created.Incident.GetId()
		if created.Encoded != nil {
			res.Id = encodedID(created.Encoded)
		}
		return
	}
	st := status.Convert(errgrpcStatus(err))
	res.ErrorCode = st.Code().String()
	msg := []string{st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			msg = msg[:0]
			for _, v := range d.GetFieldViolations() {
				msg = append(msg, v.GetField()+": "+v.GetDescription())
			}
		case *errdetails.ResourceInfo:
			if d.GetResourceType() == "irx.v1.Incident" {
				res.Id = d.GetResourceName()
			}
		}
	}
	res.ErrorMessage = strings.Join(msg, "\n")
}

// errgrpcStatus is err as a status: what CreateIncident returns is one
// already, except an error of the proposer.
func errgrpcStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return ToStatus(err)
}

// defaultedAt says which defaults an incident of a document took.
type defaultedAt struct{ tlp, taxonomy bool }

// decodeWithDefaults decodes a document and says, per incident, which of
// the defaults in opts it took: the document is read without them first,
// and again with them only when an incident needed one, so a document that
// says everything is read once.
func decodeWithDefaults(data []byte, format irxv1.DocumentFormat, name string, opts iodef.Options) (*iodef.Document, []defaultedAt, error) {
	bare := opts
	bare.DefaultTLP, bare.DefaultTaxonomy = irxv1.Tlp_TLP_UNSPECIFIED, nil
	doc, err := decodeDocument(data, format, name, bare)
	if err != nil {
		return nil, nil, err
	}
	defaulted := make([]defaultedAt, len(doc.Incidents))
	again := false
	for i, d := range doc.Incidents {
		defaulted[i] = defaultedAt{tlp: errors.Is(d.Err, iodef.ErrNoTLP), taxonomy: errors.Is(d.Err, iodef.ErrNoTaxonomy)}
		canFill := (defaulted[i].tlp && opts.DefaultTLP != irxv1.Tlp_TLP_UNSPECIFIED) || (defaulted[i].taxonomy && opts.DefaultTaxonomy != nil)
		again = again || canFill
	}
	if !again {
		return doc, defaulted, nil
	}
	doc, err = decodeDocument(data, format, name, opts)
	if err != nil {
		return nil, nil, err
	}
	return doc, defaulted, nil
}

// decodeDocument decodes data in format; a problem with the document as a
// whole is INVALID_ARGUMENT naming the field "document", with the place in
// the document (line:column and the element path) the problem is at.
func decodeDocument(data []byte, format irxv1.DocumentFormat, name string, opts iodef.Options) (*iodef.Document, error) {
	var (
		doc *iodef.Document
		err error
	)
	switch format {
	case irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON:
		doc, err = iodef.DecodeJSON(bytes.NewReader(data), name, opts)
	default:
		doc, err = iodef.Decode(bytes.NewReader(data), name, opts)
	}
	if err != nil {
		return nil, invalidArgument([]record.Violation{{Field: "document", Description: err.Error()}})
	}
	return doc, nil
}

// checkDocumentRequest checks what ImportIncidents can check before
// decoding.
func checkDocumentRequest(req *irxv1.ImportIncidentsRequest) []record.Violation {
	var vs []record.Violation
	switch n := len(req.GetDocument()); {
	case n == 0:
		vs = append(vs, record.Violation{Field: "document", Description: "is required: an IODEF document"})
	case n > iodef.MaxDocumentBytes:
		vs = append(vs, record.Violation{Field: "document", Description: fmt.Sprintf("is %d bytes; the limit is %d (4 MiB): split it", n, iodef.MaxDocumentBytes)})
	}
	vs = append(vs, checkFormat(req.GetFormat())...)
	if t := req.GetDefaultTlp(); irxv1.Tlp_name[int32(t)] == "" {
		vs = append(vs, record.Violation{Field: "default_tlp", Description: fmt.Sprintf("%d is not a Tlp", t)})
	}
	if tx := req.GetDefaultTaxonomy(); tx != nil && !record.ValidTaxonomy(tx.GetClass(), tx.GetType()) {
		vs = append(vs, record.Violation{Field: "default_taxonomy", Description: fmt.Sprintf("%q/%q is not an entry of the Reference Security Incident Taxonomy; classes: %s",
			tx.GetClass(), tx.GetType(), strings.Join(record.TaxonomyClasses(), ", "))})
	}
	if id := req.GetRequestId(); len(id) > MaxImportRequestIDLength {
		vs = append(vs, record.Violation{Field: "request_id", Description: fmt.Sprintf("is longer than %d bytes", MaxImportRequestIDLength)})
	} else if why := record.CheckText(id, record.Identifier); why != "" {
		vs = append(vs, record.Violation{Field: "request_id", Description: why})
	}
	if n := req.GetDocumentName(); len(n) > MaxDocumentNameLength {
		vs = append(vs, record.Violation{Field: "document_name", Description: fmt.Sprintf("is longer than %d bytes", MaxDocumentNameLength)})
	} else if why := record.CheckText(n, record.Identifier); why != "" {
		vs = append(vs, record.Violation{Field: "document_name", Description: why})
	}
	return vs
}

func checkFormat(f irxv1.DocumentFormat) []record.Violation {
	switch f {
	case irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML, irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON:
		return nil
	case irxv1.DocumentFormat_DOCUMENT_FORMAT_UNSPECIFIED:
		return []record.Violation{{Field: "format", Description: "is required: DOCUMENT_FORMAT_IODEF_V2_XML or DOCUMENT_FORMAT_IODEF_V2_JSON"}}
	}
	return []record.Violation{{Field: "format", Description: fmt.Sprintf("%d is not a DocumentFormat: DOCUMENT_FORMAT_IODEF_V2_XML or DOCUMENT_FORMAT_IODEF_V2_JSON", f)}}
}

// documentRequestID names a document by its content, so that importing the
// same bytes again replays the creates of the first import.
func documentRequestID(format irxv1.DocumentFormat, data []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", format)
	h.Write(data)
	return "iodef-" + hex.EncodeToString(h.Sum(nil)[:20])
}

// encodedID reads the id of an encoded incident without decoding the rest.
func encodedID(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == wire.IncidentID && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ""
			}
			return string(v)
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}
