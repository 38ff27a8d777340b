package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func policyCommand() *command {
	return &command{
		name:  "policy",
		usage: "policy COMMAND",
		short: "Manage the per-peer disclosure policies and preview what a peer receives",
		subs: []*command{
			{
				name:  "apply",
				usage: "policy apply -f FILE",
				short: "Store a new version of a peer's policy from a YAML file",
				long: `FILE is a policy in YAML (see policy/testdata/sample.yaml); - reads stdin.
Every apply makes a new, immutable version; errors name the line and key.`,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					file := fs.String("f", "", "the policy file (YAML), or - for stdin")
					return func(ctx context.Context, c *cli, _ []string) error {
						if *file == "" {
							return usageErrorf("policy apply needs -f FILE")
						}
						data, err := c.readAll(*file)
						if err != nil {
							return err
						}
						return withPolicies(ctx, c, func(ctx context.Context, pl irxv1.PolicyServiceClient) error {
							resp, err := pl.SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: string(data)})
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error { return writePolicies(w, resp.GetPolicy()) })
						})
					}
				},
			},
			{
				name:    "get",
				usage:   "policy get PEER [--version N]",
				short:   "Show a peer's policy (latest version unless --version)",
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					version := fs.Int64("version", 0, "a specific version")
					return func(ctx context.Context, c *cli, args []string) error {
						return withPolicies(ctx, c, func(ctx context.Context, pl irxv1.PolicyServiceClient) error {
							resp, err := pl.GetPolicy(ctx, &irxv1.GetPolicyRequest{PeerTeamId: args[0], Version: *version})
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error { return writePolicyDetail(w, resp.GetPolicy()) })
						})
					}
				},
			},
			{
				name:     "list",
				usage:    "policy list",
				short:    "List the latest policy of every peer",
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, _ []string) error {
						return withPolicies(ctx, c, func(ctx context.Context, pl irxv1.PolicyServiceClient) error {
							ps, err := collectPages(0, func(token string, _ int) ([]*irxv1.DisclosurePolicy, string, error) {
								resp, err := pl.ListPolicies(ctx, &irxv1.ListPoliciesRequest{PageSize: 1000, PageToken: token})
								return resp.GetPolicies(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							all := &irxv1.ListPoliciesResponse{Policies: ps}
							return c.printProto(all, func(w io.Writer) error { return writePolicies(w, all.GetPolicies()...) })
						})
					}
				},
			},
			{
				name:    "versions",
				usage:   "policy versions PEER",
				short:   "List every version of a peer's policy, oldest first",
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, args []string) error {
						return withPolicies(ctx, c, func(ctx context.Context, pl irxv1.PolicyServiceClient) error {
							ps, err := collectPages(0, func(token string, _ int) ([]*irxv1.DisclosurePolicy, string, error) {
								resp, err := pl.ListPolicyVersions(ctx, &irxv1.ListPolicyVersionsRequest{PeerTeamId: args[0], PageSize: 1000, PageToken: token})
								return resp.GetPolicies(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							all := &irxv1.ListPolicyVersionsResponse{Policies: ps}
							return c.printProto(all, func(w io.Writer) error { return writePolicies(w, all.GetPolicies()...) })
						})
					}
				},
			},
			{
				name:  "preview",
				usage: "policy preview PEER INCIDENT_ID [--version N]",
				short: "Show exactly what PEER would receive for an incident, and why",
				long: `Nothing is sent or stored. The table lists the record-level conditions
(each met or not), every field's outcome (kept, changed, removed) with the
rule that decided it, and the view itself; -o json or -o yaml prints the
whole answer.`,
				minArgs: 2, maxArgs: 2,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					version := fs.Int64("version", 0, "the policy version to apply (default: latest)")
					return func(ctx context.Context, c *cli, args []string) error {
						return withPolicies(ctx, c, func(ctx context.Context, pl irxv1.PolicyServiceClient) error {
							resp, err := pl.PreviewDisclosure(ctx, &irxv1.PreviewDisclosureRequest{
								PeerTeamId:    args[0],
								Subject:       &irxv1.PreviewDisclosureRequest_IncidentId{IncidentId: args[1]},
								PolicyVersion: *version,
							})
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error { return c.writePreview(w, resp) })
						})
					}
				},
			},
		},
	}
}

