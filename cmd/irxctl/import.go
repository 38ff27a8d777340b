package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

func incidentImportCommand() *command {
	return &command{
		name:  "import",
		usage: "incident import DIR|FILE [--concurrency N] [--on-change update|conflict] [--tlp TLP] [--taxonomy CLASS/TYPE] [--dry-run]",
		short: "Create many incidents from files; safe to re-run",
		long: `Reads DIR recursively (skipping dot-files) or one FILE: every .json file is
one incident, every .yaml/.yml file one incident per YAML document, every
line of a .jsonl/.ndjson file one incident, and every Incident element of an
IODEF document one incident: an .xml file (IODEF v2 or v1), or a .json file
in the JSON binding of RFC 8727 (an object with an "Incident" member). The
team decodes IODEF documents (IncidentService/ImportIncidents), with the
team's import defaults, or --tlp and --taxonomy, for what a document does
not say. Each record is sent with a request id derived from its file's
absolute path and its line (or Incident number), so running the same import
again creates nothing twice. --dry-run reads and decodes everything here,
without a node, and says what would be created and what the IODEF
documents hold that would be lost.
The team keeps a digest of each record's content with its request id, so a
record that changed since it was imported is not taken for the same one:
with --on-change update (the default) the incident that line created gets
a new version with the record's content; with --on-change conflict it is
left as it is and the line is reported as a conflict. A record whose
content is what the incident holds already is unchanged. (Editing a file so
that records move to other lines, or moving the files, defeats this.)

Progress goes to stderr: a bar on a terminal, a line every few seconds
otherwise, and each IODEF file's unmapped elements one warning line. The
summary on stdout counts the records created, updated, unchanged, in
conflict and rejected, then names FILE:LINE (FILE:incident-N for an IODEF
Incident) of every record updated ("updated dev:12 to version 2"), in
conflict, or rejected (with the reasons). Exits 1 if any record was
rejected or in conflict. Unavailable nodes and timeouts are retried with
the same request id.`,
		minArgs: 1, maxArgs: 1,
		connects: true,
		setup: func(fs *flag.FlagSet) action {
			concurrency := fs.Int("concurrency", 8, "`N` requests in flight")
			onChange := fs.String("on-change", "update", "a record changed since its line created an incident: `update` it (a new version) or report a conflict")
			tlp := fs.String("tlp", "", "IODEF: the `TLP` of incidents whose restriction is not white, green, amber or red")
			taxonomy := fs.String("taxonomy", "", "IODEF: the taxonomy `CLASS/TYPE` of incidents the document names none for")
			dryRun := fs.Bool("dry-run", false, "say what would be created and lost, without a node")
			return func(ctx context.Context, c *cli, args []string) error {
				if *concurrency < 1 || *concurrency > 256 {
					return usageErrorf("--concurrency %d: want 1 to 256", *concurrency)
				}
				if *onChange != "update" && *onChange != "conflict" {
					return usageErrorf("--on-change %q: want update or conflict", *onChange)
				}
				opts, err := iodefFlagOptions(*tlp, *taxonomy)
				if err != nil {
					return err
				}
				if *dryRun {
					return c.importDryRun(args[0], opts)
				}
				return c.importIncidents(ctx, args[0], *concurrency, *onChange == "update", opts)
			}
		},
	}
}

// importRecord is one incident to create and where it came from.
type importRecord struct {
	file      string // as the user named it, for messages
	line      int
	label     string // "FILE:incident-N" for an IODEF Incident; FILE:LINE when empty
	requestID string
	data      []byte          // protojson
	inc       *irxv1.Incident // already made; data is unused
	// An IODEF document, which the team decodes (ImportIncidents): its
	// encoding, the defaults the flags give, and after the import one
	// record per Incident in it and the document's warning.
	document  []byte
	format    irxv1.DocumentFormat
	opts      iodef.Options
	incidents []*importRecord
	warning   string
	pos       *yamlPositions // for a YAML document: where its JSON came from
	err       error          // the record could not even be read

	// Set by the worker that sent it: the outcome, the incident and its
	// version now, or the error.
	outcome importOutcome
	id      string
	version int64
	sendErr error
}

// importOutcome is what importing one record did.
type importOutcome int

const (
	importCreated   importOutcome = iota
	importUpdated                 // a new version of the incident its line created
	importUnchanged               // the incident holds the record's content already
	importConflict                // changed, and --on-change conflict left it
)

