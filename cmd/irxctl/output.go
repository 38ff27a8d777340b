package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func (c *cli) registerOutputFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.output, "o", c.output, "output `FORMAT`: table, json or yaml (also --output; default table)")
	fs.StringVar(&c.output, "output", c.output, "")
}

func checkOutputFormat(f string) error {
	switch f {
	case "", "table", "json", "yaml":
		return nil
	}
	return fmt.Errorf("-o %q: want table, json or yaml", f)
}

// printProto prints m as JSON or YAML, or calls table for the table form.
func (c *cli) printProto(m proto.Message, table func(w io.Writer) error) error {
	switch c.output {
	case "json", "yaml":
		// protojson's own whitespace is deliberately unstable; reindent so
		// the output diffs cleanly between runs.
		raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		return c.printJSON(raw)
	}
	return table(c.stdout)
}

// printIncidentList prints a list response; an empty list is written as
// {"incidents": []} rather than protojson's {}, so that scripts can iterate
// over .incidents either way.
func (c *cli) printIncidentList(m proto.Message, incidents []*irxv1.Incident, table func(io.Writer, []*irxv1.Incident) error) error {
	return c.printList(m, "incidents", len(incidents), func(w io.Writer) error { return table(w, incidents) })
}

// printList prints a response holding a list under key, with n entries; an
// empty list is written as {"<key>": []}, as printIncidentList does.
func (c *cli) printList(m proto.Message, key string, n int, table func(io.Writer) error) error {
	if n == 0 && (c.output == "json" || c.output == "yaml") {
		return c.printJSON([]byte(`{"` + key + `":[]}`))
	}
	return c.printProto(m, table)
}

// printPlain prints a Go value (not a protobuf message) as JSON or YAML.
func (c *cli) printPlain(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.printJSON(raw)
}

func (c *cli) printJSON(raw []byte) error {
	if c.output == "yaml" {
		out, err := jsonToYAML(raw)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(out)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(c.stdout)
	return err
}

// jsonToYAML re-encodes JSON as block-style YAML, keeping the key order of
// the JSON (which a round trip through map[string]any would lose).
func jsonToYAML(raw []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	var blockStyle func(n *yaml.Node)
	blockStyle = func(n *yaml.Node) {
		// Without the flow and quoting styles of the JSON source the
		// encoder writes block YAML and quotes only strings that need it.
		n.Style = 0
		for _, child := range n.Content {
			blockStyle(child)
		}
	}
	blockStyle(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

func writeIncidentTable(w io.Writer, incidents []*irxv1.Incident) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tVERSION\tSTATUS\tTLP\tTAXONOMY\tREPORTED\tDESCRIPTION")
	for _, inc := range incidents {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", inc.GetId(), inc.GetVersion(),
			statusLabel(inc.GetStatus()), tlpLabel(inc.GetTlp()), taxonomyLabel(inc.GetTaxonomy()),
			timeLabel(inc.GetReportTime()), firstDescription(inc))
	}
	return tw.Flush()
}

// writeVersionTable shows what changes between versions: when each was made
// and the fields operators update most.
func writeVersionTable(w io.Writer, versions []*irxv1.Incident, actions []*irxv1.OperatorAction) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tVERSION\tGENERATED\tBY\tSTATUS\tTLP\tTAXONOMY\tDESCRIPTION")
	for i, inc := range versions {
		by := "-" // a peer's copy, or a version from before operator actions were recorded
		if i < len(actions) && actions[i].GetIdentity() != "" {
			by = actions[i].GetIdentity()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", inc.GetId(), inc.GetVersion(),
			timeLabel(inc.GetGenerationTime()), by, statusLabel(inc.GetStatus()), tlpLabel(inc.GetTlp()),
			taxonomyLabel(inc.GetTaxonomy()), firstDescription(inc))
	}
	return tw.Flush()
}

const descriptionWidth = 50

func firstDescription(inc *irxv1.Incident) string {
	ds := inc.GetDescriptions()
	if len(ds) == 0 {
		return ""
	}
	// Tabs and newlines would break the table's columns.
	return oneLineText(ds[0].GetText(), descriptionWidth)
}

// truncate cuts s to at most n runes, ending in "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeLabel(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func taxonomyLabel(t *irxv1.Taxonomy) string {
	switch {
	case t.GetClass() == "":
		return "-"
	case t.GetType() == "":
		return t.GetClass()
	}
	return t.GetClass() + "/" + t.GetType()
}

