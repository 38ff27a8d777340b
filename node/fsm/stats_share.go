package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Shared statistics: what a team tells its peers of its counts, and what
// it keeps of theirs.
//
//	st/pub                 the last SharedStatistics published, prefixed with its feed sequence (8 bytes)
//	st/peer/<team>         a peer's latest SharedStatistics
//
// Only the last published statistics are kept: a feed entry of statistics
// that a later one superseded gives a peer nothing (the later one carries
// newer counts), so the published counts never pile up.
var (
	keyStatsPublished = []byte("st/pub")
	prefixStatsPeer   = []byte("st/peer/")
)

// sharedDayWindow is how far back the day cells a team shares go; the
// cells of longer periods are all shared.
const sharedDayWindow = 400 * 24 * time.Hour

// sharedKey is a shared cell: a stored cell without sector and country.
type sharedKey struct {
	period Period
	start  int64
	cell   Cell
}

func peerStatsKey(team string) []byte { return cat(prefixStatsPeer, []byte(team)) }

// sharedCells reads the cells of the team's own incidents to share as of
// now, in key order of their first stored cell. The stored cells are
// summed over the reporting site's sector and country, which are not
// shared (see SharedStatistics).
func sharedCells(r iterable, team string, now time.Time) ([]*irxv1.StatisticsCell, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixStatCount, UpperBound: prefixEnd(prefixStatCount)})
	if err != nil {
		return nil, fmt.Errorf("fsm: shared statistics: %w", err)
	}
	var cells []*irxv1.StatisticsCell
	index := map[sharedKey]int{}
	oldestDay := now.Add(-sharedDayWindow)
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()[len(prefixStatCount):]
		if len(k) < 9 || len(it.Value()) != 8 {
			return nil, errors.Join(fmt.Errorf("fsm: statistics key %q: %w", it.Key(), errBadKey), it.Close())
		}
		p, start := Period(k[0]), startFromKey(k[1:9])
		cell, _, ok := parseCell(k[9:])
		if !ok {
			return nil, errors.Join(fmt.Errorf("fsm: statistics key %q: %w", it.Key(), errBadKey), it.Close())
		}
		if cell.Team != team || p == PeriodDay && start.Before(oldestDay) {
			continue
		}
		n := int64(binary.BigEndian.Uint64(it.Value()))
		cell.Sector, cell.Country = irxv1.Sector_SECTOR_UNSPECIFIED, ""
		sk := sharedKey{p, start.Unix(), cell}
		if i, ok := index[sk]; ok {
			cells[i].Count += n
			continue
		}
		index[sk] = len(cells)
		cells = append(cells, &irxv1.StatisticsCell{
			Period: irxv1.StatisticsPeriod(p), PeriodStart: timestamppb.New(start),
			TaxonomyClass: cell.Class, TaxonomyType: cell.Type, Tlp: cell.TLP, Status: cell.Status, Priority: cell.Priority,
			Count: n,
		})
	}
	return cells, it.Close()
}

// publishStatistics appends a statistics entry to the feed when the
// team's shared counts differ from those last published.
func (a *applier) publishStatistics() *Result {
	r := a.stateReader()
	// The counters of this batch are written at its end: publish what the
	// entries before it left, which is also what a replica computes.
	cells, err := sharedCells(r, a.fsm.team, a.now.AsTime())
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	_, last, err := a.fsm.publishedFrom(a.reads())
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if last != nil && slices.EqualFunc(last.GetCells(), cells, func(x, y *irxv1.StatisticsCell) bool { return proto.Equal(x, y) }) {
		return &Result{} // unchanged: nothing to tell
	}
	shared := &irxv1.SharedStatistics{TeamId: a.fsm.team, AsOfTime: a.now, Cells: cells}
	data, err := marshal.Marshal(shared)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	a.appendFeed(&irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_STATISTICS})
	a.set(keyStatsPublished, append(u64(a.feed), data...))
	return &Result{}
}

// publishedFrom reads the last published statistics and their feed
// sequence; nil when none were.
func (f *FSM) publishedFrom(r reader) (uint64, *irxv1.SharedStatistics, error) {
	v, closer, err := r.Get(keyStatsPublished)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("fsm: read published statistics: %w", err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("fsm: published statistics: %w", errBadKey)
	}
	s := &irxv1.SharedStatistics{}
	if err := proto.Unmarshal(v[8:], s); err != nil {
		return 0, nil, fmt.Errorf("fsm: decode published statistics: %w", err)
	}
	return binary.BigEndian.Uint64(v[:8]), s, nil
}

