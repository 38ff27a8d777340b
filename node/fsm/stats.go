package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Incident statistics, kept exactly and incrementally by the state machine.
//
// Every incident the team holds (its own and those received from peers,
// the latter under their origin team) that is not withdrawn counts once in
// one cell: the tuple of its statistical dimensions (origin team, RSIT
// class and type, TLP, status, priority, the reporting site's sector and
// country) in the period that holds its
// report time (create time when a peer's policy stripped the report time).
// A cell is kept for each of the five periods (day, ISO week, month,
// quarter, year, all UTC), so that a query reads the cells of the periods
// it asks for, not one cell per day: five counters per change are written
// once per applied batch (the deltas of a batch are summed first), and a
// year's statistics by month read twelve buckets' cells whatever the
// number of incidents. A range that starts or ends inside a period reads
// that period's part from the day cells.
//
// The counts follow the secondary indexes: wherever a latest version's
// index keys are removed its contribution is subtracted, and wherever they
// are written it is added, so a create adds, an update that changes a
// dimension or the report time moves the count, and a withdrawal (or a
// peer taking its record back) removes it.
//
// Response times are kept for the team's own incidents, whose whole history
// it holds: time to first response (the first version whose status is in
// progress, forwarded or resolved) and time to resolution (the first
// version whose status is resolved), each measured from the incident's
// create time to that version's generation time, at one-minute resolution
// (durations are truncated to the minute). Each cell holds a count per
// minute value, so p50 and p90 over any group of cells are exact at that
// resolution. When those first versions happened is remembered per
// incident (statMemoKey) once it has been updated; version 1 alone
// determines it before.
//
// Key layout:
//
//	st/n/<period1><start8><cell>                   count
//	st/d/<period1><start8><cell><kind1><minutes4>  count
//	st/i/<team>\0<ticket8>                         first response and resolution, minutes+1 (0: not yet)
//	m/stats                                        layout version of the above
//
// where <cell> is <team>\0<class>\0<type>\0<country>\0<tlp1><status1><priority1><sector1>.
var (
	prefixStatCount = []byte("st/n/")
	prefixStatDur   = []byte("st/d/")
	prefixStatMemo  = []byte("st/i/")
	keyStatsVersion = []byte("m/stats")
)

// statsLayout is the version of the statistics' layout; a database without
// it (made before statistics were kept) or with an older one has them
// built again from its records when it is opened. Layout 1 had no sector
// and country in <cell>.
const statsLayout = 2

// Period is a statistics period; the values are irx.v1.StatisticsPeriod's.
type Period byte

// The periods.
const (
	PeriodDay     Period = 1
	PeriodWeek    Period = 2
	PeriodMonth   Period = 3
	PeriodQuarter Period = 4
	PeriodYear    Period = 5
)

var periods = []Period{PeriodDay, PeriodWeek, PeriodMonth, PeriodQuarter, PeriodYear}

// Start returns the start of the period that holds t, in UTC. Weeks are
// ISO weeks, starting on Monday.
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch p {
	case PeriodWeek:
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case PeriodMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	case PeriodQuarter:
		return time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, time.UTC)
	case PeriodYear:
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Next returns the start of the period after the one starting at start.
func (p Period) Next(start time.Time) time.Time {
	switch p {
	case PeriodWeek:
		return start.AddDate(0, 0, 7)
	case PeriodMonth:
		return start.AddDate(0, 1, 0)
	case PeriodQuarter:
		return start.AddDate(0, 3, 0)
	case PeriodYear:
		return start.AddDate(1, 0, 0)
	}
	return start.AddDate(0, 0, 1)
}

// Valid reports whether p is one of the periods.
func (p Period) Valid() bool { return p >= PeriodDay && p <= PeriodYear }

// Cell is one combination of the statistical dimensions.
type Cell struct {
	Team, Class, Type string
	TLP               irxv1.Tlp
	Status            irxv1.Status
	Priority          irxv1.Priority
	Sector            irxv1.Sector
	Country           string
}

