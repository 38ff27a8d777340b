package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/formats/iodef"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The bounds of ExportIncidents.
const (
	// MaxExportBytes bounds the document of one response, so that it fits
	// a client's default message limit (4 MiB in gRPC's libraries and in
	// grpcurl) with room for the rest of the response.
	MaxExportBytes = 3 << 20
	// MaxExportIDs bounds ExportIncidentsRequest.ids.
	MaxExportIDs = 1000
	// defaultExportPageSize is ExportIncidentsRequest.page_size when
	// unset.
	defaultExportPageSize = 100
)

// WithTeam sets the team the service's exports name as their writer, and
// returns s.
func (s *IncidentService) WithTeam(team string) *IncidentService {
	s.team = team
	return s
}

// ExportIncidents implements irx.v1.IncidentService. It encodes the
// records as the store holds them: a peer's record is the view the peer
// sent us, and nothing is added to it here.
func (s *IncidentService) ExportIncidents(ctx context.Context, req *irxv1.ExportIncidentsRequest) (*irxv1.ExportIncidentsResponse, error) {
	vs := checkFormat(req.GetFormat())
	ids := req.GetIds()
	lr := listRequestOf(req)
	q, qvs := queryFrom(lr)
	vs = append(vs, qvs...)
	vs = append(vs, record.CheckConsistency(req.GetConsistency())...)
	switch {
	case len(ids) > 0:
		vs = append(vs, checkExportIDs(ids)...)
		if req.GetPageToken() != "" || req.GetPageSize() != 0 || q != (fsm.Query{IncludeWithdrawn: q.IncludeWithdrawn}) {
			vs = append(vs, record.Violation{Field: "ids", Description: "names the incidents: leave the filters, page_size and page_token unset"})
		}
	case req.GetPageSize() < 0:
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	case req.GetPageSize() > MaxExportIDs:
		vs = append(vs, record.Violation{Field: "page_size", Description: fmt.Sprintf("is more than %d", MaxExportIDs)})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		return s.exportIDs(ids, req.GetFormat())
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultExportPageSize
	}
	// A page whose document passes the bound is asked again, half as
	// large, from the same token: the store's token after the smaller page
	// then says where the next one starts.
	for {
		incs, next, err := s.store.List(q, size, req.GetPageToken())
		if err != nil {
			return nil, ToStatus(err)
		}
		resp := &irxv1.ExportIncidentsResponse{ContentType: contentType(req.GetFormat()), NextPageToken: next}
		if len(incs) == 0 {
			return resp, nil
		}
		doc, err := s.encode(incs, req.GetFormat())
		if err != nil {
			return nil, err
		}
		if len(doc) > MaxExportBytes && len(incs) > 1 {
			size = len(incs) / 2
			continue
		}
		if len(doc) > MaxExportBytes {
			return nil, ToStatus(fmt.Errorf("the export of %s is %d bytes, more than the %d a response holds: %w", incs[0].GetId(), len(doc), MaxExportBytes, errdefs.ErrResourceExhausted))
		}
		resp.Document = doc
		for _, inc := range incs {
			resp.Ids = append(resp.Ids, inc.GetId())
		}
		return resp, nil
	}
}

func (s *IncidentService) exportIDs(ids []string, format irxv1.DocumentFormat) (*irxv1.ExportIncidentsResponse, error) {
	incs := make([]*irxv1.Incident, len(ids))
	for i, id := range ids {
		inc, err := s.store.Get(id, 0)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, ToStatus(fmt.Errorf("ids[%d]: incident %s: %w", i, id, errdefs.ErrNotFound))
		}
		if err != nil {
			return nil, ToStatus(err)
		}
		incs[i] = inc
	}
	doc, err := s.encode(incs, format)
	if err != nil {
		return nil, err
	}
	if len(doc) > MaxExportBytes {
		return nil, invalidArgument([]record.Violation{{Field: "ids", Description: fmt.Sprintf(
			"the document of these %d incidents is %d bytes, more than the %d a response holds: ask for fewer", len(ids), len(doc), MaxExportBytes)}})
	}
	return &irxv1.ExportIncidentsResponse{Document: doc, ContentType: contentType(format), Ids: ids}, nil
}

// encode writes incidents in format.
func (s *IncidentService) encode(incs []*irxv1.Incident, format irxv1.DocumentFormat) ([]byte, error) {
	var buf bytes.Buffer
	opts := iodef.EncodeOptions{Team: s.team}
	var err error
	if format == irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON {
		err = iodef.EncodeJSON(&buf, incs, opts)
	} else {
		err = iodef.Encode(&buf, incs, opts)
	}
	if err != nil {
		// A stored record the encoder cannot write is a fault of this
		// node, not of the request.
		return nil, ToStatus(fmt.Errorf("export: %w", err))
	}
	return buf.Bytes(), nil
}

func contentType(format irxv1.DocumentFormat) string {
	if format == irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON {
		return "application/json"
	}
	return "application/xml"
}

// listRequestOf is the ListIncidents request of an export's filters, so
// that both read them by the same rules.
func listRequestOf(req *irxv1.ExportIncidentsRequest) *irxv1.ListIncidentsRequest {
	return &irxv1.ListIncidentsRequest{
		Status: req.GetStatus(), TaxonomyClass: req.GetTaxonomyClass(), TaxonomyType: req.GetTaxonomyType(),
		Tlp: req.GetTlp(), OriginTeam: req.GetOriginTeam(), ReportedAfter: req.GetReportedAfter(),
		ReportedBefore: req.GetReportedBefore(), Indicator: req.GetIndicator(), IncludeWithdrawn: req.GetIncludeWithdrawn(),
	}
}

func checkExportIDs(ids []string) []record.Violation {
	if len(ids) > MaxExportIDs {
		return []record.Violation{{Field: "ids", Description: fmt.Sprintf("holds %d ids; at most %d: use the filters and page_token", len(ids), MaxExportIDs)}}
	}
	var vs []record.Violation
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		field := fmt.Sprintf("ids[%d]", i)
		vs = append(vs, checkID(id, field)...)
		if seen[id] {
			vs = append(vs, record.Violation{Field: field, Description: fmt.Sprintf("%s is named twice", id)})
		}
		seen[id] = true
	}
	return vs
}
