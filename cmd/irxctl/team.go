package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func teamCommand() *command {
	return &command{
		name:  "team",
		usage: "team COMMAND",
		short: "Publish this team's RFC 2350 description, and read a peer's, signed and verified",
		subs:  []*command{teamSetCommand(), teamGetCommand(), teamDescribeCommand()},
	}
}

func withTeam(ctx context.Context, c *cli, f func(context.Context, irxv1.TeamServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewTeamServiceClient, f)
}

func teamSetCommand() *command {
	return &command{
		name:  "set",
		usage: "team set -f FILE [--expected-version N]",
		short: "Replace the team's RFC 2350 description with the one in FILE",
		long: `FILE holds one irx.v1.TeamDescription as JSON or YAML (by extension, else by
content; "-" reads stdin), with the proto's field names, following the
sections of RFC 2350's template (see cmd/irxctl/testdata/team.yaml):
  contact: {name: CERT-A, email_addresses: [{address: cert@a.example}]}
  charter: {mission_statement: ..., constituency: ...}
The description is replaced as a whole and gets the next version. Output-only
fields (team_id, version, update_time) are ignored, so the output of
"team get -o yaml" can be edited and fed back; with --expected-version the
update fails if someone else changed it since. Every peer can read the
description (signed by the node that serves it): publish only what the team
publishes anyway.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			file := fs.String("f", "", "description `FILE`, JSON or YAML; - for stdin")
			expected := fs.Int64("expected-version", 0, "fail unless the current version is `N` (0: any)")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *file == "" {
					return usageErrorf("-f FILE is required")
				}
				d, err := c.readTeamDescriptionFile(*file)
				if err != nil {
					return err
				}
				return withTeam(ctx, c, func(ctx context.Context, tc irxv1.TeamServiceClient) error {
					resp, err := tc.UpdateTeamDescription(ctx, &irxv1.UpdateTeamDescriptionRequest{Description: d, ExpectedVersion: *expected})
					if err != nil {
						return err
					}
					return c.printTeamDescription(resp.GetDescription())
				})
			}
		},
	}
}

func teamGetCommand() *command {
	return &command{
		name:  "get",
		usage: "team get [--stale]",
		short: "Show the team's description: a summary, or all of it with -o yaml or -o json",
		long: `"team get -o yaml > team.yaml" gives the description in the form "team set"
takes; "team describe" renders it as RFC 2350 text.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			stale := fs.Bool("stale", false, "answer from the node's local state, even without a leader (may lag)")
			return func(ctx context.Context, c *cli, _ []string) error {
				return withTeam(ctx, c, func(ctx context.Context, tc irxv1.TeamServiceClient) error {
					resp, err := tc.GetTeamDescription(ctx, &irxv1.GetTeamDescriptionRequest{Consistency: consistency(*stale)})
					if err != nil {
						return err
					}
					return c.printTeamDescription(resp.GetDescription())
				})
			}
		},
	}
}

