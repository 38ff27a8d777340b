package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func parseAlertState(s string) (irxv1.AlertState, error) {
	switch strings.ToLower(s) {
	case "", "all":
		return irxv1.AlertState_ALERT_STATE_UNSPECIFIED, nil
	case "open":
		return irxv1.AlertState_ALERT_STATE_OPEN, nil
	case "closed":
		return irxv1.AlertState_ALERT_STATE_CLOSED, nil
	}
	return 0, fmt.Errorf("--state %q: want open, closed or all", s)
}

func alertCommand() *command {
	return &command{
		name:  "alert",
		usage: "alert COMMAND",
		short: "See when records the team holds share an indicator or attacking host, and acknowledge it",
		subs: []*command{
			{
				name:  "list",
				usage: "alert list [--state open|closed|all]",
				short: "List the alerts, the most recently changed first",
				long: `An alert says that one value (an address, or a prefix containing it; a name, or
a name above it; a URL, a digest, an e-mail address) is in two or more
records the team holds whose report times lie within the window of each
other: its own records or views peers sent.`,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					state := fs.String("state", "all", "only alerts in `STATE`: open, closed or all")
					return func(ctx context.Context, c *cli, _ []string) error {
						st, err := parseAlertState(*state)
						if err != nil {
							return usageErrorf("%v", err)
						}
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							as, err := collectPages(0, func(token string, _ int) ([]*irxv1.Alert, string, error) {
								resp, err := cl.ListAlerts(ctx, &irxv1.ListAlertsRequest{State: st, PageSize: 1000, PageToken: token})
								return resp.GetAlerts(), resp.GetNextPageToken(), err
							})
							if err != nil {
								return err
							}
							resp := &irxv1.ListAlertsResponse{Alerts: as}
							return c.printList(resp, "alerts", len(as), func(w io.Writer) error { return writeAlerts(w, as, true) })
						})
					}
				},
			},
			{
				name:    "ack",
				usage:   "alert ack ALERT_ID",
				short:   "Acknowledge an alert as it stands (it is unacknowledged again when it gains a record)",
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, args []string) error {
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							resp, err := cl.AcknowledgeAlert(ctx, &irxv1.AcknowledgeAlertRequest{AlertId: args[0]})
							if err != nil {
								return err
							}
							return c.printProto(resp.GetAlert(), func(w io.Writer) error {
								return writeAlerts(w, []*irxv1.Alert{resp.GetAlert()}, true)
							})
						})
					}
				},
			},
			{
				name:  "watch",
				usage: "alert watch [--for DURATION] [--state open|closed|all]",
				short: "Print the open alerts, then every alert as it changes",
				long: `Follows the node's WatchAlerts stream until interrupted or, with --for, for
that long. With -o json every alert is one line of JSON.`,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					forD := fs.Duration("for", 0, "stop after `DURATION` (0: until interrupted)")
					state := fs.String("state", "all", "only changes to alerts in `STATE`: open, closed or all")
					return func(ctx context.Context, c *cli, _ []string) error {
						st, err := parseAlertState(*state)
						if err != nil {
							return usageErrorf("%v", err)
						}
						return c.watchAlerts(ctx, st, *forD)
					}
				},
			},
		},
	}
}

func (c *cli) watchAlerts(ctx context.Context, st irxv1.AlertState, forD time.Duration) error {
	s, err := c.connect()
	if err != nil {
		return err
	}
	defer s.Close()
	if forD > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, forD)
		defer cancel()
	}
	stream, err := irxv1.NewAlertServiceClient(s.conn).WatchAlerts(ctx, &irxv1.WatchAlertsRequest{State: st})
	if err != nil {
		return err
	}
	header := true
	for {
		resp, err := stream.Recv()
		if err != nil {
			if forD > 0 && (errors.Is(ctx.Err(), context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) {
				return nil
			}
			return err
		}
		for _, al := range resp.GetAlerts() {
			if c.output == "json" || c.output == "yaml" {
				raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(al)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.stdout, string(raw))
				continue
			}
			if err := writeAlerts(c.stdout, []*irxv1.Alert{al}, header); err != nil {
				return err
			}
			header = false
		}
	}
}

func alertStateLabel(s irxv1.AlertState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "ALERT_STATE_"))
}

func writeAlerts(w io.Writer, as []*irxv1.Alert, header bool) error {
	tw := newTable(w)
	if header {
		fmt.Fprintln(tw, "ALERT\tSTATE\tVALUE\tCOUNT\tTEAMS\tLAST SEEN\tACKNOWLEDGED BY")
	}
	for _, a := range as {
		ack := a.GetAcknowledgedBy()
		if ack == "" {
			ack = "-"
		}
		teams := strings.Join(append(append([]string{}, a.GetTeams()...), a.GetSightingTeams()...), ",")
		if teams == "" {
			teams = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.GetAlertId(), alertStateLabel(a.GetState()), a.GetValue(), a.GetCount(),
			teams, timeLabel(a.GetLastSeenTime()), ack)
	}
	return tw.Flush()
}
