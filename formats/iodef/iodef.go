// Package iodef reads IODEF documents, the Incident Object Description
// Exchange Format of RFC 7970 (v2) and RFC 5070 (v1), into irx.v1.Incident
// records, which map class for class to the IODEF v2 Incident, and writes
// records as IODEF v2 (Encode).
//
// Decode makes one record of every Incident element. Nothing is dropped
// silently: what the record has no field for is kept verbatim in it
// (irx.v1.IodefExtra, under an information class decided per element),
// and the document's Warning lists that and every value mapped with a
// loss, each with its line. The TLP and the taxonomy are derived from the
// document where it says them (derivation.go; docs/iodef.md has the
// tables), the Options supplying only what it does not.
//
// The record's rules are checked as the team would check them, so every
// record Decode returns passes record.Validate; a problem names the element
// (and attribute) it is about, with its line and column.
package iodef

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// The limits on a document. They keep a hostile or broken document from
// taking the reader's memory; real reports stay far below them.
const (
	// MaxDocumentBytes bounds a document. One record is at most
	// record.MaxIncidentBytes (256 KiB); a document may hold several.
	MaxDocumentBytes = 4 << 20
	// MaxDepth bounds the nesting of elements. The deepest IODEF paths
	// (EventData within EventData, Contact within Contact) stay well below
	// it.
	MaxDepth = 48
	// MaxElements bounds the element tree kept in memory.
	MaxElements = 200_000
)

// Options supply what an IODEF document may not say.
type Options struct {
	// DefaultTLP is the TLP of an incident whose document says nothing of
	// it (no restriction, or "default"). Zero: RFC 7970's default
	// restriction, private, gives TLP:RED.
	DefaultTLP irxv1.Tlp
	// DefaultTaxonomy is the taxonomy of an incident from which no
	// Reference Security Incident Taxonomy entry can be derived. Nil: such
	// an incident is refused (ErrNoTaxonomy).
	DefaultTaxonomy *irxv1.Taxonomy

	// DefaultTLPName and DefaultTaxonomyName are how the messages that ask
	// for a default name it, so they tell the user what to do: a command
	// passes its flags ("--tlp", "--taxonomy CLASS/TYPE"), a service its
	// request fields. Empty: "a default TLP", "a default taxonomy
	// CLASS/TYPE".
	DefaultTLPName, DefaultTaxonomyName string
}

func (o Options) tlpName() string {
	if o.DefaultTLPName == "" {
		return "a default TLP"
	}
	return o.DefaultTLPName
}

func (o Options) taxonomyName() string {
	if o.DefaultTaxonomyName == "" {
		return "a default taxonomy CLASS/TYPE"
	}
	return o.DefaultTaxonomyName
}

// A Document is what Decode made of an IODEF document.
type Document struct {
	// Name is the document's name, as Decode was given it.
	Name string
	// Incidents holds one entry per Incident element, in document order.
	Incidents []Decoded
	// Ignored lists, in document order, the paths of the elements and
	// attributes the mapping did not use (an element once, not its
	// descendants), with the reason where it is not obvious. Lossy lists
	// the values mapped with a loss, each with what was lost. The
	// incidents that could not be mapped contribute to neither.
	Ignored, Lossy []string
	// Kept lists, in document order, the paths of the elements and
	// attributes irx has no field for and keeps verbatim in the record
	// (irx.v1.IodefExtra), which an export writes back.
	Kept []string
}

// Decoded is one Incident element of a document: its record, or why there
// is none.
type Decoded struct {
	// Index is the element's place among the document's Incident elements,
	// from 1: what "FILE:incident-N" names.
	Index int
	// Line is where the element starts.
	Line int
	// Incident is the record made from the element; nil when Err is set.
	Incident *irxv1.Incident
	// Err is an ErrorList: every problem (up to 20) that kept the element
	// from being mapped.
	Err error
	// Derived names the values ("tlp", "taxonomy") derived from the
	// document (docs/iodef.md has the tables); Defaulted those taken from
	// Options because the document says nothing of them.
	Derived, Defaulted []string
}

// Decode reads one IODEF document from r and maps every Incident element;
// name names the document in errors and in the warning (a file name,
// "stdin"; it may be empty). It reads at most one byte past
// MaxDocumentBytes: a longer document is refused, not read to its end.
//
// A problem with the document as a whole (not XML, not IODEF, too large,
// too deep) is the *Error returned; an error of another type comes from r.
// A problem with one Incident element is that element's Decoded.Err, so
// the others can still be used.
func Decode(r io.Reader, name string, opts Options) (*Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentBytes {
		return nil, &Error{Name: name, Line: 1, Column: 1, Path: "IODEF-Document",
			Msg: fmt.Sprintf("the document is more than 4 MiB; the limit is %d bytes (4 MiB): split it into several files", MaxDocumentBytes)}
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte-order mark, as editors on Windows write
	root, err := readTree(name, data)
	if err != nil {
		return nil, err
	}
	return mapDocument(name, root, opts)
}

// Warning is the one line that says what the mapping did not use and what
// it mapped with a loss, or "" when there is neither.
func (d *Document) Warning() string {
	var parts []string
	if len(d.Ignored) > 0 {
		parts = append(parts, "not mapped to irx.v1.Incident, ignored: "+countedList(d.Ignored))
	}
	if len(d.Kept) > 0 {
		parts = append(parts, "kept verbatim (no irx field): "+countedList(d.Kept))
	}
	if len(d.Lossy) > 0 {
		parts = append(parts, "mapped with a loss: "+countedList(d.Lossy))
	}
	if len(parts) == 0 {
		return ""
	}
	w := "IODEF " + strings.Join(parts, "; ")
	if d.Name != "" {
		w = d.Name + ": " + w
	}
	return w
}

// atLine is an item of a warning list: what, and the line it is at.
func atLine(s string, line int) string { return s + "\x00" + strconv.Itoa(line) }

// countedList joins items in order of first appearance, each once, with
// the line of its first appearance and its count when it recurs: a
// document of a thousand indicators makes one readable line.
func countedList(items []string) string {
	count := map[string]int{}
	first := map[string]string{}
	var order []string
	for _, item := range items {
		s, line, _ := strings.Cut(item, "\x00")
		if count[s] == 0 {
			order = append(order, s)
			first[s] = line
		}
		count[s]++
	}
	for i, s := range order {
		where := ""
		if first[s] != "" {
			where = "line " + first[s]
		}
		switch n := count[s]; {
		case n > 1 && where != "":
			order[i] = fmt.Sprintf("%s (%d, first at %s)", s, n, where)
		case n > 1:
			order[i] = fmt.Sprintf("%s (%d)", s, n)
		case where != "":
			order[i] = fmt.Sprintf("%s (%s)", s, where)
		}
	}
	return strings.Join(order, ", ")
}
