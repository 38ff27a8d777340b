package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// readIncidentFile reads one incident from a JSON or YAML file, or from
// stdin for "-". Field names are those of the proto (or their JSON
// camelCase forms) and enums take their full names, as protojson does.
func (c *cli) readIncidentFile(path string) (*irxv1.Incident, error) {
	data, name, err := c.readInput(path)
	if err != nil {
		return nil, err
	}
	if looksLikeXML(path, data) {
		return nil, fmt.Errorf("%s: IODEF XML is read by \"incident create\" and \"incident import\" only; here JSON or YAML", name)
	}
	return parseIncidentData(name, path, data)
}

// readInput reads path, or stdin for "-", and names it for messages. An
// .xml file is read no further than one byte past iodef.MaxDocumentBytes:
// enough for iodef.Decode to refuse it as too large, without reading a
// file of any size into memory first.
func (c *cli) readInput(path string) (data []byte, name string, err error) {
	name = path
	switch {
	case path == "-":
		name = "stdin"
		data, err = io.ReadAll(c.stdin)
	case strings.EqualFold(filepath.Ext(path), ".xml"):
		var f *os.File
		if f, err = os.Open(path); err == nil {
			data, err = io.ReadAll(io.LimitReader(f, iodef.MaxDocumentBytes+1))
			f.Close()
		}
	default:
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, name, err
	}
	// Editors on Windows like to start files with a byte-order mark, which
	// no parser here accepts.
	return bytes.TrimPrefix(data, []byte("\ufeff")), name, nil
}

// readOneDocument reads path (or stdin for "-") holding one JSON or YAML
// document, what names the document in messages ("team description"). It
// returns the document as JSON, the YAML positions for messages (nil for
// JSON), and the input's name.
func (c *cli) readOneDocument(path, what string) (data []byte, pos *yamlPositions, name string, err error) {
	data, name, err = c.readInput(path)
	if err != nil {
		return nil, nil, name, err
	}
	if isJSON(path, data) {
		return data, nil, name, nil
	}
	docs, err := yamlDocuments(data)
	if err != nil {
		return nil, nil, name, fmt.Errorf("%s: %w", name, err)
	}
	if len(docs) != 1 {
		return nil, nil, name, fmt.Errorf("%s: %d YAML documents; want one %s", name, len(docs), what)
	}
	return docs[0].json, docs[0].pos, name, nil
}

