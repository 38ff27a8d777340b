// Package release makes a table of incident counts safe to publish: small
// cells are suppressed, more cells are suppressed so that no suppressed
// cell can be computed from the published totals and the visible cells,
// and, optionally, every count gets differentially private noise. It is
// pure: no I/O, no clock; the noise comes from the random source given.
//
// Releasing statistics to the public is a disclosure, which is why it sits
// beside the disclosure engine.
package release

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
)

// Mechanism is the noise a release adds.
type Mechanism string

// The mechanisms.
const (
	NoNoise   Mechanism = ""
	Laplace   Mechanism = "laplace"   // continuous, rounded to the nearest count
	Geometric Mechanism = "geometric" // two-sided geometric: integer, the discrete Laplace
)

// DefaultK is the smallest count published when Options.K is 0.
const DefaultK = 5

// Options say what a release applies.
type Options struct {
	// K: cells with a count in [1, K) are suppressed; K >= 2.
	K int
	// Mechanism and Epsilon: noise with privacy loss Epsilon (> 0) per
	// release. Every incident counts in exactly one cell, so adding or
	// removing one changes one cell by one: the noise's scale is 1/Epsilon.
	Mechanism Mechanism
	Epsilon   float64
}

// Table is counts by row (e.g. month) and column (e.g. RSIT class).
type Table struct {
	Rows, Cols []string
	Counts     [][]int64 // [row][col]
}

// Cell is a published cell: its count, or suppressed with why.
type Cell struct {
	Count      int64  `json:"count"`
	Suppressed string `json:"suppressed,omitempty"` // "", "small" or "complementary"
}

// Release is what is published.
type Release struct {
	Rows      []string `json:"rows"`
	Cols      []string `json:"cols"`
	Cells     [][]Cell `json:"cells"`
	RowTotals []int64  `json:"row_totals"`
	ColTotals []int64  `json:"col_totals"`
	Total     int64    `json:"total"`
	// Applied records what was done.
	Applied Applied `json:"applied"`
}

// Applied is what a release applied, recorded with it.
type Applied struct {
	K                     int       `json:"k"`
	Mechanism             Mechanism `json:"mechanism,omitempty"`
	Epsilon               float64   `json:"epsilon,omitempty"`
	SmallSuppressed       int       `json:"small_suppressed"`
	ComplementarySuppress int       `json:"complementary_suppressed"`
	// ColTotalsPublished is false for a table of one row, whose column
	// totals would be its cells.
	ColTotalsPublished bool `json:"col_totals_published"`
	// RowTotalsPublished likewise for a table of one column.
	RowTotalsPublished bool `json:"row_totals_published"`
}

// Errors of bad options and tables.
var (
	ErrBadK       = errors.New("release: k must be at least 2")
	ErrBadEpsilon = errors.New("release: epsilon must be a positive finite number")
	ErrBadTable   = errors.New("release: malformed table")
)

