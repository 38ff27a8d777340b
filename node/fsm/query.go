package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// ErrBadPageToken is returned for a page token that this query did not issue.
var ErrBadPageToken = errdefs.New(errdefs.ErrInvalidArgument, "page token does not belong to this query")

// Paging limits for list reads.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
	// scanBudget bounds the keys one page may examine, so a filter that
	// matches little cannot make one call walk the whole database; the page
	// then comes back short with a token to continue.
	scanBudget = 10_000
)

// Get returns version of incident id, or its latest version if version is 0.
func (f *FSM) Get(id string, version int64) (*irxv1.Incident, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	return f.getFrom(f.db, id, version)
}

var errClosed = errors.New("fsm: closed")

func (f *FSM) getFrom(r reader, id string, version int64) (*irxv1.Incident, error) {
	parsed, err := record.ParseID(id)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		if version, err = latestVersion(r, parsed); err != nil {
			if errors.Is(err, pebble.ErrNotFound) {
				return nil, fmt.Errorf("%w: incident %s", ErrNotFound, id)
			}
			return nil, err
		}
	}
	inc, err := loadIncident(r, versionKey(parsed, version))
	if errors.Is(err, pebble.ErrNotFound) {
		if version != 0 {
			return nil, fmt.Errorf("%w: incident %s version %d", ErrNotFound, id, version)
		}
		return nil, fmt.Errorf("%w: incident %s", ErrNotFound, id)
	}
	return inc, err
}

// latestVersion reads the version inc/ points at.
func latestVersion(r reader, id record.ID) (int64, error) {
	v, closer, err := r.Get(incidentKey(id))
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("fsm: %s: latest version holds %d bytes, want 8", id, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// loadLatest reads the latest version of an incident.
func loadLatest(r reader, id record.ID) (*irxv1.Incident, error) {
	version, err := latestVersion(r, id)
	if err != nil {
		return nil, err
	}
	return loadIncident(r, versionKey(id, version))
}

func loadIncident(r reader, key []byte) (*irxv1.Incident, error) {
	v, closer, err := r.Get(key)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	inc := &irxv1.Incident{}
	if err := proto.Unmarshal(v, inc); err != nil {
		return nil, fmt.Errorf("fsm: decode %q: %w", key, err)
	}
	return inc, nil
}

// Query selects incidents for List. Zero values match everything.
type Query struct {
	Status         irxv1.Status
	TaxonomyClass  string
	TaxonomyType   string
	TLP            irxv1.Tlp
	OriginTeam     string
	ReportedAfter  time.Time // inclusive
	ReportedBefore time.Time // exclusive
	Indicator      string
	// IncludeWithdrawn also lists this team's withdrawn incidents.
	IncludeWithdrawn bool
}

func (q Query) matches(inc *irxv1.Incident) bool {
	switch {
	case q.Status != 0 && inc.GetStatus() != q.Status,
		q.TLP != 0 && inc.GetTlp() != q.TLP,
		q.TaxonomyClass != "" && inc.GetTaxonomy().GetClass() != q.TaxonomyClass,
		q.TaxonomyType != "" && inc.GetTaxonomy().GetType() != q.TaxonomyType,
		q.OriginTeam != "" && inc.GetProvenance().GetOriginTeam() != q.OriginTeam,
		!q.IncludeWithdrawn && inc.GetWithdrawTime() != nil:
		return false
	}
	reported := inc.GetReportTime().AsTime()
	if !q.ReportedAfter.IsZero() && reported.Before(q.ReportedAfter) {
		return false
	}
	if !q.ReportedBefore.IsZero() && !reported.Before(q.ReportedBefore) {
		return false
	}
	if q.Indicator != "" {
		for _, ind := range inc.GetIndicators() {
			if ind.GetValue() == q.Indicator {
				return true
			}
		}
		return false
	}
	return true
}

// plan picks the most selective index for q: the key range to walk and the
// prefix its keys share before the incident id.
func (q Query) plan() (prefix, lower, upper []byte) {
	switch {
	case q.Indicator != "":
		prefix = cat(prefixInd, indicatorKey(q.Indicator), []byte{0})
	case q.TaxonomyClass != "" && q.TaxonomyType != "":
		prefix = cat(prefixTaxonomy, []byte(q.TaxonomyClass), []byte{0}, []byte(q.TaxonomyType), []byte{0})
	case q.TaxonomyClass != "":
		prefix = cat(prefixTaxonomy, []byte(q.TaxonomyClass), []byte{0})
	case q.OriginTeam != "":
		prefix = cat(prefixIncident, []byte(q.OriginTeam), []byte{0})
		return prefixIncident, prefix, prefixEnd(prefix)
	case !q.ReportedAfter.IsZero() || !q.ReportedBefore.IsZero():
		lower, upper = prefixTime, prefixEnd(prefixTime)
		if !q.ReportedAfter.IsZero() {
			lower = cat(prefixTime, timeKey(q.ReportedAfter))
		}
		if !q.ReportedBefore.IsZero() {
			upper = cat(prefixTime, timeKey(q.ReportedBefore))
		}
		return prefixTime, lower, upper
	case q.Status != 0:
		prefix = cat(prefixStatus, []byte{byte(q.Status)}, []byte{0})
	case q.TLP != 0:
		prefix = cat(prefixTLP, []byte{byte(q.TLP)}, []byte{0})
	default:
		return prefixIncident, prefixIncident, prefixEnd(prefixIncident)
	}
	return prefix, prefix, prefixEnd(prefix)
}

// fingerprint ties a page token to the query that issued it.
func (q Query) fingerprint() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%q|%q|%d|%q|%d|%d|%q|%t", q.Status, q.TaxonomyClass, q.TaxonomyType, q.TLP, q.OriginTeam,
		unixNanoOrZero(q.ReportedAfter), unixNanoOrZero(q.ReportedBefore), q.Indicator, q.IncludeWithdrawn)
	return h.Sum64()
}