func withPolicies(ctx context.Context, c *cli, f func(context.Context, irxv1.PolicyServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewPolicyServiceClient, f)
}

// readAll reads a file, or stdin for "-".
func (c *cli) readAll(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(c.stdin)
	}
	return os.ReadFile(path)
}

func writePolicies(w io.Writer, ps ...*irxv1.DisclosurePolicy) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PEER\tVERSION\tRECIPIENT\tTLP CEILING\tNEED-TO-KNOW\tRULES\tCREATED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%t\t%s\t%s\n", p.GetPeerTeamId(), p.GetVersion(),
			enumLabel(p.GetRecipientClass(), "RECIPIENT_CLASS_"), enumLabel(p.GetTlpCeiling(), "TLP_"),
			p.GetNeedToKnow(), ruleSummary(p), timeLabel(p.GetCreateTime()))
	}
	return tw.Flush()
}

func ruleSummary(p *irxv1.DisclosurePolicy) string {
	var parts []string
	for _, r := range p.GetRules() {
		parts = append(parts, enumLabel(r.GetInfoClass(), "INFO_CLASS_")+"="+enumLabel(r.GetAction(), "DISCLOSURE_ACTION_"))
	}
	return strings.Join(parts, ",")
}

func writePolicyDetail(w io.Writer, p *irxv1.DisclosurePolicy) error {
	if err := writePolicies(w, p); err != nil {
		return err
	}
	c := p.GetConstituency()
	fmt.Fprintf(w, "\nconstituency: cidrs %v, asns %v, domains %v\n", c.GetCidrs(), c.GetAsns(), c.GetDomains())
	fmt.Fprintf(w, "taxonomy allow %v, deny %v; max hops %d\n", p.GetTaxonomyAllow(), p.GetTaxonomyDeny(), p.GetMaxHops())
	return nil
}

func (c *cli) writePreview(w io.Writer, resp *irxv1.PreviewDisclosureResponse) error {
	ex := resp.GetExplanation()
	verdict := "NOTHING is disclosed"
	if ex.GetDisclosed() {
		verdict = "disclosed"
	}
	fmt.Fprintf(w, "%s v%d to %s under policy v%d: %s\n\n", ex.GetIncidentId(), ex.GetIncidentVersion(), ex.GetPeerTeamId(), resp.GetPolicyVersion(), verdict)
	if err := writeExplanation(w, ex); err != nil {
		return err
	}
	if resp.GetView() != nil {
		return c.writeView(w, resp.GetView())
	}
	return nil
}

// writeView prints a view as YAML, which reads best; w is c.stdout.
func (c *cli) writeView(w io.Writer, view *irxv1.Incident) error {
	fmt.Fprintln(w, "\nview:")
	saved := c.output
	c.output = "yaml"
	defer func() { c.output = saved }()
	return c.printProto(view, nil)
}

// writeExplanation prints the record-level conditions, each met or not,
// and every field's outcome with the rule that decided it.
func writeExplanation(w io.Writer, ex *irxv1.Explanation) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CONDITION\tMET\tWHY")
	for _, r := range ex.GetReasons() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", enumLabel(r.GetCode(), "REASON_CODE_"), yesNo(r.GetSatisfied()), r.GetMessage())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ex.GetFields()) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "OUTCOME\tCLASS\tACTION\tFIELDS\tRULE")
		for _, f := range ex.GetFields() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", enumLabel(f.GetOutcome(), "FIELD_OUTCOME_"), enumLabel(f.GetInfoClass(), "INFO_CLASS_"),
				enumLabel(f.GetAction(), "DISCLOSURE_ACTION_"), strings.Join(f.GetPaths(), ", "), f.GetRule())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
