package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// maxPageSize is the server's largest page.
const maxPageSize = 1000

func incidentCommand() *command {
	return &command{
		name:  "incident",
		usage: "incident COMMAND",
		short: "Create, read, list, update, import, export, withdraw and hand off incidents",
		subs: []*command{
			incidentCreateCommand(), incidentGetCommand(), incidentListCommand(),
			incidentUpdateCommand(), incidentVersionsCommand(), incidentImportCommand(), incidentExportCommand(),
			incidentWithdrawCommand(), incidentHandoffCommand(),
		},
	}
}

func incidentCreateCommand() *command {
	return &command{
		name:  "create",
		usage: "incident create -f FILE [--request-id ID] [--tlp TLP] [--taxonomy CLASS/TYPE]",
		short: "Record an incident; the team assigns its id",
		long: `FILE holds one irx.v1.Incident as JSON or YAML, or an IODEF document (XML; by
extension, else by content; "-" reads stdin). JSON and YAML use the proto's
field names and full enum names, e.g.
  tlp: TLP_AMBER
  taxonomy: {class: malicious-code, type: c2-server}
  descriptions: [{lang: en, text: Workstation beaconing to a C2 server}]
Output-only fields (id, version, create_time, ...) are ignored, so the output
of "incident get -o yaml" can be fed back. --request-id makes a retry safe: the
same id with the same content returns the incident the first call created; with
other content it is refused (AlreadyExists, naming that incident) and nothing
is stored.

IODEF v2 (RFC 7970, namespace urn:ietf:params:xml:ns:iodef-2.0) and v1
(RFC 5070) are read: every Incident element becomes an incident, created in
document order and printed together (with --request-id ID, the Nth gets
ID-N). The sender's IncidentID becomes an alternative id (its name attribute
is the team); this team assigns the ticket. Sources and targets of
EventData/Flow/System become attacking and victim hosts. IODEF's restriction
white, green, amber or red gives the TLP (amber is TLP:AMBER+STRICT); other
incidents take --tlp. The taxonomy comes from an Assessment/IncidentCategory
or Method/Reference naming an RSIT entry ("availability/ddos",
rsit:fraud="phishing"), else from --taxonomy. Nothing is created unless every
Incident maps; errors give FILE:LINE:COLUMN and the element. Elements and
attributes irx has no place for are listed in one warning on stderr.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			file := fs.String("f", "", "incident `FILE`: JSON, YAML or IODEF XML; - for stdin")
			requestID := fs.String("request-id", "", "idempotency `KEY`, e.g. a UUID")
			tlp := fs.String("tlp", "", "IODEF: the `TLP` of incidents whose restriction is not white, green, amber or red")
			taxonomy := fs.String("taxonomy", "", "IODEF: the taxonomy `CLASS/TYPE` of incidents the document names none for")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *file == "" {
					return usageErrorf("-f FILE is required")
				}
				opts, err := iodefFlagOptions(*tlp, *taxonomy)
				if err != nil {
					return err
				}
				in, err := c.readIncidentsToCreate(*file, opts)
				if err != nil {
					return err
				}
				if !in.iodef && (*tlp != "" || *taxonomy != "") {
					return usageErrorf("--tlp and --taxonomy are for IODEF XML; %s is JSON or YAML, which says both itself", in.name)
				}
				s, err := c.connect()
				if err != nil {
					return err
				}
				defer s.Close()
				var created []*irxv1.Incident
				for i, inc := range in.incidents {
					id := *requestID
					if id != "" && len(in.incidents) > 1 {
						id = fmt.Sprintf("%s-%d", id, i+1)
					}
					callCtx, cancel := s.call(ctx)
					resp, err := s.incidents().CreateIncident(callCtx, &irxv1.CreateIncidentRequest{Incident: inc, RequestId: id})
					cancel()
					if err != nil {
						if len(created) > 0 {
							if perr := c.printIncidents(created); perr != nil {
								return perr
							}
							fmt.Fprintf(c.stderr, "irxctl: %s: created %d of %d incidents; Incident %d was refused:\n",
								in.name, len(created), len(in.incidents), i+1)
						}
						return err
					}
					created = append(created, resp.GetIncident())
				}
				return c.printIncidents(created)
			}
		},
	}
}

// printIncidents prints created incidents: one table, or one JSON object
// (YAML document) each.
func (c *cli) printIncidents(incidents []*irxv1.Incident) error {
	if len(incidents) == 1 {
		return c.printIncident(incidents[0])
	}
	if c.output == "json" || c.output == "yaml" {
		for _, inc := range incidents {
			if c.output == "yaml" {
				fmt.Fprintln(c.stdout, "---")
			}
			if err := c.printProto(inc, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return writeIncidentTable(c.stdout, incidents)
}

func incidentGetCommand() *command {
	return &command{
		name:    "get",
		usage:   "incident get ID [--version N] [--stale]",
		short:   "Show an incident: its latest version or version N",
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			version := fs.Int64("version", 0, "version `N` (default: the latest)")
			stale := fs.Bool("stale", false, "answer from the node's local state, even without a leader (may lag)")
			return func(ctx context.Context, c *cli, args []string) error {
				s, err := c.connect()
				if err != nil {
					return err
				}
				defer s.Close()
				callCtx, cancel := s.call(ctx)
				defer cancel()
				resp, err := s.incidents().GetIncident(callCtx, &irxv1.GetIncidentRequest{
					Id: args[0], Version: *version, Consistency: consistency(*stale),
				})
				if err != nil {
					return err
				}
				return c.printIncident(resp.GetIncident())
			}
		},
	}
}

func consistency(stale bool) irxv1.ReadConsistency {
	if stale {
		return irxv1.ReadConsistency_READ_CONSISTENCY_STALE
	}
	return irxv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED
}

func (c *cli) printIncident(inc *irxv1.Incident) error {
	return c.printProto(inc, func(w io.Writer) error { return writeIncidentTable(w, []*irxv1.Incident{inc}) })
}

func incidentListCommand() *command {
	return &command{
		name: "list",
		usage: "incident list [--status S] [--taxonomy CLASS[/TYPE]] [--tlp T] [--origin TEAM] [--indicator V]\n" +
			"                       [--reported-after TIME] [--reported-before TIME] [--limit N] [--page-size N] [--stale] [--withdrawn]",
		short: "List incidents matching every filter given, in id order",
		long: `Pages are followed until --limit incidents or the end. Enum filters take the
values the table shows or the full enum names: --status new, in-progress,
forwarded, resolved, future; --tlp clear, green, amber, amber-strict, red
(or TLP:AMBER+STRICT, TLP_AMBER_STRICT). Times are RFC 3339
(2026-03-01T12:00:00Z) or a date (2026-03-01, midnight UTC).`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			filter := addListFilterFlags(fs, "list")
			limit := fs.Int("limit", 0, "stop after `N` incidents (default: all)")
			pageSize := fs.Int("page-size", 0, "`N` incidents per request, at most 1000 (default: the server's, 50)")
			return func(ctx context.Context, c *cli, _ []string) error {
				req, err := filter.request()
				if err != nil {
					return err
				}
				if *limit < 0 || *pageSize < 0 || *pageSize > maxPageSize {
					return usageErrorf("--limit must be >= 0 and --page-size between 0 and %d", maxPageSize)
				}
				s, err := c.connect()
				if err != nil {
					return err
				}
				defer s.Close()
				incidents, err := listIncidents(ctx, s, req, *limit, *pageSize)
				if err != nil {
					return err
				}
				return c.printIncidentList(&irxv1.ListIncidentsResponse{Incidents: incidents}, incidents, writeIncidentTable)
			}
		},
	}
}

// listIncidents follows next_page_token until limit incidents (0: no limit)
// or the end.
func listIncidents(ctx context.Context, s *session, req *irxv1.ListIncidentsRequest, limit, pageSize int) ([]*irxv1.Incident, error) {
	return collectPages(limit, func(token string, remaining int) ([]*irxv1.Incident, string, error) {
		req.PageToken, req.PageSize = token, int32(pageSize)
		if remaining > 0 && (pageSize == 0 || remaining < pageSize) {
			// Ask for no more than is wanted, and for all of it at once
			// when the page size is the server's choice.
			req.PageSize = int32(min(remaining, maxPageSize))
		}
		callCtx, cancel := s.call(ctx)
		defer cancel()
		resp, err := s.incidents().ListIncidents(callCtx, req)
		return resp.GetIncidents(), resp.GetNextPageToken(), err
	})
}

func parseTime(flagName, s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, usageErrorf("--%s %q: want RFC 3339 (2026-03-01T12:00:00Z) or a date (2026-03-01)", flagName, s)
}

func incidentUpdateCommand() *command {
	return &command{
		name:  "update",
		usage: "incident update ID -f FILE --fields PATHS [--expected-version N]",
		short: "Change the named fields of an incident, making a new version",
		long: `FILE holds the new values (JSON or YAML, like "incident create"); only the
fields named in --fields change, e.g. --fields status,descriptions or
--fields reporting_site.name ("*" replaces every field that may change).
An id in FILE must be ID. With --expected-version the update applies only if
the latest version is N (Aborted otherwise).`,
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			file := fs.String("f", "", "`FILE` with the new values, JSON or YAML; - for stdin")
			fields := fs.String("fields", "", "comma-separated field `PATHS` to change (proto names)")
			expected := fs.Int64("expected-version", 0, "apply only if the latest version is `N`")
			return func(ctx context.Context, c *cli, args []string) error {
				if *file == "" || *fields == "" {
					return usageErrorf("-f FILE and --fields are required")
				}
				var paths []string
				for _, p := range strings.Split(*fields, ",") {
					if p = strings.TrimSpace(p); p != "" {
						paths = append(paths, p)
					}
				}
				inc, err := c.readIncidentFile(*file)
				if err != nil {
					return err
				}
				if inc.GetId() != "" && inc.GetId() != args[0] {
					return fmt.Errorf("%s holds incident %s, not %s", *file, inc.GetId(), args[0])
				}
				inc.Id = args[0]
				s, err := c.connect()
				if err != nil {
					return err
				}
				defer s.Close()
				callCtx, cancel := s.call(ctx)
				defer cancel()
				resp, err := s.incidents().UpdateIncident(callCtx, &irxv1.UpdateIncidentRequest{
					Incident:        inc,
					UpdateMask:      &fieldmaskpb.FieldMask{Paths: paths},
					ExpectedVersion: *expected,
				})
				if err != nil {
					return err
				}
				return c.printIncident(resp.GetIncident())
			}
		},
	}
}

func incidentVersionsCommand() *command {
	return &command{
		name:    "versions",
		usage:   "incident versions ID",
		short:   "List every version of an incident, oldest first",
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(*flag.FlagSet) action {
			return func(ctx context.Context, c *cli, args []string) error {
				s, err := c.connect()
				if err != nil {
					return err
				}
				defer s.Close()
				var actions []*irxv1.OperatorAction
				versions, err := collectPages(0, func(token string, _ int) ([]*irxv1.Incident, string, error) {
					callCtx, cancel := s.call(ctx)
					defer cancel()
					resp, err := s.incidents().ListIncidentVersions(callCtx, &irxv1.ListIncidentVersionsRequest{Id: args[0], PageToken: token})
					actions = append(actions, resp.GetVersionActions()...)
					return resp.GetIncidents(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				resp := &irxv1.ListIncidentVersionsResponse{Incidents: versions, VersionActions: actions}
				return c.printIncidentList(resp, versions, func(w io.Writer, versions []*irxv1.Incident) error {
					return writeVersionTable(w, versions, actions)
				})
			}
		},
	}
}

func incidentWithdrawCommand() *command {
	return &command{
		name:  "withdraw",
		usage: "incident withdraw ID [--reason TEXT]",
		short: "Withdraw one of this team's incidents: every peer holding it is told to delete its copy",
		long: `Peers that received the incident, and teams they re-shared it to, are told
the origin withdrew it and delete their copies. The record stays here, marked
withdrawn, for the audit ("irxctl audit list --incident ID"). --reason is kept
on this team's copy only; peers learn only that the origin withdrew it.`,
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			reason := fs.String("reason", "", "why, for this team's record (`TEXT`)")
			return func(ctx context.Context, c *cli, args []string) error {
				return withIncidents(ctx, c, func(ctx context.Context, ic irxv1.IncidentServiceClient) error {
					resp, err := ic.WithdrawIncident(ctx, &irxv1.WithdrawIncidentRequest{Id: args[0], Reason: *reason})
					if err != nil {
						return err
					}
					inc := resp.GetIncident()
					return c.printProto(inc, func(w io.Writer) error {
						if err := writeIncidentTable(w, []*irxv1.Incident{inc}); err != nil {
							return err
						}
						_, err := fmt.Fprintf(w, "\nwithdrawn at %s%s\n", timeLabel(inc.GetWithdrawTime()), parenthesized(inc.GetWithdrawReason()))
						return err
					})
				})
			}
		},
	}
}