// StatTime is the time an incident is counted at: its report time, or its
// create time when it has none (a peer's policy may strip it).
func StatTime(inc *irxv1.Incident) time.Time {
	if t := inc.GetReportTime(); t.IsValid() {
		return t.AsTime().UTC()
	}
	return inc.GetCreateTime().AsTime().UTC()
}

// CellOf returns the cell an incident counts in, and whether it counts at
// all (a withdrawn record does not). team is the origin, from its id.
func CellOf(team string, inc *irxv1.Incident) (Cell, bool) {
	if inc.GetWithdrawTime() != nil {
		return Cell{}, false
	}
	tax, site := inc.GetTaxonomy(), inc.GetReportingSite()
	// The key needs a NUL-free country and a sector in a byte: a value the
	// validator would refuse (in a record stored before it knew these
	// fields) counts as not given.
	sector, country := site.GetSector(), site.GetCountry()
	if _, ok := irxv1.Sector_name[int32(sector)]; !ok {
		sector = irxv1.Sector_SECTOR_UNSPECIFIED
	}
	if country != "" && !record.ValidCountry(country) {
		country = ""
	}
	return Cell{
		Team: team, Class: tax.GetClass(), Type: tax.GetType(),
		TLP: inc.GetTlp(), Status: inc.GetStatus(), Priority: inc.GetPriority(),
		Sector: sector, Country: country,
	}, true
}

// Responded reports whether a status counts as a response to the incident.
func Responded(s irxv1.Status) bool {
	return s == irxv1.Status_STATUS_IN_PROGRESS || s == irxv1.Status_STATUS_FORWARDED || s == irxv1.Status_STATUS_RESOLVED
}

// Duration kinds.
const (
	durResponse   byte = 1
	durResolution byte = 2
)

// statMemo is when an own incident was first responded to and resolved,
// in minutes after its creation, plus one; zero for not yet.
type statMemo struct{ response, resolution uint64 }

// advance returns the memo after version inc.
func (m statMemo) advance(inc *irxv1.Incident) statMemo {
	if m.response != 0 && m.resolution != 0 {
		return m
	}
	secs := inc.GetGenerationTime().AsTime().Sub(inc.GetCreateTime().AsTime()) / time.Minute
	minutes := uint64(max(secs, 0)) + 1
	if m.response == 0 && Responded(inc.GetStatus()) {
		m.response = minutes
	}
	if m.resolution == 0 && inc.GetStatus() == irxv1.Status_STATUS_RESOLVED {
		m.resolution = minutes
	}
	return m
}

func (m statMemo) encode() []byte {
	return binary.BigEndian.AppendUint64(u64(m.response), m.resolution)
}

func decodeMemo(v []byte) (statMemo, error) {
	if len(v) != 16 {
		return statMemo{}, fmt.Errorf("fsm: statistics memo holds %d bytes, want 16", len(v))
	}
	return statMemo{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}, nil
}

func statMemoKey(id record.ID) []byte { return cat(prefixStatMemo, idKey(id)) }

// startKey encodes a period start so that byte order is time order (also
// before 1970).
func startKey(t time.Time) []byte { return u64(uint64(t.Unix()) ^ 1<<63) }

func startFromKey(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)^1<<63), 0).UTC()
}

func appendCell(b []byte, c Cell) []byte {
	b = append(append(b, c.Team...), 0)
	b = append(append(b, c.Class...), 0)
	b = append(append(b, c.Type...), 0)
	b = append(append(b, c.Country...), 0)
	return append(b, byte(c.TLP), byte(c.Status), byte(c.Priority), byte(c.Sector))
}

// parseCell reads a cell from the front of b and returns the rest.
func parseCell(b []byte) (Cell, []byte, bool) {
	var parts [4]string
	for i := range parts {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return Cell{}, nil, false
		}
		parts[i], b = string(b[:j]), b[j+1:]
	}
	if len(b) < 4 {
		return Cell{}, nil, false
	}
	return Cell{
		Team: parts[0], Class: parts[1], Type: parts[2], Country: parts[3],
		TLP: irxv1.Tlp(b[0]), Status: irxv1.Status(b[1]), Priority: irxv1.Priority(b[2]), Sector: irxv1.Sector(b[3]),
	}, b[4:], true
}