func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Page tokens are base64url(fingerprint8 || last key seen). They are opaque to
// clients; the fingerprint stops a token from being replayed on another query.
func encodeToken(fp uint64, last []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(u64(fp), last...))
}

func decodeToken(token string, fp uint64) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 8 || binary.BigEndian.Uint64(raw) != fp {
		return nil, ErrBadPageToken
	}
	return raw[8:], nil
}

// List returns up to pageSize incidents matching q, in index order, and the
// token for the next page ("" when done).
func (f *FSM) List(q Query, pageSize int, pageToken string) ([]*irxv1.Incident, string, error) {
	pageSize = clampPageSize(pageSize)
	prefix, lower, upper := q.plan()
	fp := q.fingerprint()
	lower, err := resume(lower, pageToken, fp)
	if err != nil {
		return nil, "", err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("fsm: list: %w", err)
	}
	var (
		out     []*irxv1.Incident
		scanned int
		last    []byte
	)
	for valid := it.First(); valid; valid = it.Next() {
		if len(out) == pageSize || scanned == scanBudget {
			return out, encodeToken(fp, last), it.Close()
		}
		scanned++
		last = append(last[:0], it.Key()...)
		id, err := idFromKey(it.Key(), prefix)
		if err != nil {
			return nil, "", errors.Join(fmt.Errorf("fsm: list: %w", err), it.Close())
		}
		inc, err := loadLatest(f.db, id)
		if err != nil {
			return nil, "", errors.Join(fmt.Errorf("fsm: list %s: %w", id, err), it.Close())
		}
		if q.matches(inc) {
			out = append(out, inc)
		}
	}
	return out, "", it.Close()
}

// Versions returns versions of incident id, oldest first.
func (f *FSM) Versions(id string, pageSize int, pageToken string) ([]*irxv1.Incident, string, error) {
	parsed, err := record.ParseID(id)
	if err != nil {
		return nil, "", err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	if _, err := latestVersion(f.db, parsed); errors.Is(err, pebble.ErrNotFound) {
		return nil, "", fmt.Errorf("%w: incident %s", ErrNotFound, id)
	} else if err != nil {
		return nil, "", fmt.Errorf("fsm: versions %s: %w", id, err)
	}
	return pageDecoded[irxv1.Incident](f, cat(prefixVersion, idKey(parsed)), pageSize, pageToken, valueItself)
}

func valueItself(_, v []byte) ([]byte, error) { return v, nil }

// pageDecoded returns up to pageSize messages stored under prefix, in key
// order, continuing after pageToken. load gives the encoded message for a
// key and its value: the value itself, or what it points at. f.mu must be
// held for reading.
func pageDecoded[T any, PT interface {
	*T
	proto.Message
}](f *FSM, prefix []byte, pageSize int, pageToken string, load func(k, v []byte) ([]byte, error)) ([]PT, string, error) {
	pageSize = clampPageSize(pageSize)
	fp := fnv64(prefix)
	lower, err := resume(prefix, pageToken, fp)
	if err != nil {
		return nil, "", err
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, "", fmt.Errorf("fsm: scan %q: %w", prefix, err)
	}
	var (
		out  []PT
		last []byte
	)
	for valid := it.First(); valid; valid = it.Next() {
		if len(out) == pageSize {
			return out, encodeToken(fp, last), it.Close()
		}
		last = append(last[:0], it.Key()...)
		data, err := load(it.Key(), it.Value())
		if err != nil {
			return nil, "", errors.Join(err, it.Close())
		}
		m := PT(new(T))
		if err := proto.Unmarshal(data, m); err != nil {
			return nil, "", errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close())
		}
		out = append(out, m)
	}
	return out, "", it.Close()
}

