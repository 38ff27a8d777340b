package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func incidentExportCommand() *command {
	return &command{
		name: "export",
		usage: "incident export [ID...] [--format iodef|iodef-json] [-o FILE|DIR] [--status S] [--taxonomy CLASS[/TYPE]]\n" +
			"                       [--tlp T] [--origin TEAM] [--indicator V] [--reported-after TIME] [--reported-before TIME] [--withdrawn] [--stale]",
		short: "Write incidents as an IODEF v2 document (XML, or RFC 8727 JSON)",
		long: `The team encodes the document (IncidentService/ExportIncidents): the incidents
named, latest version of each, or those matching every filter given (the
filters of "incident list"). A peer's record is exported as the view we hold.
The document goes to stdout or to -o FILE. The filters may match more than one
document holds (3 MiB, at most --page-size incidents): then -o must name a
directory, which gets one document per page, export-0001.xml and so on.`,
		maxArgs:  maxPageSize,
		connects: true,
		setup: func(fs *flag.FlagSet) action {
			var (
				format   = fs.String("format", "iodef", "`iodef` (IODEF v2 XML, RFC 7970) or iodef-json (RFC 8727)")
				out      = fs.String("o", "", "write to `FILE` (or, for several documents, the directory DIR) instead of stdout")
				filter   = addListFilterFlags(fs, "export")
				pageSize = fs.Int("page-size", 0, "at most `N` incidents per document, up to 1000 (default: the server's, 100)")
			)
			return func(ctx context.Context, c *cli, args []string) error {
				f, err := filter.request()
				if err != nil {
					return err
				}
				req := &irxv1.ExportIncidentsRequest{Ids: args, OriginTeam: f.OriginTeam, Indicator: f.Indicator,
					Consistency: f.Consistency, IncludeWithdrawn: f.IncludeWithdrawn, PageSize: int32(*pageSize),
					Status: f.Status, Tlp: f.Tlp, TaxonomyClass: f.TaxonomyClass, TaxonomyType: f.TaxonomyType,
					ReportedAfter: f.ReportedAfter, ReportedBefore: f.ReportedBefore}
				ext := ".xml"
				switch *format {
				case "iodef", "iodef-xml":
					req.Format = irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML
				case "iodef-json":
					req.Format, ext = irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON, ".json"
				default:
					return usageErrorf("--format %q: want iodef or iodef-json", *format)
				}
				if *pageSize < 0 || *pageSize > maxPageSize {
					return usageErrorf("--page-size must be between 0 and %d", maxPageSize)
				}
				dir := ""
				if info, err := os.Stat(*out); *out != "" && err == nil && info.IsDir() {
					dir = *out
				}
				s, err := c.connect()
				if err != nil {
					return err
				}
				defer s.Close()
				for page := 1; ; page++ {
					var resp *irxv1.ExportIncidentsResponse
					err := retrying(ctx, s, func(ctx context.Context) (err error) {
						resp, err = s.incidents().ExportIncidents(ctx, req)
						return err
					})
					if err != nil {
						return err
					}
					if page == 1 && len(resp.GetIds()) == 0 {
						return fmt.Errorf("no incident matches: nothing to export")
					}
					more := resp.GetNextPageToken() != ""
					switch {
					case dir != "":
						name := filepath.Join(dir, fmt.Sprintf("export-%04d%s", page, ext))
						if err := os.WriteFile(name, resp.GetDocument(), 0o644); err != nil {
							return err
						}
						fmt.Fprintf(c.stderr, "irxctl: %s: %d incident(s)\n", name, len(resp.GetIds()))
					case more:
						return fmt.Errorf("the incidents matching make more than one document (%d in the first): pass -o DIR for one file per document, or narrow the filters", len(resp.GetIds()))
					case *out != "":
						if err := os.WriteFile(*out, resp.GetDocument(), 0o644); err != nil {
							return err
						}
					default:
						if _, err := c.stdout.Write(resp.GetDocument()); err != nil {
							return err
						}
					}
					if !more {
						return nil
					}
					req.PageToken = resp.GetNextPageToken()
				}
			}
		},
	}
}
