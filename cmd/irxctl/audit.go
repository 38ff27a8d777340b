package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// maxDisclosurePageSize is the server's largest page of ledger entries.
const maxDisclosurePageSize = 1000

func auditCommand() *command {
	return &command{
		name:  "audit",
		usage: "audit COMMAND",
		short: "Show what exactly the team told each peer, from the disclosure ledger",
		subs:  []*command{auditExplainCommand(), auditListCommand()},
	}
}

func withAudit(ctx context.Context, c *cli, f func(context.Context, irxv1.AuditServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewAuditServiceClient, f)
}

func auditExplainCommand() *command {
	return &command{
		name:  "explain",
		usage: "audit explain PEER INCIDENT_ID [--summary]",
		short: "Recompute every view of an incident a peer received, and every withdrawal, with why and a digest",
		long: `For each ledger entry (oldest first): the incident version, the policy
version it was computed under, the feed sequence that carried it, what it
was (a view, a replacement of a view the peer held and why, an erasure of a
version, a withdrawal), when the peer acknowledged it and the SHA-256 digest
of the view, which the peer can compute from its own copy to confirm it
holds exactly this. Then what the peer holds now: per version, the view it
holds (its digest) and how many views of that version it held before. Then,
per entry, the conditions, every field's outcome and the view itself.
--summary prints the tables only; -o json or -o yaml prints the whole
answer.`,
		minArgs: 2, maxArgs: 2,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			summary := fs.Bool("summary", false, "list the entries without the explanations and views")
			return func(ctx context.Context, c *cli, args []string) error {
				return withAudit(ctx, c, func(ctx context.Context, ac irxv1.AuditServiceClient) error {
					resp, err := ac.ExplainDisclosure(ctx, &irxv1.ExplainDisclosureRequest{PeerTeamId: args[0], IncidentId: args[1]})
					if err != nil {
						return err
					}
					return c.printList(resp, "disclosures", len(resp.GetDisclosures()), func(w io.Writer) error {
						return c.writeExplainedDisclosures(w, args[0], args[1], resp, *summary)
					})
				})
			}
		},
	}
}