func bucketPrefix(prefix []byte, p Period, start time.Time) []byte {
	return cat(prefix, []byte{byte(p)}, startKey(start))
}

// statsAdd adds (sign +1) or subtracts (-1) the contribution of inc, the
// latest version of incident id, to the deltas of the batch. memo is used
// for the team's own incidents only.
func (a *applier) statsAdd(id record.ID, inc *irxv1.Incident, memo statMemo, sign int64) {
	if !maintainStatistics {
		return
	}
	cell, ok := CellOf(id.Team, inc)
	if !ok {
		return
	}
	if a.stats == nil {
		a.stats = make(map[string]int64)
	}
	at := StatTime(inc)
	own := id.Team == a.fsm.team
	var buf []byte
	for _, p := range periods {
		buf = appendCell(append(buf[:0], bucketPrefix(prefixStatCount, p, p.Start(at))...), cell)
		a.stats[string(buf)] += sign
		if !own {
			continue
		}
		for _, d := range []struct {
			kind    byte
			minutes uint64
		}{{durResponse, memo.response}, {durResolution, memo.resolution}} {
			if d.minutes == 0 {
				continue
			}
			buf = appendCell(append(buf[:0], bucketPrefix(prefixStatDur, p, p.Start(at))...), cell)
			buf = binary.BigEndian.AppendUint32(append(buf, d.kind), uint32(min(d.minutes-1, 1<<32-1)))
			a.stats[string(buf)] += sign
		}
	}
}

// statsMoved accounts a new latest version of incident id: previous (nil
// for a record new to this team) is replaced by next.
func (a *applier) statsMoved(id record.ID, previous, next *irxv1.Incident) {
	if !maintainStatistics {
		return
	}
	if id.Team != a.fsm.team {
		if previous != nil {
			a.statsAdd(id, previous, statMemo{}, -1)
		}
		a.statsAdd(id, next, statMemo{}, +1)
		return
	}
	if previous == nil {
		a.statsAdd(id, next, statMemo{}.advance(next), +1)
		return
	}
	old, err := a.statMemo(id, previous)
	if err != nil {
		a.fail(err)
		return
	}
	a.statsAdd(id, previous, old, -1)
	memo := old.advance(next)
	a.statsAdd(id, next, memo, +1)
	// Written at every update, not only when it changes: once there is a
	// version after the first, version 1 is no longer what is read.
	a.set(statMemoKey(id), memo.encode())
}

// statMemo reads the memo of own incident id whose latest version is
// current: stored once it changed after version 1, else what version 1
// (current) says.
func (a *applier) statMemo(id record.ID, current *irxv1.Incident) (statMemo, error) {
	v, closer, err := a.stateReader().Get(statMemoKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return statMemo{}.advance(current), nil
	}
	if err != nil {
		return statMemo{}, fmt.Errorf("fsm: read statistics memo: %w", err)
	}
	defer closer.Close()
	return decodeMemo(v)
}

