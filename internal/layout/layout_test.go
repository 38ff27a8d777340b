// Package layout holds the test that keeps irx's import graph the one
// docs/architecture.md draws: imports point one way,
//
//	cmd -> federation -> {policy, formats} -> record -> proto
//	cmd -> node       -> {policy, formats} -> record -> proto
//
// with pki beside record, used from node and federation up; errdefs at the
// bottom and errdefs/errgrpc (the one gRPC mapping) above record; federation
// reaching the node only through the interfaces it defines (cmd/irxd wires
// them); and nothing importing cmd or test.
package layout

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/irxfed/irx/"

// allowed lists, for each package (by path, or path prefix ending in /),
// the packages of this module it may import (same forms). The first entry
// that matches a package decides.
var allowed = []struct {
	pkg     string
	imports []string
}{
	{"proto/irx/v1", nil},
	{"errdefs/errgrpc", []string{"errdefs", "record", "proto/irx/v1"}},
	{"errdefs", nil},
	{"internal/wire", []string{"proto/irx/v1"}},
	{"record", []string{"errdefs", "proto/irx/v1"}},
	{"pki", nil},
	{"policy/policytest", []string{"policy", "record", "proto/irx/v1"}},
	{"policy/release", nil},
	{"policy", []string{"errdefs", "record", "proto/irx/v1"}},
	{"formats/", []string{"formats/", "errdefs", "record", "proto/irx/v1"}},
	{"node/internal/", nil},
	{"node/", []string{"node/", "internal/wire", "policy", "formats/", "errdefs", "errdefs/errgrpc", "record", "pki", "proto/irx/v1"}},
	{"node", []string{"node/", "internal/wire", "policy", "formats/", "errdefs", "errdefs/errgrpc", "record", "pki", "proto/irx/v1"}},
	{"federation", []string{"internal/wire", "policy", "formats/", "errdefs", "errdefs/errgrpc", "record", "pki", "proto/irx/v1"}},
	{"cmd/internal/", nil},
	{"cmd/", []string{"cmd/internal/", "federation", "node", "node/fsm", "node/backup", "internal/wire", "policy", "policy/release", "formats/", "errdefs", "errdefs/errgrpc", "record", "pki", "proto/irx/v1"}},
	{"test/irxdtest", []string{"pki", "record", "proto/irx/v1"}},
	{"test/", []string{"test/irxdtest", "test/atrest", "internal/wire", "federation", "node", "node/", "policy", "formats/", "errdefs", "errdefs/errgrpc", "record", "pki", "proto/irx/v1"}},
	{"internal/", nil},
}

// matches reports whether path is pattern or, for a pattern ending in /,
// under it.
func matches(pattern, path string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(path, pattern)
	}
	return path == pattern
}

// rule is the list of allowed imports for pkg; false when no rule names it.
func rule(pkg string) ([]string, bool) {
	for _, r := range allowed {
		if matches(r.pkg, pkg) {
			return r.imports, true
		}
	}
	return nil, false
}

// check returns what is wrong with the imports of pkg (paths relative to
// the module).
func check(pkg string, imports []string) []string {
	ok, known := rule(pkg)
	if !known {
		return []string{fmt.Sprintf("%s: no rule says what it may import; add it to allowed", pkg)}
	}
	var bad []string
	for _, imp := range imports {
		if !slices.ContainsFunc(ok, func(p string) bool { return matches(p, imp) }) {
			bad = append(bad, fmt.Sprintf("%s imports %s, against the layout (docs/architecture.md)", pkg, imp))
		}
	}
	return bad
}

// TestImportDirection lists every package of the module with the imports
// of its non-test files and checks each against allowed.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(p.ImportPath, module)
		var own []string
		for _, imp := range p.Imports {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				own = append(own, rel)
			}
		}
		for _, problem := range check(pkg, own) {
			t.Error(problem)
		}
		seen++
	}
	if seen < 15 {
		t.Fatalf("go list found %d packages: the test is not looking at the module", seen)
	}
}

// TestTheRulesRefuse: the rules refuse the imports the layout forbids, so
// TestImportDirection can fail.
func TestTheRulesRefuse(t *testing.T) {
	for _, c := range []struct{ pkg, imp string }{
		{"federation", "node"},
		{"federation", "node/fsm"},
		{"policy", "node/fsm"},
		{"record", "policy"},
		{"node/fsm", "federation"},
		{"node", "cmd/irxctl"},
		{"federation", "test/irxdtest"},
		{"formats/iodef", "node"},
		{"pki", "record"},
	} {
		if len(check(c.pkg, []string{c.imp})) == 0 {
			t.Errorf("%s may import %s, which the layout forbids", c.pkg, c.imp)
		}
	}
	if len(check("federation", []string{"policy", "record"})) != 0 {
		t.Error("federation may not import policy and record, which the layout allows")
	}
}

// TestDaemonDrawsNoCharts: the charting library (and the fonts and
// encoders it brings) is for irxctl alone; the daemon must not link it.
func TestDaemonDrawsNoCharts(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"cmd/irxd").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps found %d packages: the test is not looking at irxd", len(deps))
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "gonum.org/v1/plot") {
			t.Errorf("cmd/irxd depends on %s", dep)
		}
	}
}
