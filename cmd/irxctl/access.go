package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// roleNames are the roles as irxctl spells them.
var roleNames = map[string]irxv1.Role{
	"viewer":        irxv1.Role_ROLE_VIEWER,
	"analyst":       irxv1.Role_ROLE_ANALYST,
	"policy-admin":  irxv1.Role_ROLE_POLICY_ADMIN,
	"cluster-admin": irxv1.Role_ROLE_CLUSTER_ADMIN,
}

func parseRole(s string) (irxv1.Role, error) {
	if r, ok := roleNames[strings.ToLower(s)]; ok {
		return r, nil
	}
	if v, ok := irxv1.Role_value[strings.ToUpper(s)]; ok && v != 0 {
		return irxv1.Role(v), nil
	}
	return 0, fmt.Errorf("%q is not a role: want viewer, analyst, policy-admin or cluster-admin", s)
}

func roleName(r irxv1.Role) string {
	for name, v := range roleNames {
		if v == r {
			return name
		}
	}
	return r.String()
}

func accessCommand() *command {
	changeRole := func(grant bool) func(*flag.FlagSet) action {
		return func(*flag.FlagSet) action {
			return func(ctx context.Context, c *cli, args []string) error {
				role, err := parseRole(args[1])
				if err != nil {
					return usageErrorf("%v", err)
				}
				return withClient(ctx, c, irxv1.NewAccessServiceClient, func(ctx context.Context, cl irxv1.AccessServiceClient) error {
					var b *irxv1.RoleBinding
					var m interface{ GetBinding() *irxv1.RoleBinding }
					if grant {
						m, err = cl.GrantRole(ctx, &irxv1.GrantRoleRequest{Identity: args[0], Role: role})
					} else {
						m, err = cl.RevokeRole(ctx, &irxv1.RevokeRoleRequest{Identity: args[0], Role: role})
					}
					if err != nil {
						return err
					}
					b = m.GetBinding()
					return c.printProto(b, func(w io.Writer) error { return writeBindings(w, []*irxv1.RoleBinding{b}) })
				})
			}
		}
	}
	return &command{
		name:  "access",
		usage: "access COMMAND",
		short: "Manage who may call the operator API: roles, revoked certificates, the record of operator actions",
		subs: []*command{
			{
				name:  "grant",
				usage: "access grant IDENTITY ROLE",
				short: "Bind a role to an operator (irx://TEAM/operator/NAME)",
				long: `ROLE is viewer (read everything), analyst (create, update, withdraw and hand
off incidents), policy-admin (policies, peers, the team description) or
cluster-admin (membership, leadership, bindings, revocations). Roles do not
include each other: an analyst who must also read needs viewer too.`,
				minArgs: 2, maxArgs: 2,
				connects: true, printsOutput: true,
				setup: changeRole(true),
			},
			{
				name:    "revoke",
				usage:   "access revoke IDENTITY ROLE",
				short:   "Remove a role from an operator",
				minArgs: 2, maxArgs: 2,
				connects: true, printsOutput: true,
				setup: changeRole(false),
			},
			{
				name:     "list",
				usage:    "access list",
				short:    "List the role bindings",
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, _ []string) error {
						return withClient(ctx, c, irxv1.NewAccessServiceClient, func(ctx context.Context, cl irxv1.AccessServiceClient) error {
							bs, err := collectPages(0, func(token string, _ int) ([]*irxv1.RoleBinding, string, error) {
								resp, err := cl.ListRoleBindings(ctx, &irxv1.ListRoleBindingsRequest{PageSize: 1000, PageToken: token})
								return resp.GetBindings(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							resp := &irxv1.ListRoleBindingsResponse{Bindings: bs}
							return c.printList(resp, "bindings", len(bs), func(w io.Writer) error { return writeBindings(w, bs) })
						})
					}
				},
			},
			{
				name:  "revoke-cert",
				usage: "access revoke-cert (--identity IDENTITY | --serial HEX) [--reason TEXT]",
				short: "Revoke an operator or node certificate of the team",
				long: `Every node refuses the certificate at its next call and, within a second,
ends its open operator streams and, for a node certificate, its intra-cluster
connections. --identity revokes every certificate naming it; --serial one
certificate (openssl x509 -noout -serial prints it). There is no undo: issue a
new certificate under another name.`,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					identity := fs.String("identity", "", "the certificate `IDENTITY`, irx://TEAM/operator/NAME or irx://TEAM/node/NAME")
					serial := fs.String("serial", "", "the certificate's serial number in `HEX`")
					reason := fs.String("reason", "", "why, for whoever reads the list")
					return func(ctx context.Context, c *cli, _ []string) error {
						if (*identity == "") == (*serial == "") {
							return usageErrorf("give one of --identity and --serial")
						}
						return withClient(ctx, c, irxv1.NewAccessServiceClient, func(ctx context.Context, cl irxv1.AccessServiceClient) error {
							resp, err := cl.RevokeCertificate(ctx, &irxv1.RevokeCertificateRequest{Identity: *identity, SerialNumber: *serial, Reason: *reason})
							if err != nil {
								return err
							}
							r := resp.GetRevokedCertificate()
							return c.printProto(resp, func(w io.Writer) error { return writeRevoked(w, []*irxv1.RevokedCertificate{r}) })
						})
					}
				},
			},
			{
				name:     "revoked",
				usage:    "access revoked",
				short:    "List the revoked certificates",
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, _ []string) error {
						return withClient(ctx, c, irxv1.NewAccessServiceClient, func(ctx context.Context, cl irxv1.AccessServiceClient) error {
							rs, err := collectPages(0, func(token string, _ int) ([]*irxv1.RevokedCertificate, string, error) {
								resp, err := cl.ListRevokedCertificates(ctx, &irxv1.ListRevokedCertificatesRequest{PageSize: 1000, PageToken: token})
								return resp.GetRevokedCertificates(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							resp := &irxv1.ListRevokedCertificatesResponse{RevokedCertificates: rs}
							return c.printList(resp, "revoked_certificates", len(rs), func(w io.Writer) error { return writeRevoked(w, rs) })
						})
					}
				},
			},
			{
				name:  "actions",
				usage: "access actions [--operator IDENTITY] [--target TARGET] [--since TIME] [--until TIME] [--limit N]",
				short: "List what operators changed, oldest first",
				long: `Every change made through the operator API is recorded with who made it
(the certificate's identity), when, the method, the target (incident/ID,
policy/PEER, peer/TEAM, team, member/NODE, leadership, binding/IDENTITY,
certificate/...) and the call's request id (the x-request-id the node
returned and logged). TIME is RFC 3339.`,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					operator := fs.String("operator", "", "only the actions of this `IDENTITY`")
					target := fs.String("target", "", "only the actions on this `TARGET`")
					since := fs.String("since", "", "only actions at or after `TIME`")
					until := fs.String("until", "", "only actions before `TIME`")
					limit := fs.Int("limit", 100, "at most `N` actions (0: all)")
					return func(ctx context.Context, c *cli, _ []string) error {
						req := &irxv1.ListOperatorActionsRequest{Identity: *operator, Target: *target}
						for _, tf := range []struct {
							flag, value string
							dst         **timestamppb.Timestamp
						}{{"--since", *since, &req.StartTime}, {"--until", *until, &req.EndTime}} {
							if tf.value == "" {
								continue
							}
							t, err := time.Parse(time.RFC3339Nano, tf.value)
							if err != nil {
								return usageErrorf("%s %q: want RFC 3339, like 2026-01-02T15:04:05Z", tf.flag, tf.value)
							}
							*tf.dst = timestamppb.New(t)
						}
						if *limit < 0 {
							return usageErrorf("--limit must not be negative")
						}
						return withClient(ctx, c, irxv1.NewAccessServiceClient, func(ctx context.Context, cl irxv1.AccessServiceClient) error {
							acts, err := collectPages(*limit, func(token string, remaining int) ([]*irxv1.OperatorAction, string, error) {
								r := &irxv1.ListOperatorActionsRequest{Identity: req.Identity, Target: req.Target, StartTime: req.StartTime, EndTime: req.EndTime, PageToken: token, PageSize: 1000}
								if remaining > 0 && remaining < 1000 {
									r.PageSize = int32(remaining)
								}
								resp, err := cl.ListOperatorActions(ctx, r)
								return resp.GetActions(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							resp := &irxv1.ListOperatorActionsResponse{Actions: acts}
							return c.printList(resp, "actions", len(acts), func(w io.Writer) error { return writeActions(w, acts) })
						})
					}
				},
			},
		},
	}
}

func writeBindings(w io.Writer, bs []*irxv1.RoleBinding) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "IDENTITY\tROLES")
	for _, b := range bs {
		names := make([]string, len(b.GetRoles()))
		for i, r := range b.GetRoles() {
			names[i] = roleName(r)
		}
		roles := strings.Join(names, ",")
		if roles == "" {
			roles = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", b.GetIdentity(), roles)
	}
	return tw.Flush()
}

func writeRevoked(w io.Writer, rs []*irxv1.RevokedCertificate) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "IDENTITY\tSERIAL\tREVOKED\tBY\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(r.GetIdentity()), dash(r.GetSerialNumber()),
			r.GetRevokeTime().AsTime().UTC().Format(time.RFC3339), dash(r.GetRevokedBy()), dash(r.GetReason()))
	}
	return tw.Flush()
}

func writeActions(w io.Writer, acts []*irxv1.OperatorAction) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tOPERATOR\tMETHOD\tTARGET\tVERSION\tREQUEST ID")
	for _, a := range acts {
		version := "-"
		if a.GetVersion() > 0 {
			version = fmt.Sprint(a.GetVersion())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.GetTime().AsTime().UTC().Format(time.RFC3339Nano), a.GetIdentity(),
			a.GetMethod(), dash(a.GetTarget()), version, dash(a.GetRequestId()))
	}
	return tw.Flush()
}