// writeStats adds the batch's summed deltas to the stored counters. The
// counters are written only here, once per batch, so the database (without
// this batch) holds their values before it.
func (a *applier) writeStats() {
	if a.err != nil || len(a.stats) == 0 {
		return
	}
	keys := make([]string, 0, len(a.stats))
	for k, d := range a.stats {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	// The batch when indexed: the same, but for a rebuild's deletions
	// (buildStats).
	r := a.stateReader()
	for _, k := range keys {
		n, err := getUint64(r, []byte(k))
		if err != nil {
			a.fail(err)
			return
		}
		v := int64(n) + a.stats[k]
		switch {
		case v < 0:
			a.fail(fmt.Errorf("fsm: statistics counter %q would be %d", k, v))
			return
		case v == 0:
			a.err = a.batch.Delete([]byte(k), nil)
		default:
			a.err = a.batch.Set([]byte(k), u64(uint64(v)), nil)
		}
		if a.err != nil {
			return
		}
	}
	clear(a.stats)
}

// buildStats makes the statistics of a database that predates them from
// its records, once: the latest version of every incident, and for the
// team's own the versions before it for the response times.
func buildStats(db *pebble.DB, team string) error {
	switch v, err := getUint64(db, keyStatsVersion); {
	case err != nil:
		return err
	case v == statsLayout:
		return nil
	}
	f := &FSM{team: team, db: db}
	b := db.NewIndexedBatch()
	defer b.Close()
	a := &applier{fsm: f, batch: b}
	// Whatever a half-finished build left goes, key by key: a range
	// deletion's end would lie outside the family (tables.go).
	for _, p := range [][]byte{prefixStatCount, prefixStatDur, prefixStatMemo} {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
		if err != nil {
			return fmt.Errorf("fsm: build statistics: %w", err)
		}
		for valid := it.First(); valid; valid = it.Next() {
			if err := b.Delete(it.Key(), nil); err != nil {
				return errors.Join(err, it.Close())
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("fsm: build statistics: %w", err)
		}
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixIncident, UpperBound: prefixEnd(prefixIncident)})
	if err != nil {
		return fmt.Errorf("fsm: build statistics: %w", err)
	}
	for valid := it.First(); valid && a.err == nil; valid = it.Next() {
		id, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			return errors.Join(fmt.Errorf("fsm: build statistics: %w", err), it.Close())
		}
		latest := int64(binary.BigEndian.Uint64(it.Value()))
		var memo statMemo
		first := latest
		if id.Team == team {
			first = 1
		}
		var inc *irxv1.Incident
		for v := first; v <= latest; v++ {
			inc, err = loadIncident(db, versionKey(id, v))
			if errors.Is(err, pebble.ErrNotFound) && v < latest {
				continue
			}
			if err != nil {
				return errors.Join(fmt.Errorf("fsm: build statistics of %s: %w", id, err), it.Close())
			}
			memo = memo.advance(inc)
		}
		if id.Team == team && latest > 1 {
			a.set(statMemoKey(id), memo.encode())
		}
		a.statsAdd(id, inc, memo, +1)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("fsm: build statistics: %w", err)
	}
	a.writeStats()
	if a.err != nil {
		return fmt.Errorf("fsm: build statistics: %w", a.err)
	}
	if err := b.Set(keyStatsVersion, u64(statsLayout), nil); err != nil {
		return err
	}
	// No flush: the build is one batch, so a crash before the memtable
	// reaches the files loses it whole, marker included, and the next
	// open builds again from the records (and the entries raft replays
	// move the counters with the records they change).
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("fsm: build statistics: %w", err)
	}
	return nil
}

// Dimension is one statistical dimension a query groups by; the values
// are irx.v1.StatisticsDimension's.
type Dimension int

// The dimensions.
const (
	DimTaxonomyClass Dimension = 1
	DimTaxonomyType  Dimension = 2
	DimTLP           Dimension = 3
	DimStatus        Dimension = 4
	DimPriority      Dimension = 5
	DimOriginTeam    Dimension = 6
	DimSector        Dimension = 7
	DimCountry       Dimension = 8
)

// project keeps of c only the dimensions in by.
func project(c Cell, by []Dimension) Cell {
	var out Cell
	for _, d := range by {
		switch d {
		case DimTaxonomyClass:
			out.Class = c.Class
		case DimTaxonomyType:
			out.Class, out.Type = c.Class, c.Type // a type is named within its class
		case DimTLP:
			out.TLP = c.TLP
		case DimStatus:
			out.Status = c.Status
		case DimPriority:
			out.Priority = c.Priority
		case DimOriginTeam:
			out.Team = c.Team
		case DimSector:
			out.Sector = c.Sector
		case DimCountry:
			out.Country = c.Country
		}
	}
	return out
}

// StatsFilter keeps the cells whose every filtered dimension holds one of
// the values listed for it; an empty list does not filter.
type StatsFilter struct {
	Teams, Classes, Types []string
	TLPs                  []irxv1.Tlp
	Statuses              []irxv1.Status
	Priorities            []irxv1.Priority
	Sectors               []irxv1.Sector
	Countries             []string
}

