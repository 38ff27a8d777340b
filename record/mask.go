package record

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// outputOnly are the top-level fields the team sets; clients cannot.
var outputOnly = map[protoreflect.Name]bool{
	"id": true, "version": true, "generation_time": true, "create_time": true, "provenance": true,
}

// IsOutputOnly reports whether name is one of the incident fields the team
// sets and a client may not.
func IsOutputOnly(name protoreflect.Name) bool { return outputOnly[name] }

// ClearOutputOnly drops the fields a client may not set. AIP-203: output-only
// fields in a request are ignored, not rejected.
func ClearOutputOnly(inc *irxv1.Incident) {
	m := inc.ProtoReflect()
	fields := m.Descriptor().Fields()
	for name := range outputOnly {
		m.Clear(fields.ByName(name))
	}
}

// ApplyDefaults fills what IODEF requires and the client may leave out.
// now is the proposer's clock, never the local one, so replicas agree.
func ApplyDefaults(inc *irxv1.Incident, now *timestamppb.Timestamp) {
	if inc.GetStatus() == irxv1.Status_STATUS_UNSPECIFIED {
		inc.Status = irxv1.Status_STATUS_NEW
	}
	if inc.GetPurpose() == irxv1.Purpose_PURPOSE_UNSPECIFIED {
		inc.Purpose = irxv1.Purpose_PURPOSE_REPORTING
	}
	if inc.GetRestriction() == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		inc.Restriction = irxv1.Restriction_RESTRICTION_PRIVATE
	}
	if inc.ReportTime == nil {
		inc.ReportTime = now
	}
}

// CheckMask validates an update mask against the schema. field is the
// request path of the mask for violation names.
func CheckMask(mask *fieldmaskpb.FieldMask, field string) error {
	var vs violations
	paths := mask.GetPaths()
	if len(paths) == 0 {
		vs.add(field, "is required: name the fields to change, or \"*\" for all")
		return vs.err()
	}
	for i, path := range paths {
		f := fmt.Sprintf("%s.paths[%d]", field, i)
		if path == "*" {
			if len(paths) > 1 {
				vs.add(f, "\"*\" cannot be combined with other paths")
			}
			continue
		}
		if _, err := fieldmaskpb.New(&irxv1.Incident{}, path); err != nil {
			vs.add(f, "%q is not a field of irx.v1.Incident (paths are snake_case field names, nested with '.')", path)
			continue
		}
		top, _, _ := strings.Cut(path, ".")
		if outputOnly[protoreflect.Name(top)] {
			vs.add(f, "%q is output only: the team sets it", path)
		}
	}
	return vs.err()
}

// ApplyMask returns a copy of current with the fields named by mask taken
// from patch. A named field that patch leaves unset is cleared. The mask must
// have passed CheckMask.
func ApplyMask(current, patch *irxv1.Incident, mask *fieldmaskpb.FieldMask) *irxv1.Incident {
	next := proto.Clone(current).(*irxv1.Incident)
	dst, src := next.ProtoReflect(), patch.ProtoReflect()
	for _, path := range mask.GetPaths() {
		if path == "*" {
			fields := dst.Descriptor().Fields()
			for i := 0; i < fields.Len(); i++ {
				if fd := fields.Get(i); !outputOnly[fd.Name()] {
					copyField(dst, src, fd)
				}
			}
			continue
		}
		copyPath(dst, src, strings.Split(path, "."))
	}
	return next
}

// copyPath walks singular message fields named by all but the last segment,
// creating them in dst as needed, then copies the last field.
func copyPath(dst, src protoreflect.Message, segments []string) {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(segments[0]))
	if len(segments) == 1 {
		copyField(dst, src, fd)
		return
	}
	// An unset src field reads as an empty message, so the leaf is cleared.
	copyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), segments[1:])
}

func copyField(dst, src protoreflect.Message, fd protoreflect.FieldDescriptor) {
	if !src.Has(fd) {
		dst.Clear(fd)
		return
	}
	// Clone so dst shares no mutable state with the request.
	switch {
	case fd.IsList():
		out := dst.NewField(fd).List()
		in := src.Get(fd).List()
		for i := 0; i < in.Len(); i++ {
			out.Append(cloneValue(fd, in.Get(i)))
		}
		dst.Set(fd, protoreflect.ValueOfList(out))
	default:
		dst.Set(fd, cloneValue(fd, src.Get(fd)))
	}
}

func cloneValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
	}
	return v
}
