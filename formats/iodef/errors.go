package iodef

import (
	"errors"
	"fmt"
	"strings"
)

// The causes an Error may wrap, for callers that act on them (errors.Is):
// each is fixed by an Options default rather than by the document.
var (
	// ErrNoTLP: no TLP can be given to the incident. Decode derives one
	// from every restriction IODEF defines (docs/iodef.md) and no longer
	// returns it; it stays so that callers' errors.Is checks compile.
	ErrNoTLP = errors.New("IODEF has no TLP")
	// ErrNoTaxonomy: no taxonomy entry can be derived from the incident
	// and Options.DefaultTaxonomy is not set.
	ErrNoTaxonomy = errors.New("no taxonomy entry can be derived")
)

// An Error is a problem with a document, or with one of its Incident
// elements, at a place in the document.
type Error struct {
	// Name is the document's name, as Decode was given it.
	Name         string
	Line, Column int
	// Path names the element from its Incident (or IODEF-Document) down,
	// as "Incident[2]/EventData/Flow/System", and after "@" the attribute
	// the problem is with, if any.
	Path string
	// Msg says what is wrong, for people.
	Msg string
	// Err is ErrNoTLP or ErrNoTaxonomy when the problem is one of them;
	// else nil.
	Err error
}

// Error is "NAME:LINE:COLUMN: PATH: MSG", the form editors and compilers
// use, or "line LINE:COLUMN: PATH: MSG" when the document has no name.
func (e *Error) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("line %d:%d: %s: %s", e.Line, e.Column, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.Name, e.Line, e.Column, e.Path, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem of one Incident element, in the order they
// were found.
type ErrorList []*Error

// Error is one problem per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}