func teamDescribeCommand() *command {
	return &command{
		name:  "describe",
		usage: "team describe [--peer TEAM]",
		short: "Render the team's description, or a peer's, as the RFC 2350 template (sections 1 to 7)",
		long: `Without --peer: this team's description as stored. With --peer: the peer's,
fetched from its federation endpoints by the node irxctl talks to, and shown
only if its signature verifies: made by a node of the peer whose certificate
chains to the CA pinned for the peer. A line under the title says who signed
and the pinned CA's fingerprint. -o json or -o yaml prints the whole answer instead,
with the signed bytes to keep.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			peer := fs.String("peer", "", "the peer `TEAM` whose description to fetch and verify")
			return func(ctx context.Context, c *cli, _ []string) error {
				return withTeam(ctx, c, func(ctx context.Context, tc irxv1.TeamServiceClient) error {
					if *peer == "" {
						resp, err := tc.GetTeamDescription(ctx, &irxv1.GetTeamDescriptionRequest{})
						if err != nil {
							return err
						}
						return c.printProto(resp, func(w io.Writer) error { return renderRFC2350(w, resp.GetDescription(), nil) })
					}
					resp, err := tc.GetPeerTeamDescription(ctx, &irxv1.GetPeerTeamDescriptionRequest{PeerTeamId: *peer})
					if err != nil {
						return err
					}
					return c.printProto(resp, func(w io.Writer) error {
						return renderRFC2350(w, resp.GetDescription(), resp.GetVerification())
					})
				})
			}
		},
	}
}

// readTeamDescriptionFile reads one description from a JSON or YAML file,
// or stdin for "-", as readIncidentFile reads incidents.
func (c *cli) readTeamDescriptionFile(path string) (*irxv1.TeamDescription, error) {
	data, pos, name, err := c.readOneDocument(path, "team description")
	if err != nil {
		return nil, err
	}
	d := &irxv1.TeamDescription{}
	if err := unmarshalJSON(data, pos, d); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

func (c *cli) printTeamDescription(d *irxv1.TeamDescription) error {
	return c.printProto(d, func(w io.Writer) error {
		tw := newTable(w)
		fmt.Fprintln(tw, "TEAM\tVERSION\tUPDATED\tNAME")
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.GetTeamId(), d.GetVersion(), timeLabel(d.GetUpdateTime()), d.GetContact().GetName())
		if err := tw.Flush(); err != nil {
			return err
		}
		ct := d.GetContact()
		var emails []string
		for _, e := range ct.GetEmailAddresses() {
			emails = append(emails, e.GetAddress())
		}
		var phones []string
		for _, p := range ct.GetTelephoneNumbers() {
			phones = append(phones, p.GetNumber())
		}
		var keys []string
		for _, k := range ct.GetPublicKeys() {
			keys = append(keys, keyFormatLabel(k.GetFormat())+" "+k.GetFingerprint())
		}
		fmt.Fprintln(w)
		tw = newTable(w)
		row := func(k string, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, dash(v)) }
		row("e-mail", strings.Join(emails, ", "))
		row("telephone", strings.Join(phones, ", "))
		row("time zone", ct.GetTimeZone())
		row("keys", strings.Join(keys, "; "))
		var locations []string
		for _, l := range d.GetDocument().GetLocations() {
			locations = append(locations, l.GetUri())
		}
		row("published at", strings.Join(locations, ", "))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "\n'irxctl team describe' shows it as RFC 2350 text; -o yaml shows all of it, in the form 'team set' takes.")
		return nil
	})
}

func keyFormatLabel(f irxv1.PublicKeyFormat) string {
	switch f {
	case irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_OPENPGP:
		return "OpenPGP"
	case irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_X509:
		return "X.509"
	}
	return "key"
}

// textWidth is the width RFC 2350's own text is set in.
const textWidth = 72

// rfcWriter writes the template's numbered sections with wrapped,
// indented bodies; an empty section says so, so the numbering stays the
// template's.
type rfcWriter struct {
	w   *bytes.Buffer
	any bool // the current section has a body
}

func (r *rfcWriter) heading(s string) {
	r.close()
	fmt.Fprintf(r.w, "%s\n\n", s)
	r.any = false
}

// group is a heading with subsections and no body of its own.
func (r *rfcWriter) group(s string) {
	r.heading(s)
	r.any = true
}

func (r *rfcWriter) close() {
	if !r.any && r.w.Len() > 0 {
		r.para("None given.")
	}
}

// para writes text as paragraphs wrapped at textWidth, indented three
// spaces. Blank lines separate paragraphs; the lines of a paragraph are
// joined and wrapped again, except that a line starting with a list
// marker ("-", "*", "1.") or indented starts a new line, so lists written
// in the text stay lists.
func (r *rfcWriter) para(text string) {
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return
	}
	var words []string
	indent := ""
	flush := func() {
		if len(words) > 0 {
			wrap(r.w, words, "   "+indent, "   "+indent)
		}
		words, indent = nil, ""
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			flush()
			r.w.WriteString("\n")
			continue
		case startsNewLine(line):
			flush()
			lead := len(line) - len(strings.TrimLeft(line, " \t"))
			indent = strings.Repeat(" ", min(lead, 8))
		}
		words = append(words, strings.Fields(trimmed)...)
	}
	flush()
	r.w.WriteString("\n")
	r.any = true
}

var listMarker = regexp.MustCompile(`^\s*([-*\x{2022}]|\d+[.)])\s`)

func startsNewLine(line string) bool {
	return listMarker.MatchString(line) || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
}

// lines writes each line as it is (an address), indented three spaces.
func (r *rfcWriter) lines(lines []string) {
	for _, l := range lines {
		wrap(r.w, strings.Fields(l), "   ", "     ")
	}
	r.endList(len(lines))
	r.any = r.any || len(lines) > 0
}

// item writes a list item: "- first line", continuation lines aligned,
// and an optional description below it (its lines kept when they fit).
func (r *rfcWriter) item(first, description string) {
	wrap(r.w, strings.Fields(first), "   - ", "     ")
	if d := strings.TrimSpace(description); d != "" {
		for _, line := range strings.Split(d, "\n") {
			line = strings.TrimSpace(line)
			if len(line)+5 <= textWidth {
				r.w.WriteString("     " + line + "\n")
				continue
			}
			wrap(r.w, strings.Fields(line), "     ", "     ")
		}
	}
	r.any = true
}

// endList ends a list with a blank line.
func (r *rfcWriter) endList(n int) {
	if n > 0 {
		r.w.WriteString("\n")
	}
}

func wrap(w *bytes.Buffer, words []string, first, rest string) {
	if len(words) == 0 {
		return
	}
	line := first
	width := len(first)
	start := true
	for _, word := range words {
		if !start && width+1+len(word) > textWidth {
			w.WriteString(line + "\n")
			line, width, start = rest, len(rest), true
		}
		if !start {
			line += " "
			width++
		}
		line += word
		width += len(word)
		start = false
	}
	w.WriteString(line + "\n")
}

func (r *rfcWriter) links(links []*irxv1.TeamLink) {
	for _, l := range links {
		r.item("<"+l.GetUri()+">", l.GetDescription())
	}
	r.endList(len(links))
}

func (r *rfcWriter) list(items []string) {
	for _, s := range items {
		r.item(s, "")
	}
	r.endList(len(items))
}

func (r *rfcWriter) phones(phones []*irxv1.TeamPhoneNumber) {
	for _, p := range phones {
		r.item(p.GetNumber(), p.GetDescription())
	}
	r.endList(len(phones))
}

// renderRFC2350 writes d as the CSIRT description template of RFC 2350
// Appendix D, numbered as its filled-in example (Appendix E) is. v, when
// set, is what was verified of a peer's signed copy.
func renderRFC2350(out io.Writer, d *irxv1.TeamDescription, v *irxv1.TeamDescriptionVerification) error {
	r := &rfcWriter{w: &bytes.Buffer{}}
	ct, ch, po, sv := d.GetContact(), d.GetCharter(), d.GetPolicies(), d.GetServices()
	title := "CSIRT Description for " + ct.GetName()
	fmt.Fprintf(r.w, "%s\n%s\n\n", title, strings.Repeat("=", min(len(title), textWidth)))
	if v != nil {
		fmt.Fprintf(r.w, "signature verified: signed by %s, chain to pinned CA %s\n", v.GetSigner(), v.GetCaFingerprint())
		fmt.Fprintf(r.w, "(fetched from %s at %s; signer certificate valid until %s)\n\n",
			dash(v.GetEndpoint()), timeLabel(v.GetVerifyTime()), timeLabel(v.GetSignerExpireTime()))
	}
	r.any = true

	r.group("1. Document Information")
	r.heading("1.1 Date of Last Update")
	r.para(fmt.Sprintf("This is version %d of the description of team %s, published %s.",
		d.GetVersion(), d.GetTeamId(), d.GetUpdateTime().AsTime().UTC().Format("2006-01-02 15:04:05 MST")))
	r.heading("1.2 Distribution List for Notifications")
	r.links(d.GetDocument().GetDistributionLists())
	r.heading("1.3 Locations where this Document May Be Found")
	r.links(d.GetDocument().GetLocations())
	r.heading("1.4 Authenticating this Document")
	r.para(d.GetDocument().GetAuthentication())
	if v != nil {
		r.para(fmt.Sprintf("This copy was received from team %s over irx federation (mutual TLS) and its signature verified: signed by %s, whose certificate chains to the CA pinned for %s, fingerprint %s.",
			d.GetTeamId(), v.GetSigner(), d.GetTeamId(), v.GetCaFingerprint()))
	} else {
		r.para(fmt.Sprintf("Peers of %s receive this description signed by the key of the node that serves it (irx://%s/node/...), and verify it against the CA they pinned for %s.",
			d.GetTeamId(), d.GetTeamId(), d.GetTeamId()))
	}

	r.group("2. Contact Information")
	r.heading("2.1 Name of the Team")
	r.para(ct.GetName())
	r.heading("2.2 Address")
	r.lines(ct.GetAddress())
	r.heading("2.3 Time Zone")
	r.para(ct.GetTimeZone())
	r.heading("2.4 Telephone Number")
	r.phones(ct.GetTelephoneNumbers())
	r.heading("2.5 Facsimile Number")
	r.phones(ct.GetFaxNumbers())
	r.heading("2.6 Other Telecommunication")
	r.list(ct.GetOtherTelecommunication())
	r.heading("2.7 Electronic Mail Address")
	for _, e := range ct.GetEmailAddresses() {
		r.item("<"+e.GetAddress()+">", e.GetDescription())
	}
	r.endList(len(ct.GetEmailAddresses()))
	r.heading("2.8 Public Keys and Encryption Information")
	for _, k := range ct.GetPublicKeys() {
		first := keyFormatLabel(k.GetFormat()) + " key"
		if k.GetUserId() != "" {
			first += " " + strconv.Quote(k.GetUserId())
		}
		var more []string
		more = append(more, "Fingerprint: "+k.GetFingerprint())
		if k.GetLocation() != "" {
			more = append(more, "Location: <"+k.GetLocation()+">")
		}
		if k.GetDescription() != "" {
			more = append(more, k.GetDescription())
		}
		r.item(first, strings.Join(more, "\n"))
	}
	r.endList(len(ct.GetPublicKeys()))
	r.para(ct.GetEncryptionInformation())
	r.heading("2.9 Team Members")
	for _, m := range ct.GetMembers() {
		first := m.GetName()
		if m.GetRole() != "" {
			first += ", " + m.GetRole()
		}
		if m.GetEmailAddress() != "" {
			first += " <" + m.GetEmailAddress() + ">"
		}
		r.item(first, m.GetDescription())
	}
	r.endList(len(ct.GetMembers()))
	r.para(ct.GetMembersNote())
	r.heading("2.10 Other Information")
	r.para(ct.GetOtherInformation())
	r.heading("2.11 Points of Customer Contact")
	r.para(ct.GetPointsOfCustomerContact())
	if ct.GetOperatingHours() != "" {
		r.para("Operating hours: " + ct.GetOperatingHours())
	}

	r.group("3. Charter")
	r.heading("3.1 Mission Statement")
	r.para(ch.GetMissionStatement())
	r.heading("3.2 Constituency")
	r.para(ch.GetConstituency())
	if n := ch.GetConstituencyNetworks(); len(n.GetCidrs())+len(n.GetAsns())+len(n.GetDomains()) > 0 {
		if len(n.GetCidrs()) > 0 {
			r.item("Networks: "+strings.Join(n.GetCidrs(), ", "), "")
		}
		if len(n.GetAsns()) > 0 {
			var asns []string
			for _, a := range n.GetAsns() {
				asns = append(asns, "AS"+strconv.FormatUint(uint64(a), 10))
			}
			r.item("Autonomous systems: "+strings.Join(asns, ", "), "")
		}
		if len(n.GetDomains()) > 0 {
			r.item("Domains: "+strings.Join(n.GetDomains(), ", "), "")
		}
		r.endList(1)
	}
	r.heading("3.3 Sponsorship and/or Affiliation")
	r.para(ch.GetSponsorshipAndAffiliation())
	r.heading("3.4 Authority")
	r.para(ch.GetAuthority())

	r.group("4. Policies")
	r.heading("4.1 Types of Incidents and Level of Support")
	r.para(po.GetIncidentTypesAndSupport())
	if p := po.GetIncidentPriorities(); len(p) > 0 {
		r.para("Resources are assigned by these priorities, highest first:")
		for i, s := range p {
			wrap(r.w, strings.Fields(s), fmt.Sprintf("   %2d. ", i+1), "       ")
		}
		r.endList(len(p))
	}
	r.heading("4.2 Co-operation, Interaction and Disclosure of Information")
	r.para(po.GetCooperationAndDisclosure())
	r.heading("4.3 Communication and Authentication")
	r.para(po.GetCommunicationAndAuthentication())

	r.group("5. Services")
	r.heading("5.1 Incident Response")
	r.para(sv.GetIncidentResponse())
	r.any = true // its subsections are its content
	r.heading("5.1.1 Incident Triage")
	r.list(sv.GetIncidentTriage())
	r.heading("5.1.2 Incident Coordination")
	r.list(sv.GetIncidentCoordination())
	r.heading("5.1.3 Incident Resolution")
	r.list(sv.GetIncidentResolution())
	r.heading("5.2 Proactive Activities")
	r.list(sv.GetProactiveActivities())

	r.heading("6. Incident Reporting Forms")
	r.links(d.GetIncidentReportingForms())
	r.para(d.GetIncidentReportingFormsNote())
	r.heading("7. Disclaimers")
	r.para(d.GetDisclaimers())
	r.close()

	_, err := out.Write(bytes.TrimRight(r.w.Bytes(), "\n"))
	if err == nil {
		_, err = io.WriteString(out, "\n")
	}
	return err
}
