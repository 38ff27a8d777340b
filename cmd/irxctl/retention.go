package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func retentionCommand() *command {
	return &command{
		name:  "retention",
		usage: "retention COMMAND",
		short: "Set how long the team keeps what (per information class and TLP), and see what goes when",
		subs:  []*command{retentionSetCommand(), retentionGetCommand(), retentionPreviewCommand(), retentionDecisionsCommand()},
	}
}

func withRetention(ctx context.Context, c *cli, f func(context.Context, irxv1.RetentionServiceClient) error) error {
	return withClient(ctx, c, irxv1.NewRetentionServiceClient, f)
}

func retentionSetCommand() *command {
	return &command{
		name:  "set",
		usage: "retention set -f FILE [--expected-version N]",
		short: "Replace the team's retention policy with the one in FILE",
		long: `FILE holds one irx.v1.RetentionPolicy as JSON or YAML ("-" reads stdin):
  rules:
  - {name: private-user-90d, info_class: INFO_CLASS_PRIVATE_USER, keep: 90d}
  - {name: red-1y, tlp: TLP_RED, keep: 365d}
  - {name: records-5y, keep: 1825d}
A rule with info_class purges that class from every version older than keep;
one without removes a record whose latest version is older than keep, unless
the incident is still open. keep takes s, m, h, d (days) and y (365 days),
or a Go duration. A keep under the node's retention.min_keep, or a rule on
INFO_CLASS_HANDLING or INFO_CLASS_CONTACT, is refused and nothing changes.
Every rule starts over from the oldest version.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			file := fs.String("f", "", "policy `FILE`, JSON or YAML; - for stdin")
			expected := fs.Int64("expected-version", 0, "fail unless the current version is `N` (0: any)")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *file == "" {
					return usageErrorf("-f FILE is required")
				}
				p, err := c.readRetentionFile(*file)
				if err != nil {
					return err
				}
				return withRetention(ctx, c, func(ctx context.Context, rc irxv1.RetentionServiceClient) error {
					resp, err := rc.SetRetentionPolicy(ctx, &irxv1.SetRetentionPolicyRequest{Policy: p, ExpectedVersion: *expected})
					if err != nil {
						return err
					}
					return c.printRetentionPolicy(resp.GetPolicy())
				})
			}
		},
	}
}

func retentionGetCommand() *command {
	return &command{
		name:     "get",
		usage:    "retention get [--team TEAM]",
		short:    "Show the team's retention policy, or the terms another origin's records came with",
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			team := fs.String("team", "", "the origin `TEAM` whose terms to show (default: this team)")
			return func(ctx context.Context, c *cli, _ []string) error {
				return withRetention(ctx, c, func(ctx context.Context, rc irxv1.RetentionServiceClient) error {
					resp, err := rc.GetRetentionPolicy(ctx, &irxv1.GetRetentionPolicyRequest{TeamId: *team})
					if err != nil {
						return err
					}
					return c.printRetentionPolicy(resp.GetPolicy())
				})
			}
		},
	}
}

func retentionPreviewCommand() *command {
	return &command{
		name:  "preview",
		usage: "retention preview [--team TEAM] [--max N]",
		short: "Show what each rule will purge and when: counts, and the next versions or records",
		long: `DUE counts what is already past its term at the team's retention clock (it
goes at the next ticks), LATER what goes afterwards; then, per rule, the next
versions (class rules) or records (whole-record rules) with their purge time.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			team := fs.String("team", "", "the origin `TEAM` whose terms to preview (default: this team)")
			max := fs.Int("max", 10, "list at most `N` per rule (at most 100)")
			return func(ctx context.Context, c *cli, _ []string) error {
				return withRetention(ctx, c, func(ctx context.Context, rc irxv1.RetentionServiceClient) error {
					resp, err := rc.PreviewRetention(ctx, &irxv1.PreviewRetentionRequest{TeamId: *team, MaxItems: int32(*max)})
					if err != nil {
						return err
					}
					return c.printProto(resp, func(w io.Writer) error {
						fmt.Fprintf(w, "retention clock: %s\n\n", timeLabel(resp.GetClock()))
						tw := newTable(w)
						fmt.Fprintln(tw, "RULE\tCLASS\tTLP\tKEEP\tDUE\tLATER")
						for _, r := range resp.GetRules() {
							more := ""
							if r.GetTruncated() {
								more = "+"
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d%s\t%d%s\n", r.GetRule().GetName(), ruleClassLabel(r.GetRule()), tlpLabel(r.GetRule().GetTlp()),
								r.GetRule().GetKeep().AsDuration(), r.GetDue(), more, r.GetLater(), more)
						}
						if err := tw.Flush(); err != nil {
							return err
						}
						for _, r := range resp.GetRules() {
							if len(r.GetNext()) == 0 {
								continue
							}
							fmt.Fprintf(w, "\n%s:\n", r.GetRule().GetName())
							tw := newTable(w)
							fmt.Fprintln(tw, "PURGE AT\tINCIDENT\tVERSION")
							for _, it := range r.GetNext() {
								fmt.Fprintf(tw, "%s\t%s\t%d\n", timeLabel(it.GetPurgeTime()), it.GetIncidentId(), it.GetVersion())
							}
							if err := tw.Flush(); err != nil {
								return err
							}
						}
						return nil
					})
				})
			}
		},
	}
}