// Make builds a release of t under o; rng is the noise's source (unused
// without a mechanism).
func Make(t Table, o Options, rng *rand.Rand) (*Release, error) {
	if o.K == 0 {
		o.K = DefaultK
	}
	if o.K < 2 {
		return nil, ErrBadK
	}
	if len(t.Counts) != len(t.Rows) || len(t.Rows) == 0 || len(t.Cols) == 0 {
		return nil, fmt.Errorf("%w: %d rows of counts for %d row labels and %d columns", ErrBadTable, len(t.Counts), len(t.Rows), len(t.Cols))
	}
	counts := make([][]int64, len(t.Rows))
	for i, row := range t.Counts {
		if len(row) != len(t.Cols) {
			return nil, fmt.Errorf("%w: row %d has %d counts for %d columns", ErrBadTable, i, len(row), len(t.Cols))
		}
		for _, v := range row {
			if v < 0 {
				return nil, fmt.Errorf("%w: a negative count", ErrBadTable)
			}
		}
		counts[i] = slices.Clone(row)
	}
	r := &Release{Rows: slices.Clone(t.Rows), Cols: slices.Clone(t.Cols), Applied: Applied{K: o.K}}
	switch o.Mechanism {
	case NoNoise:
	case Laplace, Geometric:
		if !(o.Epsilon > 0) || math.IsInf(o.Epsilon, 0) {
			return nil, ErrBadEpsilon
		}
		r.Applied.Mechanism, r.Applied.Epsilon = o.Mechanism, o.Epsilon
		for _, row := range counts {
			for j := range row {
				// Clamping at zero is post-processing: it costs no privacy.
				row[j] = max(row[j]+Noise(o.Mechanism, o.Epsilon, rng), 0)
			}
		}
	default:
		return nil, fmt.Errorf("release: unknown mechanism %q: use laplace or geometric", o.Mechanism)
	}
	// Totals are of the (noisy) cells, so the release is consistent.
	r.RowTotals, r.ColTotals = make([]int64, len(counts)), make([]int64, len(t.Cols))
	for i, row := range counts {
		for j, v := range row {
			r.RowTotals[i] += v
			r.ColTotals[j] += v
			r.Total += v
		}
	}
	r.Applied.RowTotalsPublished, r.Applied.ColTotalsPublished = len(t.Cols) > 1, len(t.Rows) > 1
	suppressed := make([][]bool, len(counts))
	r.Cells = make([][]Cell, len(counts))
	for i, row := range counts {
		suppressed[i] = make([]bool, len(row))
		r.Cells[i] = make([]Cell, len(row))
		for j, v := range row {
			r.Cells[i][j].Count = v
			if v > 0 && v < int64(o.K) {
				suppressed[i][j] = true
				r.Cells[i][j] = Cell{Suppressed: "small"}
				r.Applied.SmallSuppressed++
			}
		}
	}
	r.Applied.ComplementarySuppress = complement(counts, suppressed, r.Applied.RowTotalsPublished, r.Applied.ColTotalsPublished)
	for i := range suppressed {
		for j, s := range suppressed[i] {
			if s && r.Cells[i][j].Suppressed == "" {
				r.Cells[i][j] = Cell{Suppressed: "complementary"}
			}
		}
	}
	if !r.Applied.RowTotalsPublished {
		r.RowTotals = nil
	}
	if !r.Applied.ColTotalsPublished {
		r.ColTotals = nil
	}
	return r, nil
}

// complement suppresses more cells until no suppressed cell is determined
// by the published totals (the grand total always; the row and column
// totals as said) and the visible cells. It returns how many it added.
// Each round finds a determined cell and suppresses the smallest visible
// cell of its row, and of its column, preferring non-zero counts (a zero
// hides less); a table with every cell suppressed determines none (the
// grand total is one equation over at least two unknowns) unless it has a
// single cell, which is then left to be derived from the total: a table of
// one cell is its total.
func complement(counts [][]int64, suppressed [][]bool, rowTotals, colTotals bool) int {
	added := 0
	for {
		i, j, ok := firstDetermined(suppressed, rowTotals, colTotals)
		if !ok {
			return added
		}
		n := 0
		if rowTotals || !colTotals {
			// The row's equation (or the grand total's in a one-row
			// table) pins the cell: hide another cell in its row.
			if c, ok := smallestVisible(counts, suppressed, func(yield func(int, int) bool) {
				for c := range counts[i] {
					if !yield(i, c) {
						return
					}
				}
			}); ok {
				suppressed[i][c.col] = true
				n++
			}
		}
		if colTotals || !rowTotals {
			if c, ok := smallestVisible(counts, suppressed, func(yield func(int, int) bool) {
				for r := range counts {
					if !yield(r, j) {
						return
					}
				}
			}); ok {
				suppressed[c.row][c.col] = true
				n++
			}
		}
		if n == 0 {
			// Nothing left to hide in its row or column: hide the
			// smallest visible cell anywhere (it may close a cycle).
			c, ok := smallestVisible(counts, suppressed, func(yield func(int, int) bool) {
				for r := range counts {
					for c := range counts[r] {
						if !yield(r, c) {
							return
						}
					}
				}
			})
			if !ok {
				return added // everything is hidden: a single-cell table
			}
			suppressed[c.row][c.col] = true
			n++
		}
		added += n
	}
}

type pos struct{ row, col int }

