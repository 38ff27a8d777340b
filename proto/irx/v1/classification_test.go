package irxv1_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// ownClass is the info_class option set on a field itself, if any.
func ownClass(fd protoreflect.FieldDescriptor) irxv1.InfoClass {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return irxv1.InfoClass_INFO_CLASS_UNSPECIFIED
	}
	return proto.GetExtension(opts, irxv1.E_InfoClass).(irxv1.InfoClass)
}

// TestEveryIncidentFieldHasAClass walks the Incident schema as the policy
// engine will: every top-level field must set its class, and every nested
// field must resolve to one, its own or inherited from the field holding its
// message. A field added without a class fails here before it can leak.
func TestEveryIncidentFieldHasAClass(t *testing.T) {
	incident := (&irxv1.Incident{}).ProtoReflect().Descriptor()
	fields := incident.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if ownClass(fd) == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
			t.Errorf("irx.v1.Incident.%s has no (irx.v1.info_class)", fd.Name())
		}
	}
	visited := 0
	var walk func(md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, path string, depth int)
	walk = func(md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, path string, depth int) {
		if depth > 8 {
			t.Fatalf("%s: schema nests deeper than 8 levels (recursive message?)", path)
		}
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			class := ownClass(fd)
			if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
				class = inherited
			}
			p := path + "." + string(fd.Name())
			visited++
			if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
				t.Errorf("%s resolves to no information class", p)
			}
			if _, known := irxv1.InfoClass_name[int32(class)]; !known {
				t.Errorf("%s has undefined class %d", p, class)
			}
			// Well-known types (Timestamp) are leaves for disclosure.
			if fd.Message() != nil && fd.Message().ParentFile().Package() == "irx.v1" {
				walk(fd.Message(), class, p, depth+1)
			}
		}
	}
	walk(incident, irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, "Incident", 0)
	if visited < 150 {
		t.Fatalf("walked only %d fields; the walk is broken", visited)
	}
}

// TestVictimAndAttackerHostsDiffer pins the decision that separates the two
// host lists by schema: a victim's identity is private site information, an
// attacker's is intruder information, whatever the content.
func TestVictimAndAttackerHostsDiffer(t *testing.T) {
	fields := (&irxv1.Incident{}).ProtoReflect().Descriptor().Fields()
	want := map[protoreflect.Name]irxv1.InfoClass{
		"victim_hosts":    irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE,
		"attacking_hosts": irxv1.InfoClass_INFO_CLASS_INTRUDER,
		"log_excerpts":    irxv1.InfoClass_INFO_CLASS_PRIVATE_USER,
		"contacts":        irxv1.InfoClass_INFO_CLASS_CONTACT,
		"tlp":             irxv1.InfoClass_INFO_CLASS_HANDLING,
	}
	for name, class := range want {
		if got := ownClass(fields.ByName(name)); got != class {
			t.Errorf("Incident.%s: class %v, want %v", name, got, class)
		}
	}
	home := (&irxv1.Contact{}).ProtoReflect().Descriptor().Fields().ByName("home_telephone")
	if got := ownClass(home); got != irxv1.InfoClass_INFO_CLASS_PRIVATE_USER {
		t.Errorf("Contact.home_telephone: class %v, want private user (it overrides the contact class)", got)
	}
}
