package iodef_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports: the package is a conversion that the CLI, the node and a
// service can all use, so it imports the record and its schema (and the
// protobuf runtime the schema is made of), nothing that uses it, and none
// of the rest of the module either, which internal/layout would allow a
// package of formats/. What record itself imports is record's to keep.
func TestImports(t *testing.T) {
	const self = "github.com/irxfed/irx/formats/iodef"
	allowed := map[string]bool{"github.com/irxfed/irx/record": true, "github.com/irxfed/irx/proto/irx/v1": true}
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, self).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		std := !strings.Contains(strings.Split(p, "/")[0], ".")
		if !std && !allowed[p] && !strings.HasPrefix(p, "google.golang.org/protobuf/") {
			t.Errorf("%s imports %s: only the standard library, the protobuf runtime, record and proto/irx/v1", self, p)
		}
	}
}