// PublishedStatistics returns the statistics the feed entry seq
// published, or nil when a later entry superseded them.
func (r *VersionReader) PublishedStatistics(seq uint64) (*irxv1.SharedStatistics, error) {
	at, s, err := r.f.publishedFrom(r.f.db)
	if err != nil || at != seq {
		return nil, err
	}
	return s, nil
}

// receiveStatistics keeps a peer's statistics if they are its own and
// newer than those kept. Statistics are never passed on: a team shares
// only the counts of its own incidents.
func (a *applier) receiveStatistics(peer string, s *irxv1.SharedStatistics) string {
	if s.GetTeamId() != peer {
		return fmt.Sprintf("statistics of team %q from %q: a team shares only its own", s.GetTeamId(), peer)
	}
	if !s.GetAsOfTime().IsValid() {
		return "statistics without a valid as_of_time"
	}
	for i, c := range s.GetCells() {
		if !Period(c.GetPeriod()).Valid() || !c.GetPeriodStart().IsValid() || c.GetCount() <= 0 ||
			!Period(c.GetPeriod()).Start(c.GetPeriodStart().AsTime()).Equal(c.GetPeriodStart().AsTime()) {
			return fmt.Sprintf("statistics cell %d: not a period with a positive count", i)
		}
		// Only the taxonomy's own terms (or none, where a policy stripped
		// it): nothing else of a peer's text is stored or shown.
		if cl, ty := c.GetTaxonomyClass(), c.GetTaxonomyType(); (cl != "" || ty != "") && !record.ValidTaxonomy(cl, ty) {
			return fmt.Sprintf("statistics cell %d: %q/%q is not a taxonomy class and type", i, cl, ty)
		}
	}
	var old irxv1.SharedStatistics
	switch found, err := getProto(a.reads(), peerStatsKey(peer), &old); {
	case err != nil:
		a.fail(err)
		return ""
	case found && !s.GetAsOfTime().AsTime().After(old.GetAsOfTime().AsTime()):
		return "" // older than what we hold: a re-delivery
	}
	a.setProto(s, peerStatsKey(peer))
	return ""
}

// StatsScope is a query's scope.
type StatsScope int

// The scopes.
const (
	ScopeOwn        StatsScope = 1
	ScopeFederation StatsScope = 2
)

// TeamStats is one team's rows of a federation query.
type TeamStats struct {
	Team string
	AsOf time.Time
	Rows []StatsRow
}

// FederationStatistics answers q for the team's own incidents and every
// peer's latest shared statistics: each team's rows (the team first, then
// the peers in id order) and their total. now is the as-of time of the
// team's own.
func (f *FSM) FederationStatistics(q StatsQuery, now time.Time) ([]TeamStats, *StatsResult, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, nil, errClosed
	}
	total := newStatsAcc(q)
	own := q
	own.Filter.Teams = []string{f.team}
	if len(q.Filter.Teams) > 0 && !slices.Contains(q.Filter.Teams, f.team) {
		own.Filter.Teams = []string{"\x00"} // no team has this id: none of our own
	}
	res, err := statistics(f.db, own)
	if err != nil {
		return nil, nil, err
	}
	teams := []TeamStats{{Team: f.team, AsOf: now, Rows: res.Rows}}
	total.addRows(res.Rows)
	total.cellsRead += res.CellsRead
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixStatsPeer, UpperBound: prefixEnd(prefixStatsPeer)})
	if err != nil {
		return nil, nil, fmt.Errorf("fsm: peer statistics: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		s := &irxv1.SharedStatistics{}
		if err := proto.Unmarshal(it.Value(), s); err != nil {
			return nil, nil, fmt.Errorf("fsm: decode peer statistics %q: %w", it.Key(), err)
		}
		if len(q.Filter.Teams) > 0 && !slices.Contains(q.Filter.Teams, s.GetTeamId()) {
			continue
		}
		acc := newStatsAcc(q)
		for _, c := range s.GetCells() {
			acc.addCell(Period(c.GetPeriod()), c.GetPeriodStart().AsTime().UTC(), Cell{
				Team: s.GetTeamId(), Class: c.GetTaxonomyClass(), Type: c.GetTaxonomyType(),
				TLP: c.GetTlp(), Status: c.GetStatus(), Priority: c.GetPriority(),
			}, c.GetCount())
		}
		rows := acc.rows()
		teams = append(teams, TeamStats{Team: s.GetTeamId(), AsOf: s.GetAsOfTime().AsTime(), Rows: rows})
		total.addRows(rows)
		total.cellsRead += acc.cellsRead
	}
	return teams, &StatsResult{Rows: total.rows(), CellsRead: total.cellsRead}, nil
}