func (f *StatsFilter) keeps(c Cell) bool {
	in := func(ok bool, n int) bool { return n == 0 || ok }
	return in(slices.Contains(f.Teams, c.Team), len(f.Teams)) &&
		in(slices.Contains(f.Classes, c.Class), len(f.Classes)) &&
		in(slices.Contains(f.Types, c.Type), len(f.Types)) &&
		in(slices.Contains(f.TLPs, c.TLP), len(f.TLPs)) &&
		in(slices.Contains(f.Statuses, c.Status), len(f.Statuses)) &&
		in(slices.Contains(f.Priorities, c.Priority), len(f.Priorities)) &&
		in(slices.Contains(f.Sectors, c.Sector), len(f.Sectors)) &&
		in(slices.Contains(f.Countries, c.Country), len(f.Countries))
}

// StatsQuery asks for counts of incidents in [Start, End), both midnight
// UTC, per Period and per combination of the GroupBy dimensions.
type StatsQuery struct {
	GroupBy    []Dimension
	Period     Period
	Start, End time.Time
	Filter     StatsFilter
}

// Percentiles are nearest-rank percentiles of durations, at one-minute
// resolution; N is how many durations they are over.
type Percentiles struct {
	N        int64
	P50, P90 time.Duration
}

// StatsRow is one group in one period.
type StatsRow struct {
	Cell        Cell // only the grouped dimensions set
	PeriodStart time.Time
	Count       int64
	Response    Percentiles
	Resolution  Percentiles
}

// StatsResult is a query's answer: rows in period and cell order, and the
// number of stored cells read for it.
type StatsResult struct {
	Rows      []StatsRow
	CellsRead int
}

type rowKey struct {
	cell  Cell
	start int64
}

// tupleInfo is what a query makes of one stored combination of the
// dimensions: whether its filter keeps it, and its projection.
type tupleInfo struct {
	keep bool
	cell Cell
}

type rowAcc struct {
	count            int64
	response, resolv map[uint32]int64
}

// Statistics answers q from the stored cells: the whole periods inside the
// range from their own cells, the parts of periods cut by its ends from
// the day cells.
func (f *FSM) Statistics(q StatsQuery) (*StatsResult, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	return statistics(f.db, q)
}

