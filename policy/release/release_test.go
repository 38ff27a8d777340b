package release

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"
)

// attack is what someone holding the release computes: the published
// totals minus the visible cells are linear equations over the suppressed
// cells; reduced to row echelon form (in floating point, apart from the
// exact arithmetic Make uses), a row with a single non-zero coefficient
// gives that cell's value. It returns the cells so derived.
func attack(r *Release) map[[2]int]float64 {
	var vars [][2]int
	index := map[[2]int]int{}
	for i, row := range r.Cells {
		for j, c := range row {
			if c.Suppressed != "" {
				index[[2]int{i, j}] = len(vars)
				vars = append(vars, [2]int{i, j})
			}
		}
	}
	var m [][]float64 // coefficients, then the right-hand side
	add := func(total int64, in func(i, j int) bool) {
		e := make([]float64, len(vars)+1)
		rhs := float64(total)
		for i, row := range r.Cells {
			for j, c := range row {
				if !in(i, j) {
					continue
				}
				if c.Suppressed != "" {
					e[index[[2]int{i, j}]] = 1
				} else {
					rhs -= float64(c.Count)
				}
			}
		}
		e[len(vars)] = rhs
		m = append(m, e)
	}
	add(r.Total, func(int, int) bool { return true })
	for i, t := range r.RowTotals {
		add(t, func(a, _ int) bool { return a == i })
	}
	for j, t := range r.ColTotals {
		add(t, func(_, b int) bool { return b == j })
	}
	// Reduced row echelon form.
	row := 0
	for c := 0; c < len(vars) && row < len(m); c++ {
		p := -1
		for i := row; i < len(m); i++ {
			if math.Abs(m[i][c]) > 1e-9 && (p < 0 || math.Abs(m[i][c]) > math.Abs(m[p][c])) {
				p = i
			}
		}
		if p < 0 {
			continue
		}
		m[row], m[p] = m[p], m[row]
		pv := m[row][c]
		for k := range m[row] {
			m[row][k] /= pv
		}
		for i := range m {
			if i != row && math.Abs(m[i][c]) > 1e-9 {
				f := m[i][c]
				for k := range m[i] {
					m[i][k] -= f * m[row][k]
				}
			}
		}
		row++
	}
	derived := map[[2]int]float64{}
	for _, e := range m {
		nonzero := -1
		for k := 0; k < len(vars); k++ {
			if math.Abs(e[k]) > 1e-9 {
				if nonzero >= 0 {
					nonzero = -2
					break
				}
				nonzero = k
			}
		}
		if nonzero >= 0 {
			derived[vars[nonzero]] = e[len(vars)]
		}
	}
	return derived
}

func drawTable(t *rapid.T) Table {
	rows, cols := rapid.IntRange(1, 5).Draw(t, "rows"), rapid.IntRange(1, 5).Draw(t, "cols")
	tb := Table{}
	for i := range rows {
		tb.Rows = append(tb.Rows, fmt.Sprint("r", i))
	}
	for j := range cols {
		tb.Cols = append(tb.Cols, fmt.Sprint("c", j))
	}
	for range rows {
		row := make([]int64, cols)
		for j := range row {
			// Mostly small counts: the adversarial case.
			row[j] = int64(rapid.SampledFrom([]int{0, 1, 2, 3, 4, 5, 6, 9, 20}).Draw(t, "count"))
		}
		tb.Counts = append(tb.Counts, row)
	}
	return tb
}

// TestNoSmallCellPublishedNoneDerivable: for random tables, mostly of
// small counts, no published cell is below k (zero aside), and no
// suppressed cell can be derived from the totals and the visible cells.
func TestNoSmallCellPublishedNoneDerivable(t *testing.T) {
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("500") // a security property: more than the default (a few seconds)
		defer func() { _ = f.Value.Set(f.DefValue) }()
	}
	rapid.Check(t, func(t *rapid.T) {
		tb := drawTable(t)
		k := rapid.IntRange(2, 7).Draw(t, "k")
		r, err := Make(tb, Options{K: k}, nil)
		if err != nil {
			t.Fatal(err)
		}
		single := len(tb.Rows) == 1 && len(tb.Cols) == 1
		for i, row := range r.Cells {
			for j, c := range row {
				if c.Suppressed == "" && c.Count > 0 && c.Count < int64(k) {
					t.Fatalf("cell (%d,%d) = %d published below k=%d", i, j, c.Count, k)
				}
				if c.Suppressed == "" && c.Count != tb.Counts[i][j] {
					t.Fatalf("cell (%d,%d) published as %d, is %d", i, j, c.Count, tb.Counts[i][j])
				}
			}
		}
		if single {
			return // one cell is its own total: nothing can hide it
		}
		for cell, v := range attack(r) {
			t.Fatalf("suppressed cell %v derivable as %v (true %d) from %+v", cell, v, tb.Counts[cell[0]][cell[1]], r)
		}
	})
}

