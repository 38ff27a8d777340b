package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/irxfed/irx/test/irxdtest"
)

// TestStatsCommands: stats get prints the counts, stats chart draws them
// (an SVG of the size it says, with a bar per class present), stats
// publish writes a release with no cell below k, and a release whose
// epsilon would pass the dataset's budget is refused with nothing written.
func TestStatsCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	dir := t.TempDir()
	for i := range 9 {
		class := "fraud/phishing"
		if i%3 == 0 {
			class = "malicious-code/c2-server"
		}
		c, ty, _ := strings.Cut(class, "/")
		site := ""
		if i%3 == 0 {
			site = `, "reporting_site": {"name": "a clinic", "sector": "SECTOR_HEALTH", "country": "NL"}`
		}
		inc := fmt.Sprintf(`{"tlp": "TLP_GREEN", "taxonomy": {"class": %q, "type": %q}, "report_time": "2026-03-0%dT10:00:00Z"%s}`, c, ty, 1+i%3, site)
		mustSucceed(t, ctl("", "incident", "create", "-f", writeFile(t, filepath.Join(dir, fmt.Sprintf("i%d.json", i)), inc)))
	}
	r := mustSucceed(t, ctl("", "stats", "get", "--by", "class", "--from", "2026-01-01", "--to", "2026-07-01"))
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "2026-") {
			rows = append(rows, f)
		}
	}
	if len(rows) != 2 || rows[0][0] != "2026-03-01" || rows[0][1] != "fraud" || rows[0][2] != "6" || rows[1][1] != "malicious-code" || rows[1][2] != "3" {
		t.Fatalf("stats get:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "stats", "get", "--by", "sector,country", "--from", "2026-01-01", "--to", "2026-07-01"))
	if !strings.Contains(r.stdout, "SECTOR") || !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l)[:min(4, len(strings.Fields(l)))], []string{"2026-03-01", "health", "NL", "3"})
	}) || !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l)[:min(4, len(strings.Fields(l)))], []string{"2026-03-01", "-", "-", "6"})
	}) {
		t.Fatalf("stats get --by sector,country:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "stats", "get", "--by", "colour"), 2, "--by")
	mustFail(t, ctl("", "stats", "get", "--from", "2026-03-02", "--to", "2026-03-01"), 1, "InvalidArgument", "end_time")

	// The chart: an SVG with a legend entry per class present; a PNG of
	// the size asked; an empty range drawn empty, saying so.
	svgPath := filepath.Join(dir, "chart.svg")
	mustSucceed(t, ctl("", "stats", "chart", "--out", svgPath, "--from", "2026-01-01", "--to", "2026-07-01"))
	data, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]int{}
	for _, s := range svgTexts(t, data) {
		texts[s]++
	}
	if texts["fraud"] != 1 || texts["malicious-code"] != 1 || texts["2026-03-01"] != 1 {
		t.Fatalf("chart texts %v", texts)
	}
	pngPath := filepath.Join(dir, "trend.img")
	mustSucceed(t, ctl("", "stats", "chart", "--out", pngPath, "--format", "png", "--kind", "trend", "--by", "tlp", "--size", "640x480", "--from", "2026-01-01", "--to", "2026-07-01"))
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 640 || img.Bounds().Dy() != 480 {
		t.Fatalf("trend PNG: %v", err)
	}
	r = mustSucceed(t, ctl("", "stats", "chart", "--out", filepath.Join(dir, "empty.svg"), "--from", "2025-01-01", "--to", "2025-03-01"))
	if !strings.Contains(r.stdout, "0 incidents") {
		t.Fatalf("empty chart: %s", r.stdout)
	}
	mustFail(t, ctl("", "stats", "chart", "--out", filepath.Join(dir, "chart.gif")), 2, "--out")
	mustFail(t, ctl("", "stats", "chart", "--out", svgPath, "--kind", "pie"), 2, "--kind")

	// The public release: k=5 suppresses malicious-code's 3, and one more
	// cell so that the totals do not give it away.
	out := filepath.Join(dir, "release")
	mustSucceed(t, ctl("", "stats", "publish", "--out", out, "--by", "class", "--from", "2026-02-01", "--to", "2026-05-01"))
	var pub struct {
		Cells [][]struct {
			Count      int64
			Suppressed string
		}
		Applied struct{ K int }
	}
	js, err := os.ReadFile(filepath.Join(out, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &pub); err != nil {
		t.Fatal(err)
	}
	suppressed := 0
	for _, row := range pub.Cells {
		for _, c := range row {
			if c.Suppressed == "" && c.Count > 0 && c.Count < 5 {
				t.Fatalf("published a cell of %d below k=5: %s", c.Count, js)
			}
			if c.Suppressed != "" {
				suppressed++
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "release.svg")); pub.Applied.K != 5 || suppressed < 2 || err != nil {
		t.Fatalf("release: k %d, %d suppressed, chart %v:\n%s", pub.Applied.K, suppressed, err, js)
	}
	f, err = os.Open(filepath.Join(out, "release.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 5 || strings.Join(recs[0], ",") != "period,fraud,malicious-code,total" || strings.Contains(strings.Join(recs[2], ","), ",3,") {
		t.Fatalf("release.csv: %v, %v", recs, err)
	}

	// Differential privacy: the budget is spent and a release past it is
	// refused, writing nothing.
	dp := filepath.Join(dir, "dp")
	mustSucceed(t, ctl("", "stats", "publish", "--out", dp, "--format", "png", "--epsilon", "0.6", "--dataset", "monthly", "--budget", "1", "--from", "2026-02-01", "--to", "2026-05-01"))
	if pngData, err := os.ReadFile(filepath.Join(dp, "release.png")); err != nil {
		t.Fatal(err)
	} else if _, err := png.Decode(bytes.NewReader(pngData)); err != nil {
		t.Fatalf("release.png: %v", err)
	}
	if js, err := os.ReadFile(filepath.Join(dp, "release.json")); err != nil || !strings.Contains(string(js), `"epsilon": 0.6`) || !strings.Contains(string(js), `"mechanism": "geometric"`) {
		t.Fatalf("dp release: %s, %v", js, err)
	}
	refused := filepath.Join(dir, "refused")
	mustFail(t, ctl("", "stats", "publish", "--out", refused, "--epsilon", "0.6", "--dataset", "monthly", "--budget", "1"), 1, "ResourceExhausted", "monthly")
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Fatalf("a refused release wrote %s: %v", refused, err)
	}
	mustFail(t, ctl("", "stats", "publish", "--out", refused, "--epsilon", "0.1", "--dataset", "monthly", "--budget", "5"), 1, "FailedPrecondition", "fixed")
	mustSucceed(t, ctl("", "stats", "publish", "--out", refused, "--epsilon", "0.4", "--dataset", "monthly", "--budget", "1"))
	mustFail(t, ctl("", "stats", "publish", "--out", dir, "--k", "1"), 2, "--k")
}
