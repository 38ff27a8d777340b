package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// repeatedFlag collects every value of a repeated flag as it is (commas
// included).
type repeatedFlag []string

func (r *repeatedFlag) String() string     { return strings.Join(*r, "; ") }
func (r *repeatedFlag) Set(v string) error { *r = append(*r, v); return nil }

func warningCommand() *command {
	return &command{
		name:  "warning",
		usage: "warning COMMAND",
		short: "Issue emergency warnings to the peers whose constituency they touch, and acknowledge peers' warnings",
		subs: []*command{
			{
				name:  "issue",
				usage: "warning issue --title TEXT --tlp TLP [--severity S] [--cidr P] [--asn N] [--domain D] [--all-peers] [--expires-in D]",
				short: "Issue a warning; the leader delivers it to each recipient apart from the feed",
				long: `The recipients are the peers whose declared constituency (in our policy for
them) an affected --cidr, --asn or --domain touches, or with --all-peers every
peer; in both cases only peers our policy lets receive the TLP (a peer without
a policy receives nothing; TLP:RED is refused). --cidr, --asn and --domain
take comma-separated lists; --product and --action are repeatable.`,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					title := fs.String("title", "", "a short `TEXT` (required)")
					text := fs.String("text", "", "what happened and what it means")
					severity := fs.String("severity", "high", "`SEVERITY`: low, medium, high or critical")
					tlp := fs.String("tlp", "", "`TLP`: clear, green, amber or amber+strict (required)")
					var cidrs, asns, domains stringsFlag
					var products, actions repeatedFlag
					fs.Var(&cidrs, "cidr", "affected `PREFIX`es")
					fs.Var(&asns, "asn", "affected autonomous system `NUMBER`s")
					fs.Var(&domains, "domain", "affected `DOMAIN`s (a domain includes its subdomains)")
					fs.Var(&products, "product", "an affected `PRODUCT`")
					fs.Var(&actions, "action", "a recommended `ACTION`")
					all := fs.Bool("all-peers", false, "send to every peer our policy lets receive the TLP")
					expires := fs.Duration("expires-in", 24*time.Hour, "the warning stops being relevant after `DURATION`")
					return func(ctx context.Context, c *cli, _ []string) error {
						w := &irxv1.Warning{Title: *title, Text: *text, AffectedCidrs: cidrs, AffectedDomains: domains,
							AffectedProducts: products, RecommendedActions: actions, AllPeers: *all,
							ExpireTime: timestamppb.New(time.Now().Add(*expires))}
						if *tlp != "" {
							v, err := parseEnum(irxv1.Tlp(0).Descriptor(), "TLP_", "tlp", *tlp)
							if err != nil {
								return usageErrorf("%v", err)
							}
							w.Tlp = irxv1.Tlp(v)
						}
						v, err := parseEnum(irxv1.WarningSeverity(0).Descriptor(), "WARNING_SEVERITY_", "severity", *severity)
						if err != nil {
							return usageErrorf("%v", err)
						}
						w.Severity = irxv1.WarningSeverity(v)
						for _, a := range asns {
							n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(a), "AS"), 10, 32)
							if err != nil {
								return usageErrorf("--asn %q is not an autonomous system number", a)
							}
							w.AffectedAsns = append(w.AffectedAsns, uint32(n))
						}
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							resp, err := cl.IssueWarning(ctx, &irxv1.IssueWarningRequest{Warning: w})
							if err != nil {
								return err
							}
							return c.printProto(resp.GetWarning(), func(out io.Writer) error {
								return writeWarnings(out, []*irxv1.Warning{resp.GetWarning()})
							})
						})
					}
				},
			},
			{
				name:     "list",
				usage:    "warning list",
				short:    "List the warnings issued (per recipient: delivered, acknowledged, when) and received",
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, _ []string) error {
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							ws, err := collectPages(0, func(token string, _ int) ([]*irxv1.Warning, string, error) {
								resp, err := cl.ListWarnings(ctx, &irxv1.ListWarningsRequest{PageSize: 1000, PageToken: token})
								return resp.GetWarnings(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							resp := &irxv1.ListWarningsResponse{Warnings: ws}
							return c.printList(resp, "warnings", len(ws), func(w io.Writer) error { return writeWarnings(w, ws) })
						})
					}
				},
			},
			{
				name:    "ack",
				usage:   "warning ack WARNING_ID",
				short:   "Acknowledge a warning a peer sent; the acknowledgement goes back to it",
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, args []string) error {
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							resp, err := cl.AcknowledgeWarning(ctx, &irxv1.AcknowledgeWarningRequest{WarningId: args[0]})
							if err != nil {
								return err
							}
							return c.printProto(resp.GetWarning(), func(w io.Writer) error {
								return writeWarnings(w, []*irxv1.Warning{resp.GetWarning()})
							})
						})
					}
				},
			},
		},
	}
}

func writeWarnings(w io.Writer, ws []*irxv1.Warning) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "WARNING\tFROM\tSEVERITY\tTLP\tTITLE\tRECIPIENTS / ACKNOWLEDGED")
	for _, x := range ws {
		var who []string
		for _, d := range x.GetDeliveries() {
			who = append(who, d.GetPeerTeamId()+":"+strings.ToLower(strings.TrimPrefix(d.GetState().String(), "WARNING_DELIVERY_STATE_")))
		}
		if x.GetReceivedFrom() != "" {
			ack := "not acknowledged"
			if x.GetAcknowledgedBy() != "" {
				ack = "acknowledged by " + x.GetAcknowledgedBy()
			}
			who = append(who, ack)
		}
		if len(who) == 0 {
			who = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.GetWarningId(), x.GetOriginTeam(),
			strings.ToLower(strings.TrimPrefix(x.GetSeverity().String(), "WARNING_SEVERITY_")), tlpLabel(x.GetTlp()), x.GetTitle(), strings.Join(who, " "))
	}
	return tw.Flush()
}