// TestAttackFindsPrimarySuppressionAlone: without complementary
// suppression the attack derives a cell, so the property above can fail.
func TestAttackFindsPrimarySuppressionAlone(t *testing.T) {
	r := &Release{
		Cells:     [][]Cell{{{Suppressed: "small"}, {Count: 10}}, {{Count: 7}, {Count: 8}}},
		RowTotals: []int64{13, 15}, ColTotals: []int64{10, 18}, Total: 28,
	}
	got := attack(r)
	if v, ok := got[[2]int{0, 0}]; !ok || math.Round(v) != 3 {
		t.Fatalf("attack derived %v, want cell (0,0) = 3", got)
	}
	// Make does better on the same table.
	rel, err := Make(Table{Rows: []string{"a", "b"}, Cols: []string{"x", "y"}, Counts: [][]int64{{3, 10}, {7, 8}}}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := attack(rel); len(d) != 0 || rel.Applied.ComplementarySuppress == 0 {
		t.Fatalf("Make's release: derived %v, complementary %d", d, rel.Applied.ComplementarySuppress)
	}
}

func TestBadOptions(t *testing.T) {
	tb := Table{Rows: []string{"a"}, Cols: []string{"x"}, Counts: [][]int64{{3}}}
	if _, err := Make(tb, Options{K: 1}, nil); !errors.Is(err, ErrBadK) {
		t.Errorf("k=1: %v", err)
	}
	for _, eps := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if _, err := Make(tb, Options{Mechanism: Laplace, Epsilon: eps}, rand.New(rand.NewPCG(1, 2))); !errors.Is(err, ErrBadEpsilon) {
			t.Errorf("epsilon %v: %v", eps, err)
		}
	}
	if _, err := Make(Table{Rows: []string{"a"}, Cols: []string{"x"}, Counts: [][]int64{{-1}}}, Options{}, nil); !errors.Is(err, ErrBadTable) {
		t.Errorf("negative count: %v", err)
	}
}

// TestNoiseDistribution: with a fixed seed, the noise of each mechanism
// has mean about zero and the variance of its distribution (Laplace:
// 2/epsilon^2, plus 1/12 for the rounding; two-sided geometric:
// 2*alpha/(1-alpha)^2), and the geometric's probabilities follow
// alpha^|k|. The bounds are generous (several standard errors), and the
// seed fixed, so the test does not flake.
func TestNoiseDistribution(t *testing.T) {
	const n = 200_000
	for _, tc := range []struct {
		m   Mechanism
		eps float64
	}{{Laplace, 0.5}, {Laplace, 1}, {Geometric, 0.5}, {Geometric, 1}} {
		rng := rand.New(rand.NewPCG(42, 7))
		var sum, sumSq float64
		hist := map[int64]int{}
		for range n {
			x := Noise(tc.m, tc.eps, rng)
			sum += float64(x)
			sumSq += float64(x * x)
			hist[x]++
		}
		mean, variance := sum/n, sumSq/n-(sum/n)*(sum/n)
		want := 2/(tc.eps*tc.eps) + 1.0/12
		if tc.m == Geometric {
			alpha := math.Exp(-tc.eps)
			want = 2 * alpha / ((1 - alpha) * (1 - alpha))
		}
		if math.Abs(mean) > 5*math.Sqrt(want/n) {
			t.Errorf("%s eps=%v: mean %.4f, want about 0", tc.m, tc.eps, mean)
		}
		if math.Abs(variance-want)/want > 0.05 {
			t.Errorf("%s eps=%v: variance %.3f, want %.3f", tc.m, tc.eps, variance, want)
		}
		if tc.m == Geometric {
			// P(1)/P(0) = alpha.
			alpha := math.Exp(-tc.eps)
			if ratio := float64(hist[1]) / float64(hist[0]); math.Abs(ratio-alpha) > 0.03 {
				t.Errorf("geometric eps=%v: P(1)/P(0) = %.3f, want %.3f", tc.eps, ratio, alpha)
			}
		}
	}
}

// TestNoisyReleaseIsConsistent: with noise, the totals are the sums of the
// noisy cells and no cell is negative.
func TestNoisyReleaseIsConsistent(t *testing.T) {
	tb := Table{Rows: []string{"a", "b", "c"}, Cols: []string{"x", "y"}, Counts: [][]int64{{30, 2}, {0, 50}, {12, 9}}}
	r, err := Make(tb, Options{Mechanism: Geometric, Epsilon: 0.5}, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Applied.Mechanism != Geometric || r.Applied.Epsilon != 0.5 || r.Applied.K != DefaultK {
		t.Fatalf("applied %+v", r.Applied)
	}
	if d := attack(r); len(d) != 0 {
		t.Fatalf("derivable: %v", d)
	}
}