func smallestVisible(counts [][]int64, suppressed [][]bool, cells func(yield func(int, int) bool)) (pos, bool) {
	best, found := pos{}, false
	rank := func(v int64) int64 {
		if v == 0 {
			return math.MaxInt64 // zeros last
		}
		return v
	}
	for r, c := range cells {
		if suppressed[r][c] {
			continue
		}
		if !found || rank(counts[r][c]) < rank(counts[best.row][best.col]) {
			best, found = pos{r, c}, true
		}
	}
	return best, found
}

// firstDetermined returns a suppressed cell whose value the published
// equations fix: the grand total, and the row and column totals if
// published, each minus the visible cells, are linear equations over the
// suppressed cells; a cell is fixed when its unit vector lies in the span
// of the equations. The arithmetic is exact.
func firstDetermined(suppressed [][]bool, rowTotals, colTotals bool) (int, int, bool) {
	var vars []pos
	for i := range suppressed {
		for j, s := range suppressed[i] {
			if s {
				vars = append(vars, pos{i, j})
			}
		}
	}
	if len(vars) == 0 {
		return 0, 0, false
	}
	var eqs [][]*big.Rat
	eq := func(in func(p pos) bool) {
		e := make([]*big.Rat, len(vars))
		for k, p := range vars {
			e[k] = new(big.Rat)
			if in(p) {
				e[k].SetInt64(1)
			}
		}
		eqs = append(eqs, e)
	}
	eq(func(pos) bool { return true })
	if rowTotals {
		for i := range suppressed {
			eq(func(p pos) bool { return p.row == i })
		}
	}
	if colTotals {
		for j := range suppressed[0] {
			eq(func(p pos) bool { return p.col == j })
		}
	}
	base := rank(eqs)
	for k, p := range vars {
		unit := make([]*big.Rat, len(vars))
		for m := range unit {
			unit[m] = new(big.Rat)
		}
		unit[k].SetInt64(1)
		if rank(append(slices.Clone(eqs), unit)) == base {
			return p.row, p.col, true
		}
	}
	return 0, 0, false
}

// rank is the rank of the matrix m (rows of equal length), by Gaussian
// elimination over the rationals; m's rows are copied.
func rank(m [][]*big.Rat) int {
	a := make([][]*big.Rat, len(m))
	for i, row := range m {
		a[i] = make([]*big.Rat, len(row))
		for j, v := range row {
			a[i][j] = new(big.Rat).Set(v)
		}
	}
	r := 0
	for c := 0; len(a) > 0 && c < len(a[0]) && r < len(a); c++ {
		p := -1
		for i := r; i < len(a); i++ {
			if a[i][c].Sign() != 0 {
				p = i
				break
			}
		}
		if p < 0 {
			continue
		}
		a[r], a[p] = a[p], a[r]
		for i := range a {
			if i == r || a[i][c].Sign() == 0 {
				continue
			}
			f := new(big.Rat).Quo(a[i][c], a[r][c])
			for j := c; j < len(a[i]); j++ {
				a[i][j].Sub(a[i][j], new(big.Rat).Mul(f, a[r][j]))
			}
		}
		r++
	}
	return r
}

// Noise draws one noise value of the mechanism for privacy loss epsilon
// and sensitivity one.
func Noise(m Mechanism, epsilon float64, rng *rand.Rand) int64 {
	switch m {
	case Laplace:
		// Inverse CDF of Laplace(0, 1/epsilon).
		u := rng.Float64() - 0.5
		for u == -0.5 {
			u = rng.Float64() - 0.5
		}
		x := -math.Copysign(1, u) * math.Log(1-2*math.Abs(u)) / epsilon
		return int64(math.Round(x))
	case Geometric:
		// The difference of two geometric variables with success
		// probability 1-alpha is two-sided geometric: P(k) ∝ alpha^|k|.
		alpha := math.Exp(-epsilon)
		return geometric(alpha, rng) - geometric(alpha, rng)
	}
	return 0
}

// geometric draws the failures before the first success, success
// probability 1-alpha.
func geometric(alpha float64, rng *rand.Rand) int64 {
	u := rng.Float64()
	for u == 0 {
		u = rng.Float64()
	}
	return int64(math.Floor(math.Log(u) / math.Log(alpha)))
}