func retentionDecisionsCommand() *command {
	return &command{
		name:     "decisions",
		usage:    "retention decisions [--incident ID] [--limit N]",
		short:    "List what retention purged, by which rule, with the digests before and after (never the values)",
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			incident := fs.String("incident", "", "only decisions about incident `ID`")
			limit := fs.Int("limit", 50, "at most `N` decisions (at most 1000)")
			return func(ctx context.Context, c *cli, _ []string) error {
				return withRetention(ctx, c, func(ctx context.Context, rc irxv1.RetentionServiceClient) error {
					resp, err := rc.ListRetentionDecisions(ctx, &irxv1.ListRetentionDecisionsRequest{IncidentId: *incident, PageSize: int32(*limit)})
					if err != nil {
						return err
					}
					return c.printList(resp, "decisions", len(resp.GetDecisions()), func(w io.Writer) error {
						tw := newTable(w)
						fmt.Fprintln(tw, "TIME\tORIGIN\tRULE\tINCIDENT\tVERSION\tPURGED\tDIGEST BEFORE")
						for _, d := range resp.GetDecisions() {
							what := "record"
							if !d.GetRemoved() {
								what = enumLabel(d.GetInfoClass(), "INFO_CLASS_")
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", timeLabel(d.GetTime()), d.GetOriginTeam(), d.GetRule(), d.GetIncidentId(), d.GetVersion(), what, d.GetDigestBefore())
						}
						return tw.Flush()
					})
				})
			}
		},
	}
}

func ruleClassLabel(r *irxv1.RetentionRule) string {
	if r.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
		return "(record)"
	}
	return enumLabel(r.GetInfoClass(), "INFO_CLASS_")
}

func (c *cli) printRetentionPolicy(p *irxv1.RetentionPolicy) error {
	return c.printProto(p, func(w io.Writer) error {
		fmt.Fprintf(w, "team %s, version %d, updated %s\n\n", p.GetTeamId(), p.GetVersion(), timeLabel(p.GetUpdateTime()))
		tw := newTable(w)
		fmt.Fprintln(tw, "RULE\tCLASS\tTLP\tKEEP")
		for _, r := range p.GetRules() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.GetName(), ruleClassLabel(r), tlpLabel(r.GetTlp()), r.GetKeep().AsDuration())
		}
		return tw.Flush()
	})
}

func (c *cli) readRetentionFile(path string) (*irxv1.RetentionPolicy, error) {
	data, pos, name, err := c.readOneDocument(path, "retention policy")
	if err != nil {
		return nil, err
	}
	if data, err = normaliseKeeps(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &irxv1.RetentionPolicy{}
	if err := unmarshalJSON(data, pos, p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

var (
	keepPattern    = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([dy])$`)
	secondsPattern = regexp.MustCompile(`^[0-9]+(?:\.[0-9]+)?s$`)
)

// normaliseKeeps rewrites each rule's keep written as days or years
// ("90d", "5y") or a Go duration ("36h") as the seconds protojson reads.
func normaliseKeeps(data []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return data, nil // protojson says what is wrong
	}
	rules, _ := doc["rules"].([]any)
	for i, r := range rules {
		rule, _ := r.(map[string]any)
		s, ok := rule["keep"].(string)
		if !ok || secondsPattern.MatchString(s) {
			continue
		}
		var d time.Duration
		if m := keepPattern.FindStringSubmatch(s); m != nil {
			n, _ := strconv.ParseFloat(m[1], 64)
			day := 24 * time.Hour
			if m[2] == "y" {
				day *= 365
			}
			d = time.Duration(n * float64(day))
		} else {
			var err error
			if d, err = time.ParseDuration(s); err != nil {
				return nil, fmt.Errorf("rules[%d].keep: %q is not a duration (e.g. 90d, 5y, 36h, 3600s)", i, s)
			}
		}
		rule["keep"] = strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
	}
	return json.Marshal(doc)
}
