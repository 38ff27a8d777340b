package main

import (
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartKind is what a chart draws: stacked bars per period, or a line per
// series over the periods (a trend).
type chartKind string

const (
	chartBars  chartKind = "bars"
	chartTrend chartKind = "trend"
)

// chartFormat is the file format of a chart.
type chartFormat string

const (
	formatSVG chartFormat = "svg"
	formatPNG chartFormat = "png"
)

// chartDPI is the resolution a PNG is drawn at; sizes are given in pixels
// and converted to the points the plot library lays out in.
const chartDPI = 96

// chart is what a chart shows: Counts[i][j] is the count of period Rows[i]
// in series Cols[j].
type chart struct {
	Title         string
	Rows, Cols    []string
	Counts        [][]int64
	Kind          chartKind
	Width, Height int // pixels
}

// chartPalette is colour-blind safe (Okabe and Ito, "Color Universal
// Design"); past its eight colours the series repeat them with dashed
// lines, and every trend line has its own marker shape as well, so no
// series is told apart by colour alone.
var chartPalette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, {0xE6, 0x9F, 0x00, 0xff}, {0x00, 0x9E, 0x73, 0xff}, {0xCC, 0x79, 0xA7, 0xff},
	{0x56, 0xB4, 0xE9, 0xff}, {0xD5, 0x5E, 0x00, 0xff}, {0xF0, 0xE4, 0x42, 0xff}, {0x00, 0x00, 0x00, 0xff},
}

var chartGlyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
	draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.PlusGlyph{},
}

func seriesStyle(j int) (color.RGBA, []vg.Length) {
	c := chartPalette[j%len(chartPalette)]
	if j/len(chartPalette)%2 == 1 {
		return c, []vg.Length{vg.Points(4), vg.Points(2)}
	}
	return c, nil
}

// chartFormatOf picks the format: the one named, else the file's
// extension.
func chartFormatOf(file, named string) (chartFormat, error) {
	f := strings.ToLower(named)
	if f == "" {
		f = strings.TrimPrefix(strings.ToLower(filepath.Ext(file)), ".")
	}
	switch chartFormat(f) {
	case formatSVG, formatPNG:
		return chartFormat(f), nil
	}
	if named != "" {
		return "", usageErrorf("--format %q: use svg or png", named)
	}
	return "", usageErrorf("--out %q: name a .svg or .png file, or give --format", file)
}

// parseChartSize reads WIDTHxHEIGHT in pixels.
func parseChartSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if !ok || errW != nil || errH != nil || w < 200 || h < 150 || w > 8000 || h > 8000 {
		return 0, 0, usageErrorf("--size %q: want WIDTHxHEIGHT in pixels, each from 200x150 to 8000x8000", s)
	}
	return w, h, nil
}

// total is the sum of the chart's counts.
func (c *chart) total() int64 {
	var n int64
	for _, row := range c.Counts {
		for _, v := range row {
			n += v
		}
	}
	return n
}