func (c *cli) writeExplainedDisclosures(w io.Writer, peer, incident string, resp *irxv1.ExplainDisclosureResponse, summary bool) error {
	ds := resp.GetDisclosures()
	if len(ds) == 0 {
		_, err := fmt.Fprintf(w, "Nothing about %s was disclosed to %s (no acknowledged view or withdrawal in the ledger).\n", incident, peer)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "PEER\tINCIDENT\tVERSION\tSEQUENCE\tPOLICY\tKIND\tACKNOWLEDGED\tDIGEST")
	for _, d := range ds {
		e := d.GetDisclosure()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", e.GetPeerTeamId(), e.GetIncidentId(), e.GetIncidentVersion(), e.GetSequence(),
			e.GetPolicyVersion(), disclosureKind(e), timeLabel(e.GetAcknowledgeTime()), dash(d.GetDigest()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeHeldVersions(w, peer, incident, resp.GetHeldVersions()); err != nil || summary {
		return err
	}
	for _, d := range ds {
		e := d.GetDisclosure()
		fmt.Fprintf(w, "\n=== sequence %d: %s v%d under policy v%d, %s ===\n", e.GetSequence(), e.GetIncidentId(), e.GetIncidentVersion(),
			e.GetPolicyVersion(), disclosureKind(e))
		switch {
		case e.GetWithdrawal():
			fmt.Fprintf(w, "%s was told to delete its copy (%s).\n", e.GetPeerTeamId(), withdrawalReasonText(e.GetWithdrawalReason()))
			continue
		case e.GetErased():
			fmt.Fprintf(w, "%s was told to delete its copy of version %d (%s).\n", e.GetPeerTeamId(), e.GetIncidentVersion(), replacementReasonText(e.GetReplacementReason()))
			continue
		case d.GetUnavailable() != "":
			fmt.Fprintf(w, "Not recomputed: %s. Recorded digest %s.\n", d.GetUnavailable(), dash(e.GetDigest()))
			continue
		case e.GetReplacementReason() != irxv1.ReplacementReason_REPLACEMENT_REASON_UNSPECIFIED:
			fmt.Fprintf(w, "Replaced the view of version %d that %s held (%s); markings of version %d applied.\n",
				e.GetIncidentVersion(), e.GetPeerTeamId(), replacementReasonText(e.GetReplacementReason()), e.GetTermsVersion())
		}
		if ex := d.GetExplanation(); ex != nil {
			if err := writeExplanation(w, ex); err != nil {
				return err
			}
		}
		if d.GetView() != nil {
			if err := c.writeView(w, d.GetView()); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeHeldVersions prints what the peer holds of the incident now.
func writeHeldVersions(w io.Writer, peer, incident string, held []*irxv1.HeldVersion) error {
	if len(held) == 0 {
		_, err := fmt.Fprintf(w, "\n%s holds nothing of %s now.\n", peer, incident)
		return err
	}
	fmt.Fprintf(w, "\n%s holds now:\n", peer)
	tw := newTable(w)
	fmt.Fprintln(tw, "VERSION\tSEQUENCE\tPOLICY\tMARKINGS OF\tREPLACED\tDIGEST")
	for _, h := range held {
		e := h.GetCurrent().GetDisclosure()
		digest := h.GetCurrent().GetDigest()
		if digest == "" {
			digest = e.GetDigest()
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\tv%d\t%d time(s)\t%s\n", h.GetVersion(), e.GetSequence(), e.GetPolicyVersion(),
			max(e.GetTermsVersion(), h.GetVersion()), len(h.GetSuperseded()), dash(digest))
	}
	return tw.Flush()
}

func disclosureKind(d *irxv1.Disclosure) string {
	switch {
	case d.GetErased():
		return "erasure/" + enumLabel(d.GetReplacementReason(), "REPLACEMENT_REASON_")
	case d.GetReplacementReason() != irxv1.ReplacementReason_REPLACEMENT_REASON_UNSPECIFIED:
		return "replacement/" + enumLabel(d.GetReplacementReason(), "REPLACEMENT_REASON_")
	case !d.GetWithdrawal():
		return "view"
	}
	if d.GetWithdrawalReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_UNSPECIFIED {
		return "withdrawal"
	}
	return "withdrawal/" + enumLabel(d.GetWithdrawalReason(), "WITHDRAWAL_REASON_")
}

func withdrawalReasonText(r irxv1.WithdrawalReason) string {
	switch r {
	case irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN:
		return "the origin withdrew the incident"
	case irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY:
		return "the policy no longer discloses it to the peer"
	}
	return "reason not recorded"
}

func replacementReasonText(r irxv1.ReplacementReason) string {
	switch r {
	case irxv1.ReplacementReason_REPLACEMENT_REASON_POLICY:
		return "our policy for the peer changed"
	case irxv1.ReplacementReason_REPLACEMENT_REASON_MARKINGS:
		return "a later version of the record changed its markings"
	case irxv1.ReplacementReason_REPLACEMENT_REASON_UPSTREAM:
		return "the team we received the record from replaced the version"
	}
	return "reason not recorded"
}

func auditListCommand() *command {
	return &command{
		name:  "list",
		usage: "audit list (--peer TEAM | --incident ID) [--limit N]",
		short: "List disclosure ledger entries of a peer or of an incident",
		long: `Each entry is one view or withdrawal a peer acknowledged: the incident
version, the feed sequence, the policy version it was computed under and when.
Give both --peer and --incident for one peer's entries about one incident;
"audit explain" shows what each entry stood for.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			peer := fs.String("peer", "", "entries of the peer `TEAM`")
			incident := fs.String("incident", "", "entries of the incident `ID`")
			limit := fs.Int("limit", 0, "stop after `N` entries (default: all)")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *peer == "" && *incident == "" {
					return usageErrorf("give --peer TEAM or --incident ID (or both)")
				}
				if *limit < 0 {
					return usageErrorf("--limit must be >= 0")
				}
				return withAudit(ctx, c, func(ctx context.Context, ac irxv1.AuditServiceClient) error {
					req := &irxv1.ListDisclosuresRequest{PeerTeamId: *peer, IncidentId: *incident}
					ds, err := collectPages(*limit, func(token string, remaining int) ([]*irxv1.Disclosure, string, error) {
						req.PageToken, req.PageSize = token, maxDisclosurePageSize
						if remaining > 0 && remaining < maxDisclosurePageSize {
							req.PageSize = int32(remaining)
						}
						resp, err := ac.ListDisclosures(ctx, req)
						return resp.GetDisclosures(), resp.GetNextPageToken(), err
					})
					if err != nil {
						return err
					}
					all := &irxv1.ListDisclosuresResponse{Disclosures: ds}
					return c.printList(all, "disclosures", len(all.Disclosures), func(w io.Writer) error { return writeDisclosures(w, all.GetDisclosures()) })
				})
			}
		},
	}
}

func writeDisclosures(w io.Writer, ds []*irxv1.Disclosure) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PEER\tINCIDENT\tVERSION\tSEQUENCE\tPOLICY\tKIND\tACKNOWLEDGED")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", d.GetPeerTeamId(), d.GetIncidentId(), d.GetIncidentVersion(), d.GetSequence(),
			d.GetPolicyVersion(), disclosureKind(d), timeLabel(d.GetAcknowledgeTime()))
	}
	return tw.Flush()
}