// statsAcc sums cells given one at a time (a peer's shared statistics)
// into a query's rows, reading each period from its own cells where the
// range holds it whole and from the day cells where the range cuts it, as
// statistics does from the stored cells.
type statsAcc struct {
	q                StatsQuery
	fullFrom, fullTo time.Time
	acc              map[rowKey]*rowAcc
	cellsRead        int
}

func newStatsAcc(q StatsQuery) *statsAcc {
	a := &statsAcc{q: q, acc: map[rowKey]*rowAcc{}}
	first := q.Period.Start(q.Start)
	a.fullFrom, a.fullTo = first, q.Period.Start(q.End)
	if first.Before(q.Start) {
		a.fullFrom = q.Period.Next(first)
	}
	return a
}

func (a *statsAcc) addCell(p Period, start time.Time, c Cell, n int64) {
	whole := a.fullFrom.Before(a.fullTo)
	switch {
	case p == a.q.Period && whole && !start.Before(a.fullFrom) && start.Before(a.fullTo):
	case p == PeriodDay && !start.Before(a.q.Start) && start.Before(a.q.End) &&
		(!whole || start.Before(a.fullFrom) || !start.Before(a.fullTo)):
		start = a.q.Period.Start(start)
	default:
		return
	}
	a.cellsRead++
	if !a.q.Filter.keeps(c) {
		return
	}
	a.add(rowKey{project(c, a.q.GroupBy), start.Unix()}, n)
}

func (a *statsAcc) add(k rowKey, n int64) {
	r := a.acc[k]
	if r == nil {
		r = &rowAcc{}
		a.acc[k] = r
	}
	r.count += n
}

// addRows adds rows already grouped by the query (counts only: response
// times do not add up across teams).
func (a *statsAcc) addRows(rows []StatsRow) {
	for _, r := range rows {
		a.add(rowKey{r.Cell, r.PeriodStart.Unix()}, r.Count)
	}
}

func (a *statsAcc) rows() []StatsRow {
	var out []StatsRow
	for k, r := range a.acc {
		if r.count > 0 {
			out = append(out, StatsRow{Cell: k.cell, PeriodStart: time.Unix(k.start, 0).UTC(), Count: r.count})
		}
	}
	sortRows(out)
	return out
}

func sortRows(rows []StatsRow) {
	slices.SortFunc(rows, func(a, b StatsRow) int {
		if c := a.PeriodStart.Compare(b.PeriodStart); c != 0 {
			return c
		}
		return compareCells(a.Cell, b.Cell)
	})
}

// Privacy budgets of public releases: st/dp/<dataset> holds its
// PrivacyBudget.
var prefixPrivacyBudget = []byte("st/dp/")

// ErrBudgetExhausted refuses a release that would spend past its
// dataset's privacy budget.
var ErrBudgetExhausted = errdefs.New(errdefs.ErrResourceExhausted, "privacy budget exhausted")

// ErrBudgetFixed refuses a spend that names another total budget than the
// one the dataset's first spend fixed.
var ErrBudgetFixed = errdefs.New(errdefs.ErrFailedPrecondition, "privacy budget fixed")

func privacyBudgetKey(dataset string) []byte { return cat(prefixPrivacyBudget, []byte(dataset)) }

// spendPrivacyBudget spends c.epsilon of the dataset's budget. The checks
// of the values are the proposer's; these only keep the state sound.
func (a *applier) spendPrivacyBudget(c *irxv1.SpendPrivacyBudgetCommand) *Result {
	eps, total := c.GetEpsilon(), c.GetBudget()
	if c.GetDataset() == "" || !(eps > 0) || !(total > 0) || math.IsInf(eps, 0) || math.IsInf(total, 0) {
		return &Result{Err: fmt.Errorf("%w at index %d: a privacy budget spend without dataset, or with epsilon %v and budget %v", ErrInvalidCommand, a.index, eps, total)}
	}
	b := &irxv1.PrivacyBudget{Dataset: c.GetDataset(), Budget: total}
	found, err := getProto(a.reads(), privacyBudgetKey(c.GetDataset()), b)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if found && b.GetBudget() != total {
		return &Result{Err: fmt.Errorf("%w: dataset %q has a budget of %v, not %v; it was fixed by its first release", ErrBudgetFixed, c.GetDataset(), b.GetBudget(), total)}
	}
	if b.GetSpent()+eps > total*(1+1e-12) {
		return &Result{Err: fmt.Errorf("%w: dataset %q has spent %v of its budget %v; a release of epsilon %v would pass it", ErrBudgetExhausted, c.GetDataset(), b.GetSpent(), total, eps)}
	}
	b.Spent += eps
	b.Releases++
	b.UpdateTime = a.now
	a.setProto(b, privacyBudgetKey(c.GetDataset()))
	return &Result{Budget: b, Err: a.err}
}