func statistics(db iterable, q StatsQuery) (*StatsResult, error) {
	acc := make(map[rowKey]*rowAcc)
	tuples := make(map[string]tupleInfo)
	res := &StatsResult{}
	scan := func(p Period, from, to time.Time, target func(time.Time) time.Time) error {
		if !from.Before(to) {
			return nil
		}
		for _, prefix := range [][]byte{prefixStatCount, prefixStatDur} {
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: bucketPrefix(prefix, p, from), UpperBound: bucketPrefix(prefix, p, to)})
			if err != nil {
				return fmt.Errorf("fsm: statistics: %w", err)
			}
			for valid := it.First(); valid; valid = it.Next() {
				k := it.Key()[len(prefix)+1:]
				if len(k) < 8 || len(it.Value()) != 8 {
					return errors.Join(fmt.Errorf("fsm: statistics key %q: %w", it.Key(), errBadKey), it.Close())
				}
				start := target(startFromKey(k[:8]))
				// The same combinations recur in every period: each is
				// parsed, filtered and projected once per query.
				tuple := k[8:]
				if bytes.Equal(prefix, prefixStatDur) && len(tuple) >= 5 {
					tuple = tuple[:len(tuple)-5]
				}
				info, seen := tuples[string(tuple)]
				if !seen {
					cell, rest, ok := parseCell(tuple)
					if !ok || len(rest) != 0 {
						return errors.Join(fmt.Errorf("fsm: statistics key %q: %w", it.Key(), errBadKey), it.Close())
					}
					info = tupleInfo{keep: q.Filter.keeps(cell), cell: project(cell, q.GroupBy)}
					tuples[string(tuple)] = info
				}
				rest := k[8+len(tuple):]
				res.CellsRead++
				if !info.keep {
					continue
				}
				rk := rowKey{info.cell, start.Unix()}
				r := acc[rk]
				if r == nil {
					r = &rowAcc{}
					acc[rk] = r
				}
				n := int64(binary.BigEndian.Uint64(it.Value()))
				if bytes.Equal(prefix, prefixStatCount) {
					r.count += n
					continue
				}
				if len(rest) != 5 {
					return errors.Join(fmt.Errorf("fsm: statistics key %q: %w", it.Key(), errBadKey), it.Close())
				}
				m := &r.response
				if rest[0] == durResolution {
					m = &r.resolv
				}
				if *m == nil {
					*m = make(map[uint32]int64)
				}
				(*m)[binary.BigEndian.Uint32(rest[1:])] += n
			}
			if err := it.Close(); err != nil {
				return fmt.Errorf("fsm: statistics: %w", err)
			}
		}
		return nil
	}
	first, last := q.Period.Start(q.Start), q.Period.Start(q.End)
	// Whole periods inside the range: [fullFrom, fullTo).
	fullFrom, fullTo := first, last
	if first.Before(q.Start) {
		fullFrom = q.Period.Next(first)
	}
	periodOf := q.Period.Start
	if fullFrom.Before(fullTo) {
		if err := scan(q.Period, fullFrom, fullTo, func(t time.Time) time.Time { return t }); err != nil {
			return nil, err
		}
		if err := scan(PeriodDay, q.Start, fullFrom, periodOf); err != nil {
			return nil, err
		}
		if err := scan(PeriodDay, fullTo, q.End, periodOf); err != nil {
			return nil, err
		}
	} else if err := scan(PeriodDay, q.Start, q.End, periodOf); err != nil {
		return nil, err
	}
	for k, r := range acc {
		if r.count == 0 {
			continue
		}
		res.Rows = append(res.Rows, StatsRow{
			Cell: k.cell, PeriodStart: time.Unix(k.start, 0).UTC(), Count: r.count,
			Response: percentiles(r.response), Resolution: percentiles(r.resolv),
		})
	}
	slices.SortFunc(res.Rows, func(a, b StatsRow) int {
		if c := a.PeriodStart.Compare(b.PeriodStart); c != 0 {
			return c
		}
		return compareCells(a.Cell, b.Cell)
	})
	return res, nil
}

func compareCells(a, b Cell) int {
	switch {
	case a.Team != b.Team:
		return compareStrings(a.Team, b.Team)
	case a.Class != b.Class:
		return compareStrings(a.Class, b.Class)
	case a.Type != b.Type:
		return compareStrings(a.Type, b.Type)
	case a.TLP != b.TLP:
		return int(a.TLP - b.TLP)
	case a.Status != b.Status:
		return int(a.Status - b.Status)
	case a.Priority != b.Priority:
		return int(a.Priority - b.Priority)
	case a.Sector != b.Sector:
		return int(a.Sector - b.Sector)
	case a.Country != b.Country:
		return compareStrings(a.Country, b.Country)
	}
	return 0
}

func compareStrings(a, b string) int {
	if a < b {
		return -1
	}
	return 1
}

// percentiles returns the nearest-rank p50 and p90 of the durations
// counted per minute in m.
func percentiles(m map[uint32]int64) Percentiles {
	var n int64
	minutes := make([]uint32, 0, len(m))
	for v, c := range m {
		if c > 0 {
			minutes = append(minutes, v)
			n += c
		}
	}
	if n == 0 {
		return Percentiles{}
	}
	slices.Sort(minutes)
	return Percentiles{N: n, P50: rank(minutes, m, n, 50), P90: rank(minutes, m, n, 90)}
}

// NearestRank is the rank of the p-th percentile of n values: the smallest
// rank r with r/n >= p/100.
func NearestRank(n int64, p int64) int64 { return max((n*p+99)/100, 1) }

func rank(sorted []uint32, m map[uint32]int64, n, p int64) time.Duration {
	want := NearestRank(n, p)
	var seen int64
	for _, v := range sorted {
		seen += m[v]
		if seen >= want {
			return time.Duration(v) * time.Minute
		}
	}
	return time.Duration(sorted[len(sorted)-1]) * time.Minute
}
