package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestImportDefaultsConfig: the import section reaches the node's
// configuration, and a value it cannot use is refused naming its key.
func TestImportDefaultsConfig(t *testing.T) {
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "irxd.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := func(string) string { return "" }
	o, err := parseOptions([]string{"--config", write("import:\n  default_tlp: amber+strict\n  default_taxonomy: other/undetermined\n")}, io.Discard, none)
	if err != nil {
		t.Fatal(err)
	}
	if d := o.node.Import; d.TLP != irxv1.Tlp_TLP_AMBER_STRICT || d.Taxonomy.GetClass() != "other" || d.Taxonomy.GetType() != "undetermined" {
		t.Errorf("import defaults %+v", d)
	}
	for body, want := range map[string]string{
		"import:\n  default_tlp: crimson\n":         "import.default_tlp",
		"import:\n  default_taxonomy: malware\n":    "import.default_taxonomy",
		"import:\n  default_taxonomy: other/spam\n": "import.default_taxonomy",
	} {
		if _, err := parseOptions([]string{"--config", write(body)}, io.Discard, none); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", body, err, want)
		}
	}
}
