package record

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestFirstUnknownFieldCoversSchema puts an unknown field into every
// message of the incident schema, one at a time, and requires
// FirstUnknownField to find it and name where it is.
func TestFirstUnknownFieldCoversSchema(t *testing.T) {
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
			if fd.Message() != nil && !fd.IsMap() {
				p := append(slices.Clone(path), fd)
				paths = append(paths, p)
				walk(fd.Message(), p, seen)
			}
		}
	}
	walk((&irxv1.Incident{}).ProtoReflect().Descriptor(), nil, map[protoreflect.FullName]bool{})
	paths = append(paths, nil) // the incident itself
	if len(paths) < 40 {
		t.Fatalf("found only %d message fields", len(paths))
	}
	raw := protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 1)
	for _, path := range paths {
		inc := &irxv1.Incident{}
		m := inc.ProtoReflect()
		name := "incident"
		for _, fd := range path {
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
		}
		m.SetUnknown(raw)
		v, found := FirstUnknownField(inc, "incident")
		if !found || v.Field != name || !strings.Contains(v.Description, "field number 999") {
			t.Errorf("unknown field in %s: found %v, %v", name, found, v)
		}
	}
	if v, found := FirstUnknownField(fullIncident(), "incident"); found {
		t.Errorf("a record without unknown fields: %v", v)
	}
}

// BenchmarkFirstUnknownField: the operator API's check of a create.
func BenchmarkFirstUnknownField(b *testing.B) {
	inc := fullIncident()
	b.ReportAllocs()
	for b.Loop() {
		if _, found := FirstUnknownField(inc, "incident"); found {
			b.Fatal("found")
		}
	}
}
