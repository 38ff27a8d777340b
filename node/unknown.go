package node

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/irxfed/irx/node/api"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
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
	if v, found := requestUnknown(req); found {
		return nil, api.ToStatus(&record.ValidationError{What: "request", Violations: []record.Violation{v}})
	}
	return handler(ctx, req)
}

// requestUnknown finds an unknown field in a request: for the writes of
// incidents, which every ingest makes, with the incident's written-out
// check; for the rest by walking the message.
func requestUnknown(req any) (record.Violation, bool) {
	top := func(m proto.Message) (record.Violation, bool) {
		if raw := m.ProtoReflect().GetUnknown(); len(raw) > 0 {
			return record.UnknownFieldViolation("(request)", m.ProtoReflect().Descriptor().FullName(), raw), true
		}
		return record.Violation{}, false
	}
	switch r := req.(type) {
	case *irxv1.CreateIncidentRequest:
		if v, found := top(r); found {
			return v, true
		}
		return record.FirstUnknownField(r.GetIncident(), "incident")
	case *irxv1.UpdateIncidentRequest:
		if v, found := top(r); found {
			return v, true
		}
		if m := r.GetUpdateMask(); m != nil {
			if raw := m.ProtoReflect().GetUnknown(); len(raw) > 0 {
				return record.UnknownFieldViolation("update_mask", m.ProtoReflect().Descriptor().FullName(), raw), true
			}
		}
		return record.FirstUnknownField(r.GetIncident(), "incident")
	case proto.Message:
		var path []step
		return firstUnknown(r.ProtoReflect(), &path)
	}
	return record.Violation{}, false
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
	return unknownIn(m, planOf(m.Descriptor()), path)
}

// unknownIn is firstUnknown with m's plan: it visits only the fields that
// can hold a message. Walking every set field by reflection, or looking a
// plan up per message, cost more than the rest of a create's work on the
// receiving node.
func unknownIn(m protoreflect.Message, plan *unknownPlan, path *[]step) (record.Violation, bool) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		field := render(*path)
		if field == "" {
			field = "(request)"
		}
		return record.UnknownFieldViolation(field, m.Descriptor().FullName(), raw), true
	}
	for _, f := range plan.fields {
		fd := f.fd
		if !m.Has(fd) {
			continue
		}
		val := m.Get(fd)
		switch {
		case fd.IsMap():
			var v record.Violation
			found := false
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				*path = append(*path, step{fd.Name(), k.Interface()})
				v, found = unknownIn(mv.Message(), f.sub, path)
				*path = (*path)[:len(*path)-1]
				return !found
			})
			if found {
				return v, true
			}
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				*path = append(*path, step{fd.Name(), i})
				v, found := unknownIn(l.Get(i).Message(), f.sub, path)
				*path = (*path)[:len(*path)-1]
				if found {
					return v, true
				}
			}
		default:
			*path = append(*path, step{name: fd.Name()})
			v, found := unknownIn(val.Message(), f.sub, path)
			*path = (*path)[:len(*path)-1]
			if found {
				return v, true
			}
		}
	}
	return record.Violation{}, false
}

// unknownPlan lists the fields of one message type that hold a message
// (singular, repeated or as map values), each with that message's plan.
// The schema is compiled in and never changes, so plans are made once.
type unknownPlan struct {
	fields []unknownPlanField
}

type unknownPlanField struct {
	fd  protoreflect.FieldDescriptor
	sub *unknownPlan
}

var (
	unknownPlansMu sync.Mutex
	unknownPlans   sync.Map // protoreflect.FullName -> *unknownPlan, complete plans only
)

func planOf(md protoreflect.MessageDescriptor) *unknownPlan {
	if p, ok := unknownPlans.Load(md.FullName()); ok {
		return p.(*unknownPlan)
	}
	unknownPlansMu.Lock()
	defer unknownPlansMu.Unlock()
	building := map[protoreflect.FullName]*unknownPlan{}
	p := buildPlan(md, building)
	for name, plan := range building {
		unknownPlans.Store(name, plan)
	}
	return p
}

// buildPlan makes md's plan; a recursive type refers to its own plan,
// which building holds before its fields are filled in.
func buildPlan(md protoreflect.MessageDescriptor, building map[protoreflect.FullName]*unknownPlan) *unknownPlan {
	if p, ok := unknownPlans.Load(md.FullName()); ok {
		return p.(*unknownPlan)
	}
	if p, ok := building[md.FullName()]; ok {
		return p
	}
	plan := &unknownPlan{}
	building[md.FullName()] = plan
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		var sub protoreflect.MessageDescriptor
		switch {
		case fd.IsMap():
			sub = fd.MapValue().Message()
		default:
			sub = fd.Message()
		}
		if sub != nil {
			plan.fields = append(plan.fields, unknownPlanField{fd: fd, sub: buildPlan(sub, building)})
		}
	}
	return plan
}
