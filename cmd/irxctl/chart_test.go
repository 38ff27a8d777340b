package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"strings"
	"testing"
)

// svgTexts returns the text of every <text> element of an SVG, failing the
// test when the document is not well-formed XML.
func svgTexts(t *testing.T, data []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	var texts []string
	inText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(tok)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return texts
}

func sampleChart(kind chartKind, cols ...string) *chart {
	rows := []string{"2026-01-01", "2026-02-01", "2026-03-01"}
	c := chartLook{kind: kind, width: 640, height: 360}.chart("Incidents per month", rows, cols)
	for i := range rows {
		for j := range cols {
			c.Counts[i][j] = int64(1 + i*j)
		}
	}
	return c
}

// TestChartPNG: the PNG decodes and has the size asked, for both kinds.
func TestChartPNG(t *testing.T) {
	for _, kind := range []chartKind{chartBars, chartTrend} {
		c := sampleChart(kind, "fraud", "malicious-code")
		c.Width, c.Height = 777, 333
		var b bytes.Buffer
		if err := c.write(&b, formatPNG); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		img, err := png.Decode(&b)
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", kind, err)
		}
		if got := img.Bounds().Size(); got.X != 777 || got.Y != 333 {
			t.Fatalf("%s: PNG is %v, asked 777x333", kind, got)
		}
	}
}

// TestChartSVGLegend: the SVG parses as XML and has one legend entry per
// series, including past the palette's eight colours, for both kinds.
func TestChartSVGLegend(t *testing.T) {
	classes := []string{"abusive-content", "availability", "fraud", "information-content-security", "information-gathering",
		"intrusion-attempts", "intrusions", "malicious-code", "other", "test", "vulnerable"}
	for _, kind := range []chartKind{chartBars, chartTrend} {
		var b bytes.Buffer
		if err := sampleChart(kind, classes...).write(&b, formatSVG); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		seen := map[string]int{}
		for _, s := range svgTexts(t, b.Bytes()) {
			seen[s]++
		}
		for _, class := range classes {
			if seen[class] != 1 {
				t.Errorf("%s: legend entries for %q: %d, want 1", kind, class, seen[class])
			}
		}
		if seen["Incidents per month"] != 1 || seen["2026-02-01"] != 1 {
			t.Errorf("%s: title or period label missing: %v", kind, seen)
		}
	}
}

// TestChartEmpty: a chart of no incidents is drawn, empty, its title
// saying so, in both formats.
func TestChartEmpty(t *testing.T) {
	c := chartLook{kind: chartBars, width: 400, height: 300}.chart("Incidents per month", []string{"2026-01-01", "2026-02-01"}, []string{"all"})
	var b bytes.Buffer
	if err := c.write(&b, formatSVG); err != nil {
		t.Fatal(err)
	}
	if texts := strings.Join(svgTexts(t, b.Bytes()), "|"); !strings.Contains(texts, "Incidents per month: no incidents") {
		t.Fatalf("empty chart's texts: %s", texts)
	}
	b.Reset()
	if err := c.write(&b, formatPNG); err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(&b); err != nil || img.Bounds().Dx() != 400 {
		t.Fatalf("empty PNG: %v", err)
	}
}

func TestChartFlags(t *testing.T) {
	for _, tc := range []struct {
		file, format string
		want         chartFormat
		ok           bool
	}{
		{"a/b.svg", "", formatSVG, true},
		{"a/b.PNG", "", formatPNG, true},
		{"a/b.chart", "png", formatPNG, true},
		{"a/b.svg", "png", formatPNG, true},
		{"a/b.jpg", "", "", false},
		{"a/b.svg", "pdf", "", false},
	} {
		got, err := chartFormatOf(tc.file, tc.format)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("chartFormatOf(%q, %q) = %q, %v", tc.file, tc.format, got, err)
		}
	}
	for _, s := range []string{"900", "0x10", "10x10", "axb", "9000x400", "-900x420"} {
		if _, _, err := parseChartSize(s); err == nil {
			t.Errorf("parseChartSize(%q) accepted", s)
		}
	}
	if w, h, err := parseChartSize("1200x600"); err != nil || w != 1200 || h != 600 {
		t.Errorf("parseChartSize(1200x600) = %d, %d, %v", w, h, err)
	}
}
