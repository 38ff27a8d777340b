package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/irxfed/irx/record"
)

// Key layout. Prefixes are readable so `pebble` tooling output makes sense;
// numbers are big-endian so byte order is numeric order.
//
//	m/applied                                  last applied Raft index (same batch as the data)
//	m/ticket                                   last ticket assigned by this team
//	m/feed                                     last feed sequence
//	m/restore                                  RestoreMark of a team started from a backup
//	inc/<team>\0<ticket8>                      latest version of an incident
//	ver/<team>\0<ticket8><version8>            every version of an incident
//	feed/<seq8>                                FeedEntry
//	req/<request id>                           incident id created for a client request id
//	idx/status/<status1>\0<team>\0<ticket8>
//	idx/tax/<class>\0<type>\0<team>\0<ticket8>
//	idx/tlp/<tlp1>\0<team>\0<ticket8>
//	idx/time/<report time12>\0<team>\0<ticket8>
//	idx/ind/<sha256(value)[:16]>\0<team>\0<ticket8>
//
// An index key is <index prefix><field>\0<team>\0<ticket8>; team ids never
// hold a NUL, so the incident is recovered from the end of the key.
var (
	keyApplied = []byte("m/applied")
	keyTicket  = []byte("m/ticket")
	keyFeed    = []byte("m/feed")
	keyRestore = []byte("m/restore")

	prefixIncident = []byte("inc/")
	prefixVersion  = []byte("ver/")
	prefixFeed     = []byte("feed/")
	prefixRequest  = []byte("req/")
	prefixStatus   = []byte("idx/status/")
	prefixTaxonomy = []byte("idx/tax/")
	prefixTLP      = []byte("idx/tlp/")
	prefixTime     = []byte("idx/time/")
	prefixInd      = []byte("idx/ind/")
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// idKey is the storage form of an incident id: team, NUL, ticket.
func idKey(id record.ID) []byte {
	k := make([]byte, 0, len(id.Team)+9)
	k = append(k, id.Team...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, id.Ticket)
}

func incidentKey(id record.ID) []byte { return cat(prefixIncident, idKey(id)) }

func versionKey(id record.ID, version int64) []byte {
	return cat(prefixVersion, idKey(id), u64(uint64(version)))
}

func feedKey(seq uint64) []byte { return cat(prefixFeed, u64(seq)) }

func requestKey(requestID string) []byte { return cat(prefixRequest, []byte(requestID)) }

// requestValue is what a request id's key holds: the id of the incident
// its create made and, when the create carried one, a NUL and the digest
// of the request's body. Incident ids hold no NUL (team ids are checked),
// so values stored before digests were kept (the id alone) read as an id
// without a digest.
func requestValue(id string, digest []byte) []byte {
	if len(digest) == 0 {
		return []byte(id)
	}
	v := make([]byte, 0, len(id)+1+len(digest))
	return append(append(append(v, id...), 0), digest...)
}

// parseRequestValue splits a request id's value; the digest is a copy.
func parseRequestValue(v []byte) (id string, digest []byte) {
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return string(v), nil
	}
	return string(v[:i]), bytes.Clone(v[i+1:])
}

const (
	timeKeyLen      = 12
	indicatorKeyLen = 16
)

// timeKey orders timestamps from year 1 on as unsigned numbers.
func timeKey(t time.Time) []byte { return appendTimeKey(make([]byte, 0, timeKeyLen), t) }

func appendTimeKey(dst []byte, t time.Time) []byte {
	const yearOneToEpoch = 62135596800
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix()+yearOneToEpoch))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// indicatorKey hashes the value so arbitrary bytes (NULs included) cannot
// collide with the key structure; lookups are exact matches anyway.
func indicatorKey(value string) []byte {
	return appendIndicatorKey(make([]byte, 0, indicatorKeyLen), value)
}

func appendIndicatorKey(dst []byte, value string) []byte {
	sum := sha256.Sum256([]byte(value))
	return append(dst, sum[:indicatorKeyLen]...)
}

var errBadKey = errors.New("fsm: malformed index key")

// idFromKey recovers the incident id from the end of a primary or index
// key; prefix is the key's fixed prefix.
func idFromKey(k, prefix []byte) (record.ID, error) {
	if len(k) < len(prefix)+10 || k[len(k)-9] != 0 {
		return record.ID{}, errBadKey
	}
	ticket := binary.BigEndian.Uint64(k[len(k)-8:])
	rest := k[len(prefix) : len(k)-9]
	team := rest[bytes.LastIndexByte(rest, 0)+1:]
	if len(team) == 0 {
		return record.ID{}, errBadKey
	}
	return record.ID{Team: string(team), Ticket: ticket}, nil
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// scanFamily calls fn with every key under prefix and its value, in order.
func scanFamily(r iterable, prefix []byte, fn func(key, value []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("fsm: read %s: %w", prefix, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}
