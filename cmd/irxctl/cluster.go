package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"google.golang.org/grpc"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func clusterCommand() *command {
	return &command{
		name:  "cluster",
		usage: "cluster COMMAND",
		short: "Inspect and change the team's Raft cluster",
		subs: []*command{
			{
				name:  "status",
				usage: "cluster status",
				short: "Show every member with its role, applied index and lag",
				long: `Any node answers; it asks each member for its state. LAG is the number of
entries a member has yet to apply behind the leader's commit index; ERROR says
why a member could not be asked.`,
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, _ []string) error {
						return withCluster(ctx, c, func(ctx context.Context, cl irxv1.ClusterServiceClient) error {
							resp, err := cl.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error { return writeClusterStatus(w, resp) })
						})
					}
				},
			},
			{
				name:  "add",
				usage: "cluster add NODE_ID ADDRESS [--non-voter]",
				short: "Add a node to the team's Raft configuration",
				long: `ADDRESS is the new node's intra-cluster (Raft) host:port, not its operator
API. The node must run with --join and a certificate from the team CA.`,
				minArgs: 2, maxArgs: 2,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					nonVoter := fs.Bool("non-voter", false, "replicate to the node without giving it a vote")
					return func(ctx context.Context, c *cli, args []string) error {
						return withCluster(ctx, c, func(ctx context.Context, cl irxv1.ClusterServiceClient) error {
							resp, err := cl.AddMember(ctx, &irxv1.AddMemberRequest{NodeId: args[0], Address: args[1], NonVoter: *nonVoter})
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error { return writeMembers(w, resp.GetMembers()) })
						})
					}
				},
			},
			{
				name:    "remove",
				usage:   "cluster remove NODE_ID",
				short:   "Remove a node from the team's Raft configuration",
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, args []string) error {
						return withCluster(ctx, c, func(ctx context.Context, cl irxv1.ClusterServiceClient) error {
							resp, err := cl.RemoveMember(ctx, &irxv1.RemoveMemberRequest{NodeId: args[0]})
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error { return writeMembers(w, resp.GetMembers()) })
						})
					}
				},
			},
			{
				name:     "transfer",
				usage:    "cluster transfer [NODE_ID]",
				short:    "Hand leadership to NODE_ID, or to the most up-to-date follower",
				maxArgs:  1,
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, args []string) error {
						req := &irxv1.TransferLeadershipRequest{}
						if len(args) == 1 {
							req.NodeId = args[0]
						}
						return withCluster(ctx, c, func(ctx context.Context, cl irxv1.ClusterServiceClient) error {
							resp, err := cl.TransferLeadership(ctx, req)
							if err != nil {
								return err
							}
							return c.printProto(resp, func(w io.Writer) error {
								_, err := fmt.Fprintf(w, "leader: %s\n", resp.GetLeaderId())
								return err
							})
						})
					}
				},
			},
		},
	}
}

// withCluster runs one bounded cluster call.
func withCluster(ctx context.Context, c *cli, f func(context.Context, irxv1.ClusterServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewClusterServiceClient, f)
}

// withClient connects, makes one service client and runs f with a call
// deadline, closing the connection afterwards.
func withClient[C any](ctx context.Context, c *cli, newClient func(grpc.ClientConnInterface) C, f func(context.Context, C) error) error {
	s, err := c.connect()
	if err != nil {
		return err
	}
	defer s.Close()
	callCtx, cancel := s.call(ctx)
	defer cancel()
	return f(callCtx, newClient(s.conn))
}

// collectPages follows next_page_token until the server sends none or limit
// items (0: no limit) are collected. list gets the token to send and how
// many items are still wanted (0: no limit), so it can ask for no more.
func collectPages[T any](limit int, list func(token string, remaining int) (items []T, next string, err error)) ([]T, error) {
	var out []T
	token := ""
	for {
		remaining := 0
		if limit > 0 {
			remaining = limit - len(out)
		}
		items, next, err := list(token, remaining)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

func writeClusterStatus(w io.Writer, st *irxv1.GetClusterStatusResponse) error {
	fmt.Fprintf(w, "team %s, leader %s, term %d, commit index %d, last ticket %d (answered by %s)\n\n",
		st.GetTeamId(), dash(st.GetLeaderId()), st.GetTerm(), st.GetCommitIndex(), st.GetLastTicket(), st.GetNodeId())
	// What this node's disks keep it from doing comes first: it is why
	// the node refuses writes and reports NOT_SERVING.
	problems := 0
	for _, d := range st.GetDisks() {
		if d.GetProblem() != "" {
			fmt.Fprintf(w, "%s refuses writes: %s\n", st.GetNodeId(), d.GetProblem())
			problems++
		}
	}
	if problems > 0 {
		fmt.Fprintln(w)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tADDRESS\tROLE\tLEADER\tVOTER\tAPPLIED\tLAG\tERROR")
	for _, m := range st.GetMembers() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%d\t%d\t%s\n", m.GetNodeId(), m.GetAddress(), roleLabel(m.GetRole()),
			m.GetLeader(), m.GetVoter(), m.GetAppliedIndex(), m.GetLag(), m.GetError())
	}
	return tw.Flush()
}

// writeMembers shows a configuration after a change, which carries no
// per-member state.
func writeMembers(w io.Writer, members []*irxv1.ClusterMember) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tADDRESS\tLEADER\tVOTER")
	for _, m := range members {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%t\n", m.GetNodeId(), m.GetAddress(), m.GetLeader(), m.GetVoter())
	}
	return tw.Flush()
}
