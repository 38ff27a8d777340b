package record

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func TestCheckText(t *testing.T) {
	for _, c := range []struct {
		s          string
		id, text   bool // accepted as an identifier, as free text
		wantInDesc string
	}{
		{"ws17.example.edu", true, true, ""},
		{"Grüße aus Zürich – 東京", true, true, ""},
		{"", true, true, ""},
		{"two\nlines\tand\r\n", false, true, "line feed"},
		{"a\x00b", false, false, "NUL (U+0000)"},
		{"\x1b[31mred", false, false, "ESC (U+001B)"},
		{"bell\x07", false, false, "U+0007"},
		{"del\x7f", false, false, "DEL"},
		{"c1\u0085next", false, false, "C1 control"},
		{"c1\u009b", false, false, "C1 control"},
		{"\u009f", false, false, "C1 control"},
		{"evil\u202egnp.exe", false, false, "bidirectional"},
		{"\u202a", false, false, "bidirectional"},
		{"iso\u2066late\u2069", false, false, "bidirectional"},
		{"\u2068", false, false, "bidirectional"},
		{"mark\u200f", false, true, "directional mark"},
		{"mark\u200e", false, true, "directional mark"},
		{"alm\u061c", false, true, "directional mark"},
		{"bad\xffutf8", false, false, "not valid UTF-8"},
		{"truncated\xe2\x80", false, false, "not valid UTF-8"},
		{"\u2029 para sep is not a control", true, true, ""},
	} {
		for _, k := range []TextKind{Identifier, FreeText} {
			want := c.id
			if k == FreeText {
				want = c.text
			}
			why := CheckText(c.s, k)
			if (why == "") != want {
				t.Errorf("CheckText(%q, %v) = %q, want accepted %v", c.s, k, why, want)
			}
			if why != "" && !strings.Contains(why, c.wantInDesc) {
				t.Errorf("CheckText(%q, %v) = %q, want it to name %q", c.s, k, why, c.wantInDesc)
			}
		}
	}
}

// stringFields lists every string field reachable from md, with the path
// of descriptors to it (each message once per path, no recursion).
func stringFields(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor, seen map[protoreflect.FullName]bool, out *[][]protoreflect.FieldDescriptor) {
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	defer delete(seen, md.FullName())
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		p := append(slices.Clone(path), fd)
		switch {
		case fd.Kind() == protoreflect.StringKind:
			*out = append(*out, p)
		case fd.Message() != nil && !fd.IsMap():
			stringFields(fd.Message(), p, seen, out)
		}
	}
}

// setAt sets the string at path in m to v, making one element of every
// list on the way, and returns the path as a violation names it.
func setAt(m protoreflect.Message, path []protoreflect.FieldDescriptor, v string) string {
	var name strings.Builder
	name.WriteString("incident")
	for i, fd := range path {
		name.WriteString("." + string(fd.Name()))
		last := i == len(path)-1
		if fd.IsList() {
			name.WriteString("[0]")
			l := m.Mutable(fd).List()
			if last {
				l.Append(protoreflect.ValueOfString(v))
				return name.String()
			}
			e := l.NewElement()
			l.Append(e)
			m = e.Message()
			continue
		}
		if last {
			m.Set(fd, protoreflect.ValueOfString(v))
			return name.String()
		}
		m = m.Mutable(fd).Message()
	}
	return name.String()
}

// TestRecordStringsCoverSchema puts a bad character into every string
// field of the record schema, one field at a time, and requires Validate
// to refuse it naming that field; and a line break into every one, which
// only the free-text fields may hold.
func TestRecordStringsCoverSchema(t *testing.T) {
	var fields [][]protoreflect.FieldDescriptor
	stringFields((&irxv1.Incident{}).ProtoReflect().Descriptor(), nil, map[protoreflect.FullName]bool{}, &fields)
	if len(fields) < 70 {
		t.Fatalf("found only %d string fields", len(fields))
	}
	freeText := map[protoreflect.FullName]bool{}
	for _, path := range fields {
		leaf := path[len(path)-1]
		for _, bad := range []string{"x\x1b[2Jy", "x\u202ey", "x\x00"} {
			inc := &irxv1.Incident{}
			field := setAt(inc.ProtoReflect(), path, bad)
			got := textFields(CheckRecordText(inc, "incident"))
			if !slices.Contains(got, field) {
				t.Errorf("%s = %q: violations %q do not name it", field, bad, got)
			}
		}
		inc := &irxv1.Incident{}
		field := setAt(inc.ProtoReflect(), path, "first line\n\tsecond line")
		named := slices.Contains(textFields(CheckRecordText(inc, "incident")), field)
		if IsFreeText(leaf) {
			freeText[leaf.FullName()] = true
			if named {
				t.Errorf("free-text field %s refused a line break", field)
			}
		} else if !named {
			t.Errorf("one-line field %s accepted a line break", field)
		}
	}
	if len(freeText) != len(freeTextFields) {
		t.Errorf("%d free-text fields found in the schema, %d listed", len(freeText), len(freeTextFields))
	}
}

func TestValidateNamesEveryBadString(t *testing.T) {
	inc := fullIncident()
	inc.Descriptions[0].Text = "ok\n\x1b]0;owned\x07"
	inc.VictimHosts[0].Hostname = "a\x00b\n.example.org"
	inc.Methods[0].Vulnerabilities[0].Product = "x\u202eexe.txt"
	got := textFields(CheckRecordText(inc, "incident"))
	want := []string{"incident.descriptions[0].text", "incident.victim_hosts[0].hostname", "incident.methods[0].vulnerabilities[0].product"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("violations %q do not name %s", got, w)
		}
	}
}