// resume returns where a scan starting at lower continues after pageToken,
// which must carry fingerprint fp.
func resume(lower []byte, pageToken string, fp uint64) ([]byte, error) {
	if pageToken == "" {
		return lower, nil
	}
	last, err := decodeToken(pageToken, fp)
	if err != nil {
		return nil, err
	}
	if after := append(bytes.Clone(last), 0); bytes.Compare(after, lower) > 0 {
		return after, nil
	}
	return lower, nil
}

func fnv64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

func clampPageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// Digest is a SHA-256 over every key and value of the state machine. Two
// replicas that applied the same log have the same digest.
func (f *FSM) Digest() ([]byte, error) {
	_, d, err := f.DigestAt()
	return d, err
}

// DigestAt returns the digest with the applied index it was taken at, both
// from one consistent snapshot of the database.
func (f *FSM) DigestAt() (uint64, []byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return 0, nil, errClosed
	}
	defer f.openSnapshots.add(f.applied.Load())()
	snap := f.db.NewSnapshot()
	defer snap.Close()
	applied, err := getUint64(snap, keyApplied)
	if err != nil {
		return 0, nil, err
	}
	d, err := digestOf(snap)
	return applied, d, err
}

func digestOf(snap *pebble.Snapshot) ([]byte, error) {
	it, err := snap.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("fsm: digest: %w", err)
	}
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for valid := it.First(); valid; valid = it.Next() {
		for _, b := range [][]byte{it.Key(), it.Value()} {
			h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
			h.Write(b)
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("fsm: digest: %w", err)
	}
	return h.Sum(nil), nil
}

// VersionReader reads incident versions in roughly ascending key order, as
// a feed walk does, through one iterator: consecutive versions share data
// blocks, which point lookups would each load again. It holds the state
// machine's read lock until Close, so a walk reads through it only (other
// FSM reads would take the lock again and could deadlock behind a waiting
// Restore); close it before anything slow, like sending.
type VersionReader struct {
	f  *FSM
	it *pebble.Iterator
}

// NewVersionReader opens a reader; the caller must Close it.
func (f *FSM) NewVersionReader() (*VersionReader, error) {
	f.mu.RLock()
	if f.db == nil {
		f.mu.RUnlock()
		return nil, errClosed
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixVersion, UpperBound: prefixEnd(prefixVersion)})
	if err != nil {
		f.mu.RUnlock()
		return nil, fmt.Errorf("fsm: version reader: %w", err)
	}
	return &VersionReader{f: f, it: it}, nil
}

// Get returns one version of an incident, the latest if version is 0
// (ErrNotFound if absent).
func (r *VersionReader) Get(id string, version int64) (*irxv1.Incident, error) {
	parsed, err := record.ParseID(id)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		return r.f.getFrom(r.f.db, id, 0)
	}
	key := versionKey(parsed, version)
	if !r.it.SeekGE(key) || !bytes.Equal(r.it.Key(), key) {
		if err := r.it.Error(); err != nil {
			return nil, fmt.Errorf("fsm: read %s version %d: %w", id, version, err)
		}
		return nil, fmt.Errorf("%w: incident %s version %d", ErrNotFound, id, version)
	}
	inc := &irxv1.Incident{}
	if err := proto.Unmarshal(r.it.Value(), inc); err != nil {
		return nil, fmt.Errorf("fsm: decode %s version %d: %w", id, version, err)
	}
	return inc, nil
}

// Close releases the iterator and the read lock.
func (r *VersionReader) Close() error {
	err := r.it.Close()
	r.f.mu.RUnlock()
	return err
}