func parseIncidentData(name, path string, data []byte) (*irxv1.Incident, error) {
	var pos *yamlPositions
	if !isJSON(path, data) {
		docs, err := yamlDocuments(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		switch len(docs) {
		case 0:
			return nil, fmt.Errorf("%s: no incident in the file", name)
		case 1:
			data, pos = docs[0].json, docs[0].pos
		default:
			return nil, fmt.Errorf("%s: %d YAML documents; one incident per file here (irxctl incident import takes many)", name, len(docs))
		}
	}
	inc, err := unmarshalIncident(data, pos)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return inc, nil
}

// createInput is what "incident create" reads from its file: one incident
// from JSON or YAML, or every Incident of an IODEF document.
type createInput struct {
	name      string // the file as messages name it
	incidents []*irxv1.Incident
	iodef     bool
}

// readIncidentsToCreate reads the file of "incident create". An IODEF
// document is all or nothing: if any of its Incident elements cannot be
// mapped, every problem is reported and none is returned. What the
// mapping left out goes to stderr as one warning.
func (c *cli) readIncidentsToCreate(path string, opts iodef.Options) (*createInput, error) {
	data, name, err := c.readInput(path)
	if err != nil {
		return nil, err
	}
	if !looksLikeXML(path, data) {
		inc, err := parseIncidentData(name, path, data)
		if err != nil {
			return nil, err
		}
		return &createInput{name: name, incidents: []*irxv1.Incident{inc}}, nil
	}
	doc, err := iodef.Decode(bytes.NewReader(data), name, opts)
	if err != nil {
		return nil, err
	}
	in := &createInput{name: name, iodef: true}
	var errs []error
	for _, d := range doc.Incidents {
		if d.Err != nil {
			errs = append(errs, d.Err)
			continue
		}
		in.incidents = append(in.incidents, d.Incident)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if w := doc.Warning(); w != "" {
		fmt.Fprintf(c.stderr, "irxctl: warning: %s\n", w)
	}
	return in, nil
}

// iodefFlagOptions reads --tlp and --taxonomy, which supply what an IODEF
// document does not say; the messages that ask for them name the flags.
func iodefFlagOptions(tlp, taxonomy string) (iodef.Options, error) {
	o := iodef.Options{DefaultTLPName: "--tlp", DefaultTaxonomyName: "--taxonomy CLASS/TYPE"}
	if tlp != "" {
		v, err := parseEnum(irxv1.Tlp(0).Descriptor(), "TLP_", "tlp", tlp)
		if err != nil {
			return o, err
		}
		o.DefaultTLP = irxv1.Tlp(v)
	}
	if taxonomy != "" {
		class, typ, _ := strings.Cut(strings.TrimSpace(taxonomy), "/")
		if !record.ValidTaxonomy(class, typ) {
			return o, usageErrorf("--taxonomy %q: want CLASS/TYPE of the Reference Security Incident Taxonomy, e.g. malicious-code/c2-server; classes: %s",
				taxonomy, strings.Join(record.TaxonomyClasses(), ", "))
		}
		o.DefaultTaxonomy = &irxv1.Taxonomy{Class: class, Type: typ}
	}
	return o, nil
}

// unmarshalIncident reads an incident from protobuf JSON; pos, for JSON
// made from YAML, names the YAML's lines in errors.
func unmarshalIncident(data []byte, pos *yamlPositions) (*irxv1.Incident, error) {
	inc := &irxv1.Incident{}
	if err := unmarshalJSON(data, pos, inc); err != nil {
		return nil, err
	}
	return inc, nil
}

// protojsonPosition is where protojson says its error is, in the JSON.
var protojsonPosition = regexp.MustCompile(`\(line (\d+):(\d+)\): `)

// unmarshalJSON reads the protobuf JSON in data into m, with errors meant
// for people. When the JSON was made from YAML (pos is not nil) the error
// names the line and column of the YAML key or value it is about, as the
// errors of policy files do; the JSON's own position is a line nobody wrote.
func unmarshalJSON(data []byte, pos *yamlPositions, m proto.Message) error {
	err := protojson.Unmarshal(data, m)
	if err == nil {
		return nil
	}
	// protobuf-go randomly writes non-breaking spaces into its errors
	// to keep programs from matching them; people read these, and
	// scripts grep them.
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	if pos == nil {
		return errors.New(msg)
	}
	msg = strings.TrimPrefix(msg, "proto: ")
	where := ""
	if m := protojsonPosition.FindStringSubmatch(msg); m != nil {
		jsonLine, _ := strconv.Atoi(m[1])
		jsonColumn, _ := strconv.Atoi(m[2])
		// yamlToJSON writes one line: the column counts runes from its
		// start.
		if offset, ok := runeOffset(data, jsonColumn-1); ok && jsonLine == 1 {
			if line, column, ok := pos.at(offset); ok {
				where = fmt.Sprintf("line %d, column %d: ", line, column)
			}
		}
		msg = strings.Replace(msg, m[0], "", 1)
	}
	return errors.New(where + msg)
}

// runeOffset is the byte offset of the n-th rune of data.
func runeOffset(data []byte, n int) (int, bool) {
	for offset := range string(data) {
		if n == 0 {
			return offset, true
		}
		n--
	}
	return 0, false
}

// looksLikeXML decides by extension, and by content when there is none
// that says otherwise (stdin).
func looksLikeXML(path string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".xml":
		return true
	case ".json", ".jsonl", ".ndjson", ".yaml", ".yml":
		return false
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '<'
}

// isJSON decides by extension, and by content when there is none (stdin).
func isJSON(path string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json", ".jsonl", ".ndjson":
		return true
	case ".yaml", ".yml":
		return false
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// yamlDoc is one YAML document converted to JSON, with the line it starts
// on and where in the YAML each part of the JSON came from.
type yamlDoc struct {
	line int
	json []byte
	pos  *yamlPositions
}

// yamlPositions maps offsets of the JSON made from a YAML document back to
// the YAML: each key and value starts at a recorded offset, in increasing
// order.
type yamlPositions struct {
	offsets       []int
	lines, column []int
}

func (p *yamlPositions) add(offset int, n *yaml.Node) {
	p.offsets = append(p.offsets, offset)
	p.lines = append(p.lines, n.Line)
	p.column = append(p.column, n.Column)
}

// at is the YAML line and column of the key or value that holds offset.
func (p *yamlPositions) at(offset int) (line, column int, ok bool) {
	i := sort.SearchInts(p.offsets, offset+1) - 1
	if i < 0 {
		return 0, 0, false
	}
	return p.lines[i], p.column[i], true
}

// yamlDocuments splits a YAML stream into its documents and converts each
// to JSON for protojson, which is the one parser that knows the proto's
// field names, enums, timestamps and int64 forms.
func yamlDocuments(data []byte) ([]yamlDoc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []yamlDoc
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			// "yaml: line 2: ...": the line is the message.
			return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 0 {
			continue
		}
		root := &n
		if n.Kind == yaml.DocumentNode {
			root = n.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // an empty document, e.g. after a trailing "---"
		}
		var buf bytes.Buffer
		pos := &yamlPositions{}
		if err := yamlToJSON(&buf, root, pos); err != nil {
			return nil, fmt.Errorf("line %d: %w", root.Line, err)
		}
		docs = append(docs, yamlDoc{line: root.Line, json: buf.Bytes(), pos: pos})
	}
}

// yamlToJSON writes n as JSON in document order, mapping YAML's scalar
// types to what protojson reads (timestamps stay strings; infinities and
// NaN become protojson's string forms).
func yamlToJSON(w *bytes.Buffer, n *yaml.Node, pos *yamlPositions) error {
	if n.Kind != yaml.AliasNode {
		pos.add(w.Len(), n)
	}
	switch n.Kind {
	case yaml.AliasNode:
		// A value written elsewhere and used here: its errors are named
		// where it is used.
		pos.add(w.Len(), n)
		return yamlToJSON(w, n.Alias, &yamlPositions{})
	case yaml.MappingNode:
		w.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				w.WriteByte(',')
			}
			pos.add(w.Len(), n.Content[i])
			key, _ := json.Marshal(n.Content[i].Value)
			w.Write(key)
			w.WriteByte(':')
			if err := yamlToJSON(w, n.Content[i+1], pos); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	case yaml.SequenceNode:
		w.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := yamlToJSON(w, item, pos); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			w.WriteString("null")
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return err
			}
			w.WriteString(strconv.FormatBool(b))
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				w.WriteString(strconv.FormatInt(i, 10))
				break
			}
			var u uint64
			if err := n.Decode(&u); err != nil {
				return err
			}
			w.WriteString(strconv.FormatUint(u, 10))
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return err
			}
			switch {
			case math.IsNaN(f):
				w.WriteString(`"NaN"`)
			case math.IsInf(f, 1):
				w.WriteString(`"Infinity"`)
			case math.IsInf(f, -1):
				w.WriteString(`"-Infinity"`)
			default:
				w.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
			}
		default: // !!str, !!timestamp, !!binary (base64, as protojson wants bytes)
			s, _ := json.Marshal(n.Value)
			w.Write(s)
		}
	default:
		return fmt.Errorf("unsupported YAML node at line %d", n.Line)
	}
	return nil
}
