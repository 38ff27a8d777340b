package node

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/irxfed/irx/node/api"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// refuseBadText holds every string of an operator request other than an
// incident's create or update (which record.CheckRecordText checks field by
// field, telling one-line values from free text) to the free-text rule: no
// control character but tab and line breaks, no bidirectional override or
// isolate. Policies, peers, team descriptions, reasons and filters are
// shown to operators and partners as the incidents are; their identifiers
// are held to stricter rules by their own validation.
func refuseBadText(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	switch req.(type) {
	case *irxv1.CreateIncidentRequest, *irxv1.UpdateIncidentRequest:
	case proto.Message:
		var path []step
		if v, found := firstBadText(req.(proto.Message).ProtoReflect(), &path); found {
			return nil, api.ToStatus(&record.ValidationError{What: "request", Violations: []record.Violation{v}})
		}
	}
	return handler(ctx, req)
}

// firstBadText finds the first string in m, depth first, that the
// free-text rule refuses. These requests are small and rare next to
// incident writes, so a plain reflective walk does.
func firstBadText(m protoreflect.Message, path *[]step) (v record.Violation, found bool) {
	check := func(s string, at step) bool {
		if why := record.CheckText(s, record.FreeText); why != "" {
			*path = append(*path, at)
			v, found = record.Violation{Field: render(*path), Description: why}, true
			*path = (*path)[:len(*path)-1]
		}
		return found
	}
	var walk func(fd protoreflect.FieldDescriptor, val protoreflect.Value, at step) bool
	walk = func(fd protoreflect.FieldDescriptor, val protoreflect.Value, at step) bool {
		switch fd.Kind() {
		case protoreflect.StringKind:
			return check(val.String(), at)
		case protoreflect.MessageKind, protoreflect.GroupKind:
			*path = append(*path, at)
			v, found = firstBadText(val.Message(), path)
			*path = (*path)[:len(*path)-1]
			return found
		}
		return false
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				if walk(fd, l.Get(i), step{fd.Name(), i}) {
					return false
				}
			}
		case fd.IsMap():
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				at := step{fd.Name(), k.Interface()}
				if fd.MapKey().Kind() == protoreflect.StringKind && check(k.String(), at) {
					return false
				}
				return !walk(fd.MapValue(), mv, at)
			})
			return !found
		default:
			return !walk(fd, val, step{name: fd.Name()})
		}
		return true
	})
	return v, found
}
