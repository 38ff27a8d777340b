package policy

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Purge clears, in place, every field of inc whose information class is
// class: its own (irx.v1.info_class), or inherited from the field that
// holds its message, exactly as Disclose resolves it. A nested field
// that sets another class is kept, with the message holding it; a
// message left empty is cleared. It reports whether anything was
// cleared. Retention purges a class with it; the record's handling
// fields (id, version, markings, provenance) are of their own class and
// are never cleared unless asked for.
func Purge(inc *irxv1.Incident, class irxv1.InfoClass) bool {
	if inc == nil || class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
		return false
	}
	return purgeMessage(inc.ProtoReflect(), irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, class)
}

func purgeMessage(m protoreflect.Message, inherited, class irxv1.InfoClass) bool {
	changed := false
	// The fields are listed first: a message must not change while it is
	// being ranged over.
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fields = append(fields, fd)
		return true
	})
	for _, fd := range fields {
		v := m.Get(fd)
		own := ownClass(fd)
		if own == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
			own = inherited
		}
		nested := fd.Message() != nil && fd.Message().ParentFile().Package() == "irx.v1" && !fd.IsMap()
		if !nested {
			if own == class {
				m.Clear(fd)
				changed = true
			}
			continue
		}
		if fd.IsList() {
			list := v.List()
			kept := 0
			for i := 0; i < list.Len(); i++ {
				e := list.Get(i).Message()
				if purgeMessage(e, own, class) {
					changed = true
				}
				if own == class && !hasFields(e) {
					changed = true
					continue
				}
				list.Set(kept, list.Get(i))
				kept++
			}
			list.Truncate(kept)
			if list.Len() == 0 {
				m.Clear(fd)
			}
			continue
		}
		sub := v.Message()
		if purgeMessage(sub, own, class) {
			changed = true
		}
		if own == class && !hasFields(sub) {
			m.Clear(fd)
			changed = true
		}
	}
	return changed
}

func hasFields(m protoreflect.Message) bool {
	has := false
	m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
		has = true
		return false
	})
	return has
}