func (c *cli) importIncidents(ctx context.Context, root string, concurrency int, update bool, opts iodef.Options) error {
	records, skipped, warnings, err := collectRecords(root, opts)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(c.stderr, "irxctl: warning: %s\n", w)
	}
	if skipped > 0 {
		fmt.Fprintf(c.stderr, "irxctl: skipped %d file(s) that are not .json, .jsonl, .ndjson, .yaml, .yml or .xml\n", skipped)
	}
	if len(records) == 0 {
		return fmt.Errorf("%s: no records to import", root)
	}
	s, err := c.connect()
	if err != nil {
		return err
	}
	defer s.Close()

	p := newProgress(c.stderr, len(records))
	stopProgress := p.start()
	work := make(chan *importRecord)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range work {
				rec.sendErr = importOne(ctx, s, rec, update)
				p.record(rec.sendErr != nil)
			}
		}()
	}
	sent := 0
feed:
	for _, rec := range records {
		select {
		case work <- rec:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	stopProgress()

	var done []*importRecord
	for _, rec := range records[:sent] {
		if rec.document == nil || rec.sendErr != nil {
			done = append(done, rec)
			continue
		}
		if rec.warning != "" {
			fmt.Fprintf(c.stderr, "irxctl: warning: %s\n", rec.warning)
		}
		done = append(done, rec.incidents...)
	}
	return c.importSummary(done, len(records)-sent, ctx.Err())
}

// importOne creates one record, or brings the incident its line created up
// to date with it (update) or reports the difference, retrying what a
// retry with the same request id can fix.
func importOne(ctx context.Context, s *session, rec *importRecord, update bool) error {
	if rec.err != nil {
		return rec.err
	}
	if rec.document != nil {
		return importDocument(ctx, s, rec, update)
	}
	inc := rec.inc
	if inc == nil {
		var err error
		if inc, err = unmarshalIncident(rec.data, rec.pos); err != nil {
			return err
		}
	}
	req := &irxv1.CreateIncidentRequest{Incident: inc, RequestId: rec.requestID}
	var resp *irxv1.CreateIncidentResponse
	err := retrying(ctx, s, func(ctx context.Context) (err error) {
		resp, err = s.incidents().CreateIncident(ctx, req)
		return err
	})
	var existing string
	switch {
	case err == nil && !resp.GetRequestReplayed():
		rec.outcome, rec.id, rec.version = importCreated, resp.GetIncident().GetId(), 1
		return nil
	case err == nil:
		// This content created the incident; it may have changed since.
		existing = resp.GetIncident().GetId()
	default:
		// The line created an incident from other content: the record was
		// corrected since.
		if existing = existingIncident(err); existing == "" {
			return err
		}
	}
	return settle(ctx, s, rec, inc, existing, update)
}

// settle brings the incident existing, which rec's request id created,
// up to date with inc (update) or reports the difference.
func settle(ctx context.Context, s *session, rec *importRecord, inc *irxv1.Incident, existing string, update bool) error {
	var latest *irxv1.Incident
	err := retrying(ctx, s, func(ctx context.Context) error {
		got, err := s.incidents().GetIncident(ctx, &irxv1.GetIncidentRequest{Id: existing})
		latest = got.GetIncident()
		return err
	})
	if err != nil {
		return err
	}
	rec.id, rec.version = existing, latest.GetVersion()
	all := &fieldmaskpb.FieldMask{Paths: []string{"*"}}
	if sameContent(latest, inc, all) {
		rec.outcome = importUnchanged
		return nil
	}
	if !update {
		rec.outcome = importConflict
		return nil
	}
	patch := proto.CloneOf(inc)
	patch.Id = existing
	var updated *irxv1.UpdateIncidentResponse
	err = retrying(ctx, s, func(ctx context.Context) (err error) {
		updated, err = s.incidents().UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
			Incident: patch, UpdateMask: all, ExpectedVersion: latest.GetVersion(),
		})
		return err
	})
	if err != nil {
		return err
	}
	rec.outcome, rec.version = importUpdated, updated.GetIncident().GetVersion()
	return nil
}

