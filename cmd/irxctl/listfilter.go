package main

import (
	"flag"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// listFilter is the filters "incident list" and "incident export" share:
// ListIncidents' and ExportIncidents' own.
type listFilter struct {
	status, taxonomy, tlp, origin, indicator, after, before *string
	stale, withdrawn                                        *bool
}

// addListFilterFlags registers the filters; verb says what --withdrawn
// adds the team's withdrawn incidents to ("list", "export").
func addListFilterFlags(fs *flag.FlagSet, verb string) *listFilter {
	return &listFilter{
		status:    fs.String("status", "", "only incidents with `STATUS`"),
		taxonomy:  fs.String("taxonomy", "", "only incidents of taxonomy `CLASS[/TYPE]`"),
		tlp:       fs.String("tlp", "", "only incidents marked `TLP`"),
		origin:    fs.String("origin", "", "only incidents created by `TEAM`"),
		indicator: fs.String("indicator", "", "only incidents with an indicator of exactly `VALUE`"),
		after:     fs.String("reported-after", "", "only incidents reported at or after `TIME`"),
		before:    fs.String("reported-before", "", "only incidents reported before `TIME`"),
		stale:     fs.Bool("stale", false, "answer from the node's local state (may lag)"),
		withdrawn: fs.Bool("withdrawn", false, "also "+verb+" this team's withdrawn incidents"),
	}
}

// request reads the filters into a ListIncidentsRequest (without paging).
func (f *listFilter) request() (*irxv1.ListIncidentsRequest, error) {
	req := &irxv1.ListIncidentsRequest{OriginTeam: *f.origin, Indicator: *f.indicator, Consistency: consistency(*f.stale), IncludeWithdrawn: *f.withdrawn}
	if *f.status != "" {
		v, err := parseEnum(irxv1.Status(0).Descriptor(), "STATUS_", "status", *f.status)
		if err != nil {
			return nil, err
		}
		req.Status = irxv1.Status(v)
	}
	if *f.tlp != "" {
		v, err := parseEnum(irxv1.Tlp(0).Descriptor(), "TLP_", "tlp", *f.tlp)
		if err != nil {
			return nil, err
		}
		req.Tlp = irxv1.Tlp(v)
	}
	req.TaxonomyClass, req.TaxonomyType, _ = strings.Cut(*f.taxonomy, "/")
	var err error
	if req.ReportedAfter, err = parseTime("reported-after", *f.after); err != nil {
		return nil, err
	}
	if req.ReportedBefore, err = parseTime("reported-before", *f.before); err != nil {
		return nil, err
	}
	return req, nil
}