// plot lays the chart out. A chart with no incidents is drawn empty, with
// a title that says so: a release of an empty range is still a release.
func (c *chart) plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = c.Title
	p.Y.Label.Text = "incidents"
	p.Y.Min = 0
	p.NominalX(c.Rows...)
	if len(c.Rows) > 12 {
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	p.Legend.Top = true
	if c.total() == 0 {
		p.Title.Text = c.Title + ": no incidents"
		p.X.Min, p.X.Max, p.Y.Max = -0.5, math.Max(float64(len(c.Rows))-0.5, 0.5), 1
		return p, nil
	}
	values := func(j int) plotter.Values {
		v := make(plotter.Values, len(c.Rows))
		for i := range c.Rows {
			v[i] = float64(max(c.Counts[i][j], 0))
		}
		return v
	}
	var peak float64
	switch c.Kind {
	case chartTrend:
		for j, name := range c.Cols {
			xys := make(plotter.XYs, len(c.Rows))
			for i, v := range values(j) {
				xys[i] = plotter.XY{X: float64(i), Y: v}
				peak = max(peak, v)
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, fmt.Errorf("series %s: %w", name, err)
			}
			col, dashes := seriesStyle(j)
			line.Color, line.Dashes, line.Width = col, dashes, vg.Points(1.5)
			points.Color, points.Shape = col, chartGlyphs[j%len(chartGlyphs)]
			p.Add(line, points)
			p.Legend.Add(name, line, points)
		}
		p.X.Min, p.X.Max = -0.5, float64(len(c.Rows))-0.5
	default:
		width := vg.Length(float64(c.Width)*0.6/float64(max(len(c.Rows), 1))) * vg.Inch / chartDPI
		var below *plotter.BarChart
		sums := make([]float64, len(c.Rows))
		for j, name := range c.Cols {
			v := values(j)
			bars, err := plotter.NewBarChart(v, width)
			if err != nil {
				return nil, fmt.Errorf("series %s: %w", name, err)
			}
			col, dashes := seriesStyle(j)
			bars.Color = col
			bars.LineStyle.Width = vg.Points(0.5)
			if dashes != nil {
				bars.LineStyle.Width, bars.LineStyle.Dashes = vg.Points(1.5), dashes
			}
			if below != nil {
				bars.StackOn(below)
			}
			below = bars
			for i := range v {
				sums[i] += v[i]
				peak = max(peak, sums[i])
			}
			p.Add(bars)
			p.Legend.Add(name, bars)
		}
	}
	// Headroom for the legend, which is drawn inside the plot's top right.
	p.Y.Max = peak * (1.15 + 0.06*float64(len(c.Cols)))
	return p, nil
}

// write draws the chart in the format asked.
func (c *chart) write(w io.Writer, format chartFormat) error {
	p, err := c.plot()
	if err != nil {
		return err
	}
	width := vg.Length(c.Width) * vg.Inch / chartDPI
	height := vg.Length(c.Height) * vg.Inch / chartDPI
	var canvas vg.CanvasWriterTo
	switch format {
	case formatPNG:
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(chartDPI))}
	case formatSVG:
		canvas = vgsvg.New(width, height)
	default:
		return fmt.Errorf("chart format %q: use svg or png", format)
	}
	p.Draw(draw.New(canvas))
	_, err = canvas.WriteTo(w)
	return err
}

// chartFlags are the flags that say how a chart looks.
type chartFlags struct {
	format, size, kind *string
}

// addChartFlags adds --format and --size, and --kind where the command
// lets the user choose; defFormat is the format when neither --format nor
// the file's extension names one.
func addChartFlags(fs *flag.FlagSet, defFormat string, withKind bool) chartFlags {
	f := chartFlags{
		format: fs.String("format", defFormat, "the chart's format: svg or png (default: the file's extension)"),
		size:   fs.String("size", "900x420", "the chart's size in pixels, WIDTHxHEIGHT"),
	}
	if withKind {
		f.kind = fs.String("kind", string(chartBars), "bars: stacked bars per period; trend: a line per series over the periods")
	}
	return f
}

// chartLook is what the chart flags chose.
type chartLook struct {
	format        chartFormat
	kind          chartKind
	width, height int
}

// look reads the flags; file is the file the chart goes to ("" when the
// command names the file itself).
func (f chartFlags) look(file string) (chartLook, error) {
	l := chartLook{kind: chartBars}
	var err error
	if l.format, err = chartFormatOf(file, *f.format); err != nil {
		return chartLook{}, err
	}
	if l.width, l.height, err = parseChartSize(*f.size); err != nil {
		return chartLook{}, err
	}
	if f.kind != nil {
		switch k := chartKind(*f.kind); k {
		case chartBars, chartTrend:
			l.kind = k
		default:
			return chartLook{}, usageErrorf("--kind %q: use bars or trend", *f.kind)
		}
	}
	return l, nil
}

// chart makes an empty chart of this look, its counts zero.
func (l chartLook) chart(title string, rows, cols []string) *chart {
	c := &chart{Title: title, Rows: rows, Cols: cols, Kind: l.kind, Width: l.width, Height: l.height, Counts: make([][]int64, len(rows))}
	for i := range c.Counts {
		c.Counts[i] = make([]int64, len(cols))
	}
	return c
}