// Enum values are shown the way the flags take them: "in-progress" for
// STATUS_IN_PROGRESS, and FIRST's own notation for TLP ("TLP:AMBER+STRICT").
func statusLabel(s irxv1.Status) string { return enumLabel(s, "STATUS_") }
func roleLabel(r irxv1.NodeRole) string { return enumLabel(r, "NODE_ROLE_") }

func tlpLabel(t irxv1.Tlp) string {
	if t == irxv1.Tlp_TLP_UNSPECIFIED {
		return "-"
	}
	name := strings.TrimPrefix(t.String(), "TLP_")
	return "TLP:" + strings.ReplaceAll(name, "_", "+")
}

func enumLabel(e protoreflect.Enum, prefix string) string {
	if e.Number() == 0 {
		return "-"
	}
	name := strings.TrimPrefix(string(e.Descriptor().Values().ByNumber(e.Number()).Name()), prefix)
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// parseEnum accepts a value as the tables show it ("in-progress",
// "TLP:AMBER+STRICT"), its short name in any case ("amber_strict") or the
// full enum name ("STATUS_IN_PROGRESS").
func parseEnum(ed protoreflect.EnumDescriptor, prefix, flagName, s string) (protoreflect.EnumNumber, error) {
	norm := strings.ToUpper(strings.NewReplacer("-", "_", ":", "_", "+", "_", " ", "_").Replace(strings.TrimSpace(s)))
	if !strings.HasPrefix(norm, prefix) {
		norm = prefix + norm
	}
	if v := ed.Values().ByName(protoreflect.Name(norm)); v != nil && v.Number() != 0 {
		return v.Number(), nil
	}
	var allowed []string
	for i := 1; i < ed.Values().Len(); i++ {
		allowed = append(allowed, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(string(ed.Values().Get(i).Name()), prefix), "_", "-")))
	}
	return 0, usageErrorf("--%s %q: one of %s", flagName, s, strings.Join(allowed, ", "))
}

// printError writes a gRPC error as "irxctl: <code>: <message>" and each
// field violation of a google.rpc.BadRequest on its own line, saying each
// thing once: a message that only restates the code ("not found: ...") or
// lists the field violations shown below it is shortened.
func printError(w io.Writer, err error) {
	st, ok := statusOf(err)
	if !ok {
		fmt.Fprintf(w, "irxctl: %v\n", err)
		return
	}
	msg := withoutCodeWords(st.Code(), st.Message())
	vs := fieldViolations(st)
	if head, ok := summaryOf(msg, vs); ok {
		msg = head
	}
	if msg == "" {
		fmt.Fprintf(w, "irxctl: %s\n", st.Code())
	} else {
		fmt.Fprintf(w, "irxctl: %s: %s\n", st.Code(), msg)
	}
	for _, v := range vs {
		fmt.Fprintf(w, "  %s: %s\n", v.GetField(), v.GetDescription())
	}
}

// withoutCodeWords drops a message's opening words when they are its code's
// ("NotFound" and "not found: incident dev:9").
func withoutCodeWords(code codes.Code, msg string) string {
	var words []string
	start := 0
	name := code.String()
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) {
			words = append(words, name[start:i])
			start = i
		}
	}
	words = append(words, name[start:])
	prefix := strings.ToLower(strings.Join(words, " ")) + ": "
	if len(msg) > len(prefix) && strings.EqualFold(msg[:len(prefix)], prefix) {
		return msg[len(prefix):]
	}
	return msg
}

// summaryOf returns what a message says besides its field violations, when
// it names every one of them ("invalid request: id invalid id ...": the
// violation lines say the rest).
func summaryOf(msg string, vs []*errdetails.BadRequest_FieldViolation) (string, bool) {
	if len(vs) == 0 {
		return "", false
	}
	first := len(msg)
	for _, v := range vs {
		i := strings.Index(msg, v.GetDescription())
		if v.GetDescription() == "" || i < 0 {
			return "", false
		}
		// The field's name may come just before its description.
		before := strings.TrimRight(msg[:i], " :")
		if f := v.GetField(); f != "" && strings.HasSuffix(before, f) {
			i = len(before) - len(f)
		}
		first = min(first, i)
	}
	return strings.TrimRight(msg[:first], " :;,"), true
}

func fieldViolations(st *status.Status) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

// statusOf finds the gRPC status in err. Unlike status.FromError it keeps
// the server's message as it is.
func statusOf(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil, false
	}
	return se.GRPCStatus(), true
}
