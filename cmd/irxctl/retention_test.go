package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestNormaliseKeeps(t *testing.T) {
	for in, want := range map[string]string{
		"90d": "7776000s", "1y": "31536000s", "36h": "129600s", "1h30m": "5400s", "3600s": "3600s", "0.5d": "43200s",
	} {
		out, err := normaliseKeeps([]byte(`{"rules":[{"name":"r","keep":"` + in + `"}]}`))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var doc struct{ Rules []struct{ Keep string } }
		if err := json.Unmarshal(out, &doc); err != nil || doc.Rules[0].Keep != want {
			t.Errorf("keep %s became %s (%v), want %s", in, out, err, want)
		}
	}
	if _, err := normaliseKeeps([]byte(`{"rules":[{"keep":"ninety days"}]}`)); err == nil || !strings.Contains(err.Error(), "rules[0].keep") {
		t.Errorf("a keep that is no duration: %v", err)
	}
}
