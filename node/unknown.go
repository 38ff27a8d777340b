package node

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/irxfed/irx/node/api"
	"github.com/irxfed/irx/record"
)

// refuseUnknownFields refuses a request that holds a field its message does
// not define, anywhere in it, naming the field's number and where it is.
// Protobuf keeps such fields as unknown bytes and writes them out again, so
// without this a client could store (and have served back to operators and
// peers) any bytes at all, nested as deep as the decoder allows, inside a
// record that validates. A client built against a newer schema learns at
// once that this node does not know the field, instead of having it
// silently dropped or kept.
//
// It looks only at the request as the client sent it, before the handler
// runs: the node itself puts encoded messages into unknown fields on the
// way to the log (internal/wire.SetEncoded), after this point.
func refuseUnknownFields(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		var path []step
		if v, found := firstUnknown(m.ProtoReflect(), &path); found {
			return nil, api.ToStatus(&record.ValidationError{What: "request", Violations: []record.Violation{v}})
		}
	}
	return handler(ctx, req)
}

// step is one field on the way down to a message: its name and, for an
// element of a list or map, which one. Paths are rendered only for a
// refusal.
type step struct {
	name protoreflect.Name
	key  any // nil, an int (list index) or a map key
}

func render(path []step) string {
	var b strings.Builder
	for i, s := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(s.name))
		if s.key != nil {
			fmt.Fprintf(&b, "[%v]", s.key)
		}
	}
	return b.String()
}

// firstUnknown finds the first unknown field in m, depth first; path holds
// the steps down to m.
func firstUnknown(m protoreflect.Message, path *[]step) (record.Violation, bool) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		num, _, n := protowire.ConsumeTag(raw)
		desc := fmt.Sprintf("holds field number %d, which %s does not define: this node does not know it; send only the fields of its schema", num, m.Descriptor().FullName())
		if n < 0 {
			desc = fmt.Sprintf("holds bytes that %s does not define", m.Descriptor().FullName())
		}
		field := render(*path)
		if field == "" {
			field = "(request)"
		}
		return record.Violation{Field: field, Description: desc}, true
	}
	var v record.Violation
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				*path = append(*path, step{fd.Name(), k.Interface()})
				v, found = firstUnknown(mv.Message(), path)
				*path = (*path)[:len(*path)-1]
				return !found
			})
		case fd.Message() == nil:
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len() && !found; i++ {
				*path = append(*path, step{fd.Name(), i})
				v, found = firstUnknown(l.Get(i).Message(), path)
				*path = (*path)[:len(*path)-1]
			}
		default:
			*path = append(*path, step{name: fd.Name()})
			v, found = firstUnknown(val.Message(), path)
			*path = (*path)[:len(*path)-1]
		}
		return !found
	})
	return v, found
}
