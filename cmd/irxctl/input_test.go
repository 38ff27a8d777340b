package main

import (
	"strings"
	"testing"
)

// A mistake in an incident's YAML is named by its line and column in the
// YAML, as policy files' are, not by a position in the JSON made from it.
func TestYAMLMistakesNameTheirLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "tlpp: TLP_AMBER\n", `x.yaml: line 1, column 1: unknown field "tlpp"`},
		{"unknown nested key", "tlp: TLP_AMBER\ntaxonomy:\n  class: malicious-code\n  typ: c2-server\n", `x.yaml: line 4, column 3: unknown field "typ"`},
		{"bad enum value", "taxonomy: {class: other, type: other}\ntlp: TLP_AMBERR\n", `x.yaml: line 2, column 6: invalid value for enum field tlp: "TLP_AMBERR"`},
		{"in a list item after wide characters", "descriptions:\n  - lang: en\n    text: \"héllo wörld ✓ 事件\"\n  - lang: de\n    txt: hallo\n", `x.yaml: line 5, column 5: unknown field "txt"`},
		{"wrong type", "tlp: TLP_AMBER\nvictim_hosts: yes\n", `x.yaml: line 2, column 15: `},
		{"syntax", "tlp: TLP_AMBER\n taxonomy:\n", `x.yaml: line 2: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIncidentData("x.yaml", "x.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%q, want it to start with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "proto:") || strings.Contains(err.Error(), "(line") {
				t.Errorf("%q names a position in the JSON", err)
			}
		})
	}
}