// importDocument sends an IODEF document to the team, which decodes it
// and creates its incidents, and settles each as importOne settles a
// record: rec.incidents holds one record per Incident.
func importDocument(ctx context.Context, s *session, rec *importRecord, update bool) error {
	req := &irxv1.ImportIncidentsRequest{
		Document: rec.document, Format: rec.format, RequestId: rec.requestID, DocumentName: rec.file,
		DefaultTlp: rec.opts.DefaultTLP, DefaultTaxonomy: rec.opts.DefaultTaxonomy,
	}
	var resp *irxv1.ImportIncidentsResponse
	err := retrying(ctx, s, func(ctx context.Context) (err error) {
		resp, err = s.incidents().ImportIncidents(ctx, req)
		return err
	})
	if err != nil {
		if st, ok := statusOf(err); ok && st.Code() == codes.InvalidArgument {
			for _, v := range fieldViolations(st) {
				if v.GetField() == "document" {
					// Not a document the team can read: one rejected record.
					return errors.New(serverIODEFMessage(rec.file, v.GetDescription()))
				}
			}
		}
		return err
	}
	rec.warning = flagNames(resp.GetWarning())
	for _, r := range resp.GetResults() {
		sub := &importRecord{file: rec.file, line: int(r.GetLine()), label: fmt.Sprintf("%s:incident-%d", rec.file, r.GetIndex())}
		rec.incidents = append(rec.incidents, sub)
		switch {
		case r.GetIncident() == nil:
			sub.sendErr = errors.New(serverIODEFMessage(rec.file, r.GetErrorMessage()))
		case r.GetErrorCode() == "" && !r.GetRequestReplayed():
			sub.outcome, sub.id, sub.version = importCreated, r.GetId(), 1
		case r.GetErrorCode() == "" || r.GetErrorCode() == codes.AlreadyExists.String() && r.GetId() != "":
			sub.sendErr = settle(ctx, s, sub, r.GetIncident(), r.GetId(), update)
		default:
			sub.sendErr = importedStatus(r.GetErrorCode(), r.GetErrorMessage())
		}
	}
	return nil
}

// serverIODEFMessage is a decoding problem of the team's as the summary
// shows one, like a problem found here: one line, each place as "line
// L:C" (the summary names the file), the flags that fix it named.
func serverIODEFMessage(file, msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, file+":"); ok {
			l = "line " + rest
		}
		lines[i] = flagNames(l)
	}
	return strings.Join(lines, "; ")
}

// flagNames names the request's defaults in the team's messages by the
// flags that set them.
func flagNames(msg string) string {
	return strings.NewReplacer(
		"default_tlp (", "--tlp (", "over default_tlp ", "over --tlp ",
		"default_taxonomy CLASS/TYPE (", "--taxonomy CLASS/TYPE (", "over default_taxonomy ", "over --taxonomy ",
	).Replace(msg)
}

// importedStatus is the status of an Incident the team could not create,
// with its field violations ("field: description" lines) as details, so
// the summary lists them as it lists CreateIncident's.
func importedStatus(code, msg string) error {
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(strconv.Quote(code))); err != nil {
		c = codes.Unknown
	}
	st := status.New(c, msg)
	var br errdetails.BadRequest
	for _, l := range strings.Split(msg, "\n") {
		if field, desc, ok := strings.Cut(l, ": "); ok && !strings.Contains(field, " ") {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: field, Description: desc})
		}
	}
	if len(br.FieldViolations) > 0 {
		if d, err := st.WithDetails(&br); err == nil {
			st = d
		}
	}
	return st.Err()
}

// sameContent reports whether updating latest with patch under mask would
// store what latest holds: the state machine's merge, defaults included.
func sameContent(latest, patch *irxv1.Incident, mask *fieldmaskpb.FieldMask) bool {
	next := record.ApplyMask(latest, patch, mask)
	record.ApplyDefaults(next, latest.GetCreateTime())
	return proto.Equal(next, latest)
}

// existingIncident is the incident an ALREADY_EXISTS answer names (a
// request id used before for other content), or "".
func existingIncident(err error) string {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.AlreadyExists {
		return ""
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.ResourceInfo); ok && ri.GetResourceType() == "irx.v1.Incident" {
			return ri.GetResourceName()
		}
	}
	return ""
}

// retrying makes a call, again with backoff while the team is unavailable
// or slow, up to five times.
func retrying(ctx context.Context, s *session, call func(ctx context.Context) error) error {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		callCtx, cancel := s.call(ctx)
		err := call(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		code := status.Code(err)
		retryable := code == codes.Unavailable || code == codes.DeadlineExceeded
		if !retryable || attempt == 5 || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
		backoff = min(2*backoff, 4*time.Second)
	}
}

