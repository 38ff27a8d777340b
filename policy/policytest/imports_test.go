package policytest_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImportIt: the reference implementation is for tests. A
// program that linked it would carry a second disclosure engine, slow and
// reviewed as test code, one call away from being used for real.
func TestOnlyTestsImportIt(t *testing.T) {
	const self = "github.com/irxfed/irx/policy/policytest"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "github.com/irxfed/irx/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		if pkg != self && strings.Contains(" "+deps+" ", " "+self+" ") {
			t.Errorf("%s imports %s, which only tests may", pkg, self)
		}
	}
}