func TestCheckFutureTimes(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	skew := 5 * time.Minute
	inc := fullIncident()
	inc.ReportTime = timestamppb.New(now.Add(4 * time.Minute))
	if vs := CheckFutureTimes(inc, "incident", now.Add(skew), skew); len(vs) != 0 {
		t.Fatalf("a time within the skew refused: %v", vs)
	}
	inc.ReportTime = timestamppb.New(now.AddDate(50, 0, 0))
	inc.History = append(inc.History, &irxv1.HistoryItem{Time: timestamppb.New(now.Add(6 * time.Minute))})
	vs := CheckFutureTimes(inc, "incident", now.Add(skew), skew)
	var names []string
	for _, v := range vs {
		names = append(names, v.Field)
	}
	want := []string{"incident.report_time", fmt.Sprintf("incident.history[%d].time", len(inc.History)-1)}
	if !slices.Equal(names, want) {
		t.Fatalf("violations %v, want %v", vs, want)
	}
	if !strings.Contains(vs[0].Description, "in the future") {
		t.Fatalf("description %q", vs[0].Description)
	}
}

// TestFutureTimesCoverSchema sets every timestamp of the record schema, one
// at a time, a year ahead, and requires CheckFutureTimes to name it.
func TestFutureTimesCoverSchema(t *testing.T) {
	var paths [][]protoreflect.FieldDescriptor
	var walk func(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor, seen map[protoreflect.FullName]bool)
	walk = func(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor, seen map[protoreflect.FullName]bool) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		defer delete(seen, md.FullName())
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			p := append(slices.Clone(path), fd)
			switch {
			case fd.Message() == nil || fd.IsMap():
			case fd.Message().FullName() == timestampName:
				paths = append(paths, p)
			default:
				walk(fd.Message(), p, seen)
			}
		}
	}
	walk((&irxv1.Incident{}).ProtoReflect().Descriptor(), nil, map[protoreflect.FullName]bool{})
	if len(paths) < 10 {
		t.Fatalf("found only %d timestamps", len(paths))
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ahead := timestamppb.New(now.AddDate(1, 0, 0))
	for _, path := range paths {
		inc := &irxv1.Incident{}
		m := inc.ProtoReflect()
		name := "incident"
		for i, fd := range path {
			name += "." + string(fd.Name())
			if fd.IsList() {
				name += "[0]"
				l := m.Mutable(fd).List()
				e := l.NewElement()
				l.Append(e)
				m = e.Message()
			} else {
				m = m.Mutable(fd).Message()
			}
			if i == len(path)-1 {
				m.Set(m.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(ahead.GetSeconds()))
			}
		}
		vs := CheckFutureTimes(inc, "incident", now, time.Minute)
		if len(vs) != 1 || vs[0].Field != name {
			t.Errorf("%s a year ahead: violations %v", name, vs)
		}
	}
}

func textFields(vs []Violation) []string {
	var fields []string
	for _, v := range vs {
		fields = append(fields, v.Field)
	}
	return fields
}

// FuzzValidateHygiene: whatever strings a record holds, CheckRecordText
// never panics and refuses exactly the strings the rules refuse, naming
// each one's field.
func FuzzValidateHygiene(f *testing.F) {
	for _, s := range []string{"ok", "a\x00b", "\x1b[31m", "line\nbreak", "\u202e", "\u200f", "\xff", "\u0085", "x\r\ny\tz"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, hostname, text, ticket string) {
		inc := fullIncident()
		inc.VictimHosts[0].Site = hostname
		inc.Descriptions[0].Text = text
		inc.AlternativeIds[0].Ticket = ticket + "x" // never empty, which is refused for itself
		if !utf8.ValidString(hostname) || !utf8.ValidString(text) || !utf8.ValidString(ticket) {
			// proto refuses to encode these; Validate must still not panic
			// and must refuse them.
			if len(CheckRecordText(inc, "incident")) == 0 {
				t.Fatal("invalid UTF-8 accepted")
			}
			return
		}
		if err := Validate(inc, "incident"); err != nil {
			t.Fatalf("the record's other rules refuse it: %v", err)
		}
		got := textFields(CheckRecordText(inc, "incident"))
		for _, c := range []struct {
			field, v string
			k        TextKind
		}{
			{"incident.victim_hosts[0].site", hostname, Identifier},
			{"incident.descriptions[0].text", text, FreeText},
			{"incident.alternative_ids[0].ticket", ticket + "x", Identifier},
		} {
			refused := refusedByRule(c.v, c.k)
			if refused != slices.Contains(got, c.field) {
				t.Fatalf("%s = %q: refused by rule %v, violations %q", c.field, c.v, refused, got)
			}
		}
		if _, err := proto.Marshal(inc); err != nil {
			t.Fatal(err)
		}
	})
}

// refusedByRule is the rule CheckText implements, stated rune by rune.
func refusedByRule(s string, k TextKind) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			if k == Identifier {
				return true
			}
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
			return true
		case r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069:
			return true
		case r == 0x200e || r == 0x200f || r == 0x061c:
			if k == Identifier {
				return true
			}
		}
	}
	return false
}

// BenchmarkCheckRecordText: the edge's text rules over a record with every
// part of the schema filled in.
func BenchmarkCheckRecordText(b *testing.B) {
	inc := fullIncident()
	b.ReportAllocs()
	for b.Loop() {
		if vs := CheckRecordText(inc, "incident"); len(vs) > 0 {
			b.Fatal(vs)
		}
	}
}

// BenchmarkCheckFutureTimes: the edge's time rule over the same record.
func BenchmarkCheckFutureTimes(b *testing.B) {
	inc := fullIncident()
	notAfter := time.Now().Add(5 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if vs := CheckFutureTimes(inc, "incident", notAfter, 5*time.Minute); len(vs) > 0 {
			b.Fatal(vs)
		}
	}
}
