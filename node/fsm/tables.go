package fsm

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// keyFamilies returns the first key of every family of keys the state
// machine writes (see keys.go and the prefixes beside each kind of state),
// sorted. Every key lies under one of them.
func keyFamilies() [][]byte {
	f := [][]byte{
		[]byte("m/"), keyTeamDescription,
		prefixIncident, prefixVersion, prefixFeed, prefixRequest,
		prefixStatus, prefixTaxonomy, prefixTLP, prefixTime, prefixInd,
		prefixPeer, prefixPeerState, prefixHeld, prefixLedgerP, prefixLedgerI, prefixTomb, prefixRedisclosure,
		prefixPolicy, prefixPolicyLatest, legacyHeld,
		prefixAccess, prefixAction, prefixVersionAction,
		prefixCorrelation, prefixCorJournal, prefixAlertFamily, prefixWarning,
		prefixGroup, prefixSightOwn, prefixSightPeer, prefixSightByPeer, prefixSightWithdrawal,
		prefixStatCount, prefixStatDur, prefixStatMemo, keyStatsPublished, prefixStatsPeer, prefixPrivacyBudget,
		retentionFamily, prefixRetentionTime, prefixRetentionLog,
	}
	slices.SortFunc(f, bytes.Compare)
	return slices.CompactFunc(f, bytes.Equal)
}

// splitTablesAtFamilies makes pebble end an sstable, in flushes and in
// compactions, where one family of keys ends and the next begins.
//
// Without it a flushed table holds a slice of every family: the feed, the
// indexes, the request ids and the versions. Its key range then spans all
// that lies between, and compacting it into the level below rewrites every
// table there, although the versions, the feed and the latest-version
// pointers only ever grow at the end of their ranges (tickets and sequences
// increase). Tables cut at the families' edges overlap only tables of their
// own family: the random keys (request ids, indicator hashes) are still
// merged, but they are small; the incidents are written once more at most.
// Under heavy ingest, compactions went from a large to a small part of the
// nodes' CPU (docs/performance.md).
func splitTablesAtFamilies(families [][]byte) pebble.SpanPolicyFunc {
	return func(start []byte) (pebble.SpanPolicy, []byte, error) {
		i, found := slices.BinarySearchFunc(families, start, bytes.Compare)
		if found {
			i++
		}
		if i == len(families) {
			return pebble.SpanPolicy{}, nil, nil // the rest of the key space
		}
		return pebble.SpanPolicy{}, families[i], nil
	}
}

// inKeyOrder returns writes in key order, two writes to one key in the
// order they were made. A full sort of a group commit's writes showed in
// the nodes' profiles; but the writes of one family mostly come in
// order already (tickets and feed sequences increase), so they are first
// dealt into their families, in one pass, and only a family that is out of
// order (request ids, indicator hashes) is sorted.
func inKeyOrder(writes []pendingSet, families [][]byte) []pendingSet {
	// Bucket k holds the keys from families[k-1] (inclusive) to
	// families[k]; bucket 0 what lies before every family.
	counts := make([]int, len(families)+2)
	for i := range writes {
		k, found := slices.BinarySearchFunc(families, writes[i].key, bytes.Compare)
		if found {
			k++
		}
		writes[i].family = k
		counts[k+1]++
	}
	for k := 1; k < len(counts); k++ {
		counts[k] += counts[k-1] // counts[k] is now where bucket k starts
	}
	out := make([]pendingSet, len(writes))
	next := slices.Clone(counts)
	for _, w := range writes {
		out[next[w.family]] = w
		next[w.family]++
	}
	for k := 0; k+1 < len(counts); k++ {
		if bucket := out[counts[k]:counts[k+1]]; !slices.IsSortedFunc(bucket, compareWrites) {
			slices.SortFunc(bucket, compareWrites)
		}
	}
	return out
}

func compareWrites(x, y pendingSet) int {
	if c := bytes.Compare(x.key, y.key); c != 0 {
		return c
	}
	return cmp.Compare(x.seq, y.seq)
}