func (c *cli) importSummary(records []*importRecord, unsent int, interrupted error) error {
	var rejected, reported []*importRecord
	var counts [importConflict + 1]int
	for _, rec := range records {
		switch {
		case rec.sendErr != nil:
			rejected = append(rejected, rec)
		default:
			counts[rec.outcome]++
			if rec.outcome == importUpdated || rec.outcome == importConflict {
				reported = append(reported, rec)
			}
		}
	}
	fmt.Fprintf(c.stdout, "created %d, updated %d, unchanged %d, conflicts %d, rejected %d\n",
		counts[importCreated], counts[importUpdated], counts[importUnchanged], counts[importConflict], len(rejected))
	byPlace := func(a, b *importRecord) int {
		return cmp.Or(strings.Compare(a.file, b.file), cmp.Compare(a.line, b.line), strings.Compare(a.label, b.label))
	}
	where := func(rec *importRecord) string {
		if rec.label != "" {
			return rec.label
		}
		return fmt.Sprintf("%s:%d", rec.file, rec.line)
	}
	slices.SortFunc(reported, byPlace)
	for _, rec := range reported {
		if rec.outcome == importUpdated {
			fmt.Fprintf(c.stdout, "%s: updated %s to version %d\n", where(rec), rec.id, rec.version)
		} else {
			fmt.Fprintf(c.stdout, "%s: conflict: %s (version %d) differs from this record, which created it; left as it is (--on-change update makes a new version)\n",
				where(rec), rec.id, rec.version)
		}
	}
	slices.SortFunc(rejected, byPlace)
	for _, rec := range rejected {
		where := where(rec)
		st, ok := statusOf(rec.sendErr)
		if !ok {
			msg, isIODEF := describeIODEFError(rec.sendErr)
			if !isIODEF {
				msg = rec.sendErr.Error()
			}
			fmt.Fprintf(c.stdout, "%s: not an incident: %s\n", where, msg)
			continue
		}
		violations := fieldViolations(st)
		if len(violations) == 0 {
			fmt.Fprintf(c.stdout, "%s: %s: %s\n", where, st.Code(), st.Message())
			continue
		}
		// The server's message repeats the violations; list them once.
		fmt.Fprintf(c.stdout, "%s: %s\n", where, st.Code())
		for _, v := range violations {
			fmt.Fprintf(c.stdout, "  %s: %s\n", v.GetField(), v.GetDescription())
		}
	}
	if interrupted != nil {
		return fmt.Errorf("import interrupted (%v): %d record(s) not sent; run the same import again to finish it", interrupted, unsent)
	}
	if len(rejected) > 0 || counts[importConflict] > 0 {
		return exitError(1)
	}
	return nil
}

func importable(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json", ".jsonl", ".ndjson", ".yaml", ".yml", ".xml":
		return true
	}
	return false
}

// collectRecords reads every record under root (a directory or one file),
// counts the files it skipped and returns the IODEF warnings, one per
// file.
func collectRecords(root string, opts iodef.Options) ([]*importRecord, int, []string, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, 0, nil, err
	}
	var warnings []string
	if !info.IsDir() {
		if !importable(root) {
			return nil, 0, nil, usageErrorf("%s: want a directory or a .json, .jsonl, .ndjson, .yaml, .yml or .xml file", root)
		}
		recs, warning, err := readRecords(root, opts)
		if warning != "" {
			warnings = append(warnings, warning)
		}
		return recs, 0, warnings, err
	}
	var (
		records []*importRecord
		skipped int
	)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !importable(path) {
			skipped++
			return nil
		}
		recs, warning, err := readRecords(path, opts)
		if warning != "" {
			warnings = append(warnings, warning)
		}
		records = append(records, recs...)
		return err
	})
	return records, skipped, warnings, err
}

// readRecords splits one file into records. A file that cannot be parsed
// as a whole becomes one rejected record, so the rest of the import goes on.
// warning lists what an IODEF file held that irx has no place for.
func readRecords(path string, opts iodef.Options) (recs []*importRecord, warning string, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	if format := iodefFormat(path); format != irxv1.DocumentFormat_DOCUMENT_FORMAT_UNSPECIFIED {
		return readIODEFRecords(path, abs, format, opts)
	}
	recs, err = readTextRecords(path, abs)
	return recs, "", err
}

// readIODEFRecords makes one record of every Incident element of an IODEF
// document, named FILE:incident-N.
func readIODEFRecords(path, abs string, format irxv1.DocumentFormat, opts iodef.Options) ([]*importRecord, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	if len(data) > iodef.MaxDocumentBytes {
		return []*importRecord{{file: path, label: path, err: fmt.Errorf("the document is %d bytes; the limit is %d (4 MiB): split it into several files", len(data), iodef.MaxDocumentBytes)}}, "", nil
	}
	// The team decodes the document; the request id names the file, so
	// that a re-run finds the incidents the first run created (the team
	// adds "/incident-N" for each).
	return []*importRecord{{
		file: path, label: path, requestID: importRequestIDKey(abs, "iodef"),
		document: data, format: format, opts: opts,
	}}, "", nil
}