func incidentHandoffCommand() *command {
	return &command{
		name:  "handoff",
		usage: "incident handoff ID PEER [--reason TEXT]",
		short: "Hand coordination of one of this team's incidents to a peer team",
		long: `The peer records the incident, as its policy discloses it, under a ticket of
its own (RFC 2350 section 3.4.2); our incident becomes "forwarded" and each
ticket names the other as an alternative id. --reason goes into both teams'
history. -o json or -o yaml prints our incident and the peer's new id.`,
		minArgs: 2, maxArgs: 2,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			reason := fs.String("reason", "", "why, for both teams' history (`TEXT`)")
			return func(ctx context.Context, c *cli, args []string) error {
				// The call belongs to PeerService: a hand-off is federation.
				return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
					resp, err := pc.HandOffIncidentToPeer(ctx, &irxv1.HandOffIncidentToPeerRequest{Id: args[0], PeerTeamId: args[1], Reason: *reason})
					if err != nil {
						return err
					}
					return c.printProto(resp, func(w io.Writer) error {
						if err := writeIncidentTable(w, []*irxv1.Incident{resp.GetIncident()}); err != nil {
							return err
						}
						_, err := fmt.Fprintf(w, "\nhanded off to %s as %s\n", args[1], resp.GetPeerIncidentId())
						return err
					})
				})
			}
		},
	}
}

func withIncidents(ctx context.Context, c *cli, f func(context.Context, irxv1.IncidentServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewIncidentServiceClient, f)
}

func parenthesized(s string) string {
	if s = strings.Join(strings.Fields(s), " "); s == "" {
		return ""
	}
	return " (" + s + ")"
}
