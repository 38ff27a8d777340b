package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// importDryRun says what "incident import" would create from root and
// what the IODEF documents hold that would be lost, without a node: the
// documents are decoded here, as the team would decode them with the
// flags' defaults (the team's configured import defaults are not known
// here: an incident that needs one is shown as needing --tlp or
// --taxonomy).
func (c *cli) importDryRun(root string, opts iodef.Options) error {
	records, skipped, _, err := collectRecords(root, opts)
	if err != nil {
		return err
	}
	if skipped > 0 {
		fmt.Fprintf(c.stderr, "irxctl: skipped %d file(s) that are not .json, .jsonl, .ndjson, .yaml, .yml or .xml\n", skipped)
	}
	if len(records) == 0 {
		return fmt.Errorf("%s: no records to import", root)
	}
	creates, rejects := 0, 0
	reject := func(where string, err error) {
		rejects++
		msg, isIODEF := describeIODEFError(err)
		if !isIODEF {
			msg = err.Error()
		}
		fmt.Fprintf(c.stdout, "%s: not an incident: %s\n", where, msg)
	}
	create := func(where string, inc *irxv1.Incident, how string) {
		creates++
		fmt.Fprintf(c.stdout, "%s: would create: %s %s/%s%s\n", where, tlpLabel(inc.GetTlp()), inc.GetTaxonomy().GetClass(), inc.GetTaxonomy().GetType(), how)
	}
	for _, rec := range records {
		where := rec.label
		if where == "" {
			where = fmt.Sprintf("%s:%d", rec.file, rec.line)
		}
		switch {
		case rec.err != nil:
			reject(where, rec.err)
		case rec.document != nil:
			doc, how, err := dryDecode(rec, opts)
			if err != nil {
				reject(where, err)
				continue
			}
			for i, d := range doc.Incidents {
				label := fmt.Sprintf("%s:incident-%d", rec.file, d.Index)
				if d.Err != nil {
					reject(label, d.Err)
					continue
				}
				create(label, d.Incident, how[i])
			}
			if w := doc.Warning(); w != "" {
				fmt.Fprintln(c.stdout, w) // what the record has no field for, and what changes form
			}
		default:
			inc, err := unmarshalIncident(rec.data, rec.pos)
			if err == nil {
				record.ClearOutputOnly(inc)
				err = record.Validate(inc, "incident")
			}
			if err != nil {
				reject(where, err)
				continue
			}
			create(where, inc, "")
		}
	}
	fmt.Fprintf(c.stdout, "would create %d, rejected %d (dry run: nothing sent)\n", creates, rejects)
	if rejects > 0 {
		return exitError(1)
	}
	return nil
}

// dryDecode decodes an IODEF document of an import and says, per incident,
// which of the flags' defaults it would take.
func dryDecode(rec *importRecord, opts iodef.Options) (*iodef.Document, []string, error) {
	decode := func(o iodef.Options) (*iodef.Document, error) {
		f, err := os.Open(rec.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if rec.format == irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON {
			return iodef.DecodeJSON(f, rec.file, o)
		}
		return iodef.Decode(f, rec.file, o)
	}
	bare := opts
	bare.DefaultTLP, bare.DefaultTaxonomy = 0, nil
	doc, err := decode(bare)
	if err != nil {
		return nil, nil, err
	}
	how := make([]string, len(doc.Incidents))
	again := false
	for i, d := range doc.Incidents {
		var from []string
		if errors.Is(d.Err, iodef.ErrNoTLP) && opts.DefaultTLP != 0 {
			from = append(from, "TLP from --tlp")
		}
		if errors.Is(d.Err, iodef.ErrNoTaxonomy) && opts.DefaultTaxonomy != nil {
			from = append(from, "taxonomy from --taxonomy")
		}
		if len(from) > 0 {
			how[i] = " (" + strings.Join(from, ", ") + ")"
			again = true
		}
	}
	if again {
		if doc, err = decode(opts); err != nil {
			return nil, nil, err
		}
	}
	return doc, how, nil
}