// iodefFormat is the IODEF encoding of a file to import: XML by its
// extension, RFC 8727 JSON when a .json file's object has an "Incident"
// member (an irx record has none); unspecified otherwise.
func iodefFormat(path string) irxv1.DocumentFormat {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".xml":
		return irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML
	case ".json":
		f, err := os.Open(path)
		if err != nil {
			return irxv1.DocumentFormat_DOCUMENT_FORMAT_UNSPECIFIED
		}
		defer f.Close()
		if hasTopLevelMember(f, "Incident") {
			return irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON
		}
	}
	return irxv1.DocumentFormat_DOCUMENT_FORMAT_UNSPECIFIED
}

// hasTopLevelMember reports whether r holds a JSON object with the member
// key, reading no further than that object's own members.
func hasTopLevelMember(r io.Reader, key string) bool {
	dec := json.NewDecoder(io.LimitReader(r, iodef.MaxDocumentBytes))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return false
		}
		if k == key {
			return true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

// describeIODEFError is err without the file name when it is an IODEF
// error, for the import summary, which names the file already.
func describeIODEFError(err error) (string, bool) {
	withoutFile := func(e *iodef.Error) string {
		unnamed := *e
		unnamed.Name = ""
		return unnamed.Error()
	}
	var list iodef.ErrorList
	if errors.As(err, &list) {
		parts := make([]string, len(list))
		for i, e := range list {
			parts[i] = withoutFile(e)
		}
		return strings.Join(parts, "; "), true
	}
	var e *iodef.Error
	if errors.As(err, &e) {
		return withoutFile(e), true
	}
	return "", false
}

// readTextRecords reads the records of a JSON, JSON-lines or YAML file.
func readTextRecords(path, abs string) ([]*importRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	rec := func(line int, data []byte, err error) *importRecord {
		return &importRecord{file: path, line: line, requestID: importRequestID(abs, line), data: data, err: err}
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return []*importRecord{rec(1, data, nil)}, nil
	case ".yaml", ".yml":
		docs, err := yamlDocuments(data)
		if err != nil {
			return []*importRecord{rec(1, nil, err)}, nil
		}
		var out []*importRecord
		for _, d := range docs {
			r := rec(d.line, d.json, nil)
			r.pos = d.pos
			out = append(out, r)
		}
		return out, nil
	}
	var out []*importRecord
	r := bufio.NewReader(bytes.NewReader(data))
	for line := 1; ; line++ {
		text, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(text)) > 0 {
			out = append(out, rec(line, text, nil))
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// importRequestID names a record by where it is, not by what it holds, so
// that a re-run finds the incidents the first run created. The hash keeps
// the id within the server's 128 bytes for any path.
func importRequestID(absPath string, line int) string {
	return importRequestIDKey(absPath, strconv.Itoa(line))
}

// importRequestIDKey names a record by its file and its place there: a
// line number, or "incident-N" for the Nth Incident of an IODEF document.
func importRequestIDKey(absPath, place string) string {
	sum := sha256.Sum256([]byte(absPath + "\n" + place))
	return "irxctl-import-" + hex.EncodeToString(sum[:16])
}

// progress reports an import on stderr: a redrawn bar on a terminal, plain
// lines (which logs can hold) otherwise.
type progress struct {
	w              io.Writer
	tty            bool
	total          int
	done, rejected atomic.Int64
	began          time.Time
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, tty: isTerminal(w), total: total, began: time.Now()}
}

func (p *progress) record(rejected bool) {
	p.done.Add(1)
	if rejected {
		p.rejected.Add(1)
	}
}

// start reports until the returned function is called.
func (p *progress) start() (stop func()) {
	interval := 5 * time.Second
	if p.tty {
		interval = 100 * time.Millisecond
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.report()
			case <-quit:
				if p.tty {
					p.report()
					fmt.Fprintln(p.w)
				}
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

func (p *progress) report() {
	done, rejected := int(p.done.Load()), p.rejected.Load()
	rate := float64(done) / max(time.Since(p.began).Seconds(), 0.001)
	if !p.tty {
		fmt.Fprintf(p.w, "import: %d/%d records, %d rejected, %.0f/s\n", done, p.total, rejected, rate)
		return
	}
	const width = 30
	filled := width * done / p.total
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r[%s] %d/%d %3d%%  %d rejected  %.0f/s ", bar, done, p.total, 100*done/p.total, rejected, rate)
}

// isTerminal reports whether w is a character device, which is what a
// terminal is; the standard library has no closer test.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
