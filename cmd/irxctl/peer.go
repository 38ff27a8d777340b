package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// maxPeerPageSize is the server's largest page of peers.
const maxPeerPageSize = 500

func peerCommand() *command {
	return &command{
		name:  "peer",
		usage: "peer COMMAND",
		short: "Manage the teams this team federates with, and see how federation with each goes",
		subs: []*command{
			peerCreateCommand(), peerImportCommand(), peerGetCommand(), peerListCommand(),
			peerUpdateCommand(), peerRevokeCertCommand(), peerDeleteCommand(),
		},
	}
}

func withPeers(ctx context.Context, c *cli, f func(context.Context, irxv1.PeerServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewPeerServiceClient, f)
}

func peerCreateCommand() *command {
	return &command{
		name:  "create",
		usage: "peer create --team TEAM --peer-ca-file FILE [--endpoint HOST:PORT]... [--display-name NAME] [--fingerprint FP] [--disabled]",
		short: "Add a peer team: its id, its CA to pin and where its feed is served",
		long: `--peer-ca-file is the peer team's CA certificate (its ca.crt): only
certificates it issued that name TEAM are accepted from the peer. (--ca-file
is this team's own CA, for the connection to the node, as everywhere.) Compare its fingerprint
with the one the peer told you over another channel, or give it with
--fingerprint and irxctl compares. Without --endpoint the peer can pull our
feed but we do not follow its own. "peer import" does all this from the
peer's bundle file.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			team := fs.String("team", "", "the peer's team `ID`")
			caFile := fs.String("peer-ca-file", "", "`FILE` with the peer team's CA certificate, PEM")
			var endpoints stringsFlag
			fs.Var(&endpoints, "endpoint", "the peer's federation endpoint `HOST:PORT` (repeatable, or comma-separated; port default 7401)")
			display := fs.String("display-name", "", "a human-readable `NAME`, e.g. \"CERT-B (national CSIRT of B)\"")
			fingerprint := fs.String("fingerprint", "", "the CA's SHA-256 fingerprint `FP` as the peer told it; refuse on mismatch")
			disabled := fs.Bool("disabled", false, "add the peer disabled: no feed is followed or served until it is enabled")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *team == "" || *caFile == "" {
					return usageErrorf("--team and --peer-ca-file are required")
				}
				if err := pki.ValidID(*team); err != nil {
					return usageErrorf("--team: %v", err)
				}
				eps, err := normalizeEndpoints(endpoints)
				if err != nil {
					return err
				}
				caPEM, caCert, err := c.readPeerCA(*caFile, *team, *fingerprint)
				if err != nil {
					return err
				}
				peer := &irxv1.Peer{TeamId: *team, DisplayName: *display, Endpoints: eps, CaCertificatePem: caPEM, Disabled: *disabled}
				return c.createPeer(ctx, peer, caCert, *fingerprint != "")
			}
		},
	}
}

func peerImportCommand() *command {
	return &command{
		name:  "import",
		usage: "peer import BUNDLE_FILE [--fingerprint FP] [--display-name NAME] [--disabled]",
		short: "Add a peer team from the peering bundle it sent ('irxctl pki bundle')",
		long: `The bundle is checked before anything is sent: its CA must be a team CA of
the bundle's team and match the bundle's ca_fingerprint, else the import is
refused (the file was altered or damaged). That only proves the file is
consistent: give the fingerprint the peer told you over another channel with
--fingerprint, and irxctl refuses a bundle whose CA is not that one.
BUNDLE_FILE - reads stdin.`,
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			fingerprint := fs.String("fingerprint", "", "the CA's SHA-256 fingerprint `FP` as the peer told it out of band")
			display := fs.String("display-name", "", "a human-readable `NAME` (default: the bundle's)")
			disabled := fs.Bool("disabled", false, "add the peer disabled")
			return func(ctx context.Context, c *cli, args []string) error {
				data, err := c.readAll(args[0])
				if err != nil {
					return err
				}
				name := args[0]
				if name == "-" {
					name = "stdin"
				}
				b, caCert, err := parseBundle(name, data, time.Now())
				if err != nil {
					return err
				}
				if err := checkFingerprint(caCert, *fingerprint, "the bundle's CA"); err != nil {
					return err
				}
				peer := &irxv1.Peer{
					TeamId: b.TeamID, DisplayName: b.DisplayName, Endpoints: b.Endpoints,
					CaCertificatePem: b.CACertificatePEM, Disabled: *disabled,
				}
				if *display != "" {
					peer.DisplayName = *display
				}
				return c.createPeer(ctx, peer, caCert, *fingerprint != "")
			}
		},
	}
}

// createPeer sends CreatePeer and prints the stored peer. Without an
// out-of-band fingerprint it reminds the operator to compare one.
func (c *cli) createPeer(ctx context.Context, peer *irxv1.Peer, caCert *x509.Certificate, compared bool) error {
	return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
		resp, err := pc.CreatePeer(ctx, &irxv1.CreatePeerRequest{Peer: peer})
		if err != nil {
			return err
		}
		if !compared {
			fmt.Fprintf(c.stderr, "irxctl: pinned the CA of %s with fingerprint %s; make sure %s confirmed exactly this fingerprint over another channel (next time: --fingerprint)\n",
				peer.GetTeamId(), pki.Fingerprint(caCert), peer.GetTeamId())
		}
		return c.printPeer(resp.GetPeer())
	})
}

// readPeerCA reads a peer's CA certificate file, checks it can be pinned
// for team and, when fingerprint is given, that it is that certificate.
func (c *cli) readPeerCA(file, team, fingerprint string) (string, *x509.Certificate, error) {
	data, err := c.readAll(file)
	if err != nil {
		return "", nil, err
	}
	cert, err := checkPeerCA(data, team, time.Now())
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := checkFingerprint(cert, fingerprint, file); err != nil {
		return "", nil, err
	}
	return string(pki.EncodeCertPEM(cert.Raw)), cert, nil
}

// checkFingerprint compares the CA with a fingerprint received out of band;
// "" compares nothing.
func checkFingerprint(cert *x509.Certificate, fingerprint, what string) error {
	if fingerprint == "" {
		return nil
	}
	want, err := normalizeFingerprint(fingerprint)
	if err != nil {
		return usageErrorf("--fingerprint: %v", err)
	}
	if got := pki.Fingerprint(cert); got != want {
		return fmt.Errorf("%s has fingerprint %s, not %s as given with --fingerprint: it is not the CA the peer told you about; do not import it", what, got, want)
	}
	return nil
}

func normalizeEndpoints(eps []string) ([]string, error) {
	out := make([]string, 0, len(eps))
	for _, ep := range eps {
		n, err := normalizeEndpoint(ep)
		if err != nil {
			return nil, usageErrorf("--endpoint %v", err)
		}
		out = append(out, n)
	}
	return out, nil
}

func peerGetCommand() *command {
	return &command{
		name:    "get",
		usage:   "peer get TEAM",
		short:   "Show a peer: endpoints, pinned CA, policy in force and federation status",
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(*flag.FlagSet) action {
			return func(ctx context.Context, c *cli, args []string) error {
				return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
					resp, err := pc.GetPeer(ctx, &irxv1.GetPeerRequest{TeamId: args[0]})
					if err != nil {
						return err
					}
					return c.printPeer(resp.GetPeer())
				})
			}
		},
	}
}

func (c *cli) printPeer(p *irxv1.Peer) error {
	return c.printProto(p, func(w io.Writer) error { return writePeerDetail(w, p) })
}

func peerListCommand() *command {
	return &command{
		name:  "list",
		usage: "peer list",
		short: "List the peers with their federation status",
		long: `Federation runs in two directions, each shown on its own. WE FOLLOW: our
leader pulls the peer's feed now ("no" while it cannot, "-" when the peer has
no endpoints, so we do not follow it, "disabled"). FOLLOWS US: the peer has
a Subscribe stream open on one of our nodes now ("-" when we have no policy
for it: nothing of our feed is disclosed to it, so it is not expected to;
"?" when a node of ours that did not answer may hold its stream).

IN-CURSOR is the last sequence of the peer's feed we applied and IN-LAG how
many entries we are behind it (and how long its newest entry has waited).
OUT-ACKED is the last sequence of our feed the peer acknowledged and OUT-LAG
how many entries it has yet to acknowledge ("-" without a policy for it).
SENT and RECEIVED count incident versions the peer acknowledged and we
applied; WITHHELD counts entries of our feed the policy kept from the peer.
"peer get" shows the rest.`,
		connects: true, printsOutput: true,
		setup: func(*flag.FlagSet) action {
			return func(ctx context.Context, c *cli, _ []string) error {
				return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
					peers, err := collectPages(0, func(token string, _ int) ([]*irxv1.Peer, string, error) {
						resp, err := pc.ListPeers(ctx, &irxv1.ListPeersRequest{PageSize: maxPeerPageSize, PageToken: token})
						return resp.GetPeers(), resp.GetNextPageToken(), err
					})
					if err != nil {
						return err
					}
					all := &irxv1.ListPeersResponse{Peers: peers}
					return c.printList(all, "peers", len(all.Peers), func(w io.Writer) error { return writePeers(w, all.GetPeers()...) })
				})
			}
		},
	}
}

func peerUpdateCommand() *command {
	return &command{
		name:  "update",
		usage: "peer update TEAM [--display-name NAME] [--endpoint HOST:PORT]... [--peer-ca-file FILE [--fingerprint FP]] [--disabled[=false]]",
		short: "Change a peer's name, endpoints or pinned CA, or disable and enable it",
		long: `Only what is given changes. --endpoint replaces the whole list.
--peer-ca-file pins a new CA (when the peer rotates its own); --disabled
stops following the peer's feed and refuses its connections without deleting
it, --disabled=false enables it again.`,
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			display := fs.String("display-name", "", "the new `NAME`")
			var endpoints stringsFlag
			fs.Var(&endpoints, "endpoint", "the peer's federation endpoints `HOST:PORT` (repeatable, or comma-separated); replaces the list")
			caFile := fs.String("peer-ca-file", "", "`FILE` with the peer team's new CA certificate, PEM")
			fingerprint := fs.String("fingerprint", "", "the new CA's SHA-256 fingerprint `FP`, as the peer told it")
			var disabled optBool
			fs.Var(&disabled, "disabled", "disable the peer (--disabled=false enables it)")
			return func(ctx context.Context, c *cli, args []string) error {
				peer := &irxv1.Peer{TeamId: args[0]}
				var paths []string
				var err error
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "display-name":
						peer.DisplayName = *display
						paths = append(paths, "display_name")
					case "endpoint":
						paths = append(paths, "endpoints")
					case "peer-ca-file":
						paths = append(paths, "ca_certificate_pem")
					case "disabled":
						peer.Disabled = disabled.val
						paths = append(paths, "disabled")
					}
				})
				if *fingerprint != "" && *caFile == "" {
					return usageErrorf("--fingerprint checks the certificate of --peer-ca-file; give both")
				}
				if len(paths) == 0 {
					return usageErrorf("nothing to change: give --display-name, --endpoint, --peer-ca-file or --disabled")
				}
				if peer.Endpoints, err = normalizeEndpoints(endpoints); err != nil {
					return err
				}
				if *caFile != "" {
					if peer.CaCertificatePem, _, err = c.readPeerCA(*caFile, args[0], *fingerprint); err != nil {
						return err
					}
				}
				return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
					resp, err := pc.UpdatePeer(ctx, &irxv1.UpdatePeerRequest{Peer: peer, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
					if err != nil {
						return err
					}
					return c.printPeer(resp.GetPeer())
				})
			}
		},
	}
}

func peerDeleteCommand() *command {
	return &command{
		name:  "delete",
		usage: "peer delete TEAM",
		short: "Remove a peer: its feed is no longer followed and it can no longer connect",
		long: `What the peer received stays in the disclosure ledger ("irxctl audit").
To pause federation instead, use "peer update TEAM --disabled".`,
		minArgs: 1, maxArgs: 1,
		connects: true,
		setup: func(*flag.FlagSet) action {
			return func(ctx context.Context, c *cli, args []string) error {
				return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
					if _, err := pc.DeletePeer(ctx, &irxv1.DeletePeerRequest{TeamId: args[0]}); err != nil {
						return err
					}
					_, err := fmt.Fprintf(c.stdout, "Peer %q deleted.\n", args[0])
					return err
				})
			}
		},
	}
}

// writePeers is the federation overview, one row per peer.
func writePeers(w io.Writer, peers ...*irxv1.Peer) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PEER\tWE FOLLOW\tFOLLOWS US\tIN-CURSOR\tIN-LAG\tOUT-ACKED\tOUT-LAG\tSENT\tRECEIVED\tWITHHELD\tLAST ERROR")
	for _, p := range peers {
		st := p.GetStatus()
		outLag := fmt.Sprint(st.GetOutboundLagRecords())
		if st.GetNothingDisclosed() {
			outLag = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", p.GetTeamId(), weFollowLabel(p), followsUsLabel(p),
			st.GetInboundCursor(), inboundLag(st), st.GetOutboundAcknowledged(), outLag,
			st.GetSent(), st.GetReceived(), st.GetWithheld(), dash(oneLineText(st.GetLastError(), 60)))
	}
	return tw.Flush()
}

// weFollowLabel says whether our leader follows the peer's feed.
func weFollowLabel(p *irxv1.Peer) string {
	switch {
	case p.GetDisabled():
		return "disabled"
	case p.GetStatus().GetConnected():
		return "yes"
	case len(p.GetEndpoints()) == 0:
		return "-" // nowhere to follow it: it only pulls from us
	}
	return "no"
}

// followsUsLabel says whether the peer follows our feed.
func followsUsLabel(p *irxv1.Peer) string {
	st := p.GetStatus()
	switch {
	case st.GetFollowsUs():
		return "yes"
	case p.GetDisabled():
		return "disabled"
	case len(st.GetUnansweredNodes()) > 0:
		return "?"
	case st.GetNothingDisclosed():
		return "-"
	}
	return "no"
}

func weFollowDetail(p *irxv1.Peer) string {
	st := p.GetStatus()
	switch {
	case p.GetDisabled():
		return "no: the peer is disabled"
	case st.GetConnected():
		return "yes: our leader pulls its feed from " + st.GetEndpoint()
	case len(p.GetEndpoints()) == 0:
		return "no: the peer has no endpoints, so we do not follow its feed"
	}
	return "no: our leader is not connected to its feed"
}

func followsUsDetail(p *irxv1.Peer) string {
	st := p.GetStatus()
	var s string
	switch {
	case st.GetFollowsUs():
		s = "yes: Subscribe streams open on " + strings.Join(st.GetFollowsUsOnNodes(), ", ")
	case st.GetNothingDisclosed():
		s = "no, and not expected: we have no policy for the peer, so our feed discloses nothing to it"
	default:
		s = "no: no Subscribe stream of the peer is open on our nodes"
	}
	if st.GetLastSubscribeTime() != nil {
		s += "; last subscribed " + timeLabel(st.GetLastSubscribeTime())
	}
	if nodes := st.GetUnansweredNodes(); len(nodes) > 0 {
		s += "; " + strings.Join(nodes, ", ") + " did not answer"
	}
	return s
}

// inboundLag is the entries behind, with how long the newest of them has
// waited: "3 (12s)".
func inboundLag(st *irxv1.PeerStatus) string {
	lag := fmt.Sprint(st.GetInboundLagRecords())
	if s := st.GetInboundLagSeconds(); s > 0 {
		lag += " (" + (time.Duration(s * float64(time.Second))).Round(time.Second).String() + ")"
	}
	return lag
}

// oneLineText keeps a server message on one table line.
func oneLineText(s string, n int) string {
	return truncate(strings.Join(strings.Fields(s), " "), n)
}

func writePeerDetail(w io.Writer, p *irxv1.Peer) error {
	if err := writePeers(w, p); err != nil {
		return err
	}
	st := p.GetStatus()
	fmt.Fprintln(w)
	tw := newTable(w)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	if p.GetDisplayName() != "" {
		row("name", "%s", p.GetDisplayName())
	}
	eps := "none (the peer pulls our feed; we do not follow its own)"
	if len(p.GetEndpoints()) > 0 {
		eps = strings.Join(p.GetEndpoints(), ", ")
		if st.GetEndpoint() != "" {
			eps += " (following " + st.GetEndpoint() + ")"
		}
	}
	row("endpoints", "%s", eps)
	row("CA", "%s", dash(p.GetCaFingerprint()))
	if fps := p.GetRevokedCertificateFingerprints(); len(fps) > 0 {
		// One per line: the second column continues under the first.
		row("revoked", "%s", strings.Join(fps, "\n\t"))
	}
	if p.GetPolicyVersion() == 0 {
		row("policy", "none: nothing is disclosed to the peer (default deny); see 'irxctl policy apply'")
	} else {
		cons := p.GetConstituency()
		row("policy", "v%d, recipient class %s, constituency cidrs %v asns %v domains %v", p.GetPolicyVersion(),
			enumLabel(p.GetRecipientClass(), "RECIPIENT_CLASS_"), cons.GetCidrs(), cons.GetAsns(), cons.GetDomains())
	}
	row("inbound", "applied %d of %d, lag %s; received %d versions, %d replacements, %d withdrawals; refused %d",
		st.GetInboundCursor(), st.GetInboundHead(), inboundLag(st), st.GetReceived(), st.GetReceivedReplacements(), st.GetReceivedWithdrawals(), st.GetRejected())
	if st.GetLastRejection() != "" {
		row("last refused", "%s", oneLineText(st.GetLastRejection(), 200))
	}
	row("we follow", "%s", weFollowDetail(p))
	row("follows us", "%s", followsUsDetail(p))
	if limit := st.GetStreamsPerPeer(); limit > 0 {
		row("its streams", "%d open (at most %d per node), %d refused since the nodes started, %d bytes queued",
			st.GetOpenStreams(), limit, st.GetRefusedStreams(), st.GetQueuedBytes())
	}
	row("outbound", "acknowledged %d of %d, lag %d, last acknowledged %s; sent %d versions, %d replacements, %d withdrawals; withheld %d",
		st.GetOutboundAcknowledged(), st.GetOutboundHead(), st.GetOutboundLagRecords(), timeLabel(st.GetLastAcknowledgeTime()),
		st.GetSent(), st.GetSentReplacements(), st.GetSentWithdrawals(), st.GetWithheld())
	if v := st.GetRedisclosurePolicyVersion(); v != 0 {
		row("redisclosure", "what the peer holds is being disclosed again under policy v%d", v)
	}
	if st.GetLastError() != "" {
		row("last error", "%s (%s)", oneLineText(st.GetLastError(), 200), timeLabel(st.GetLastErrorTime()))
	}
	row("created", "%s, updated %s", timeLabel(p.GetCreateTime()), timeLabel(p.GetUpdateTime()))
	return tw.Flush()
}
