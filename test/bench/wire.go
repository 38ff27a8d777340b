package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// The ingest clients send one request, encoded once, and read only the id
// of each answer. The tool shares the two cores with the nodes it
// measures; encoding the same request again and decoding every stored
// incident it gets back was a large part of its own CPU, time the nodes
// could not use.

const createIncidentMethod = "/irx.v1.IncidentService/CreateIncident"

// encoded is a message that stays in its wire form. With seq set, every
// call sends its own copy, whose 16 bytes at vary hold the next number of
// seq in hex: a value no other call sends (uniqueValues).
type encoded struct {
	data []byte
	vary int
	seq  *atomic.Uint64
}

// instance is what one call sends.
func (e *encoded) instance() *encoded {
	if e.seq == nil {
		return e
	}
	data := bytes.Clone(e.data)
	hex.Encode(data[e.vary:e.vary+16], binary.BigEndian.AppendUint64(nil, e.seq.Add(1)))
	return &encoded{data: data}
}

// variedPlaceholder is the 16 hex digits uniqueValues replaces per call.
const variedPlaceholder = "0000000000000000"

// uniqueValues is a CreateIncidentRequest for inc that also names a C2
// domain of its own on every call: each record adds a value to the
// correlation index and to its memory of held names, as a feed of
// distinct indicators does, rather than sharing every value with every
// other record. Numbers start from the clock, so runs against the same
// team do not repeat each other's.
// createRequest is the CreateIncident request a mode sends: inc as it is,
// or with -unique-values a C2 domain of its own in every call; values says
// which, for the report.
func createRequest(inc *irxv1.Incident, unique bool) (request *encoded, values string, err error) {
	if unique {
		request, err = uniqueValues(inc)
		return request, "every record with a C2 domain of its own", err
	}
	request, err = encodedCreate(inc)
	return request, "every record sharing its values", err
}

func uniqueValues(inc *irxv1.Incident) (*encoded, error) {
	inc = proto.CloneOf(inc)
	inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2-" + variedPlaceholder + ".example"})
	e, err := encodedCreate(inc)
	if err != nil {
		return nil, err
	}
	e.vary = bytes.Index(e.data, []byte("c2-"+variedPlaceholder)) + len("c2-")
	e.seq = new(atomic.Uint64)
	e.seq.Store(uint64(time.Now().UnixNano()))
	return e, nil
}

// wireCodec moves *encoded messages without encoding or decoding them.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" } // the content-subtype the server expects

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*encoded)
	if !ok {
		return nil, fmt.Errorf("wire codec: cannot encode %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m.data)}, nil
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*encoded)
	if !ok {
		return fmt.Errorf("wire codec: cannot decode into %T", v)
	}
	m.data = data.Materialize()
	return nil
}

// encodedCreate is a CreateIncidentRequest for inc, encoded.
func encodedCreate(inc *irxv1.Incident) (*encoded, error) {
	data, err := proto.Marshal(&irxv1.CreateIncidentRequest{Incident: inc})
	if err != nil {
		return nil, err
	}
	return &encoded{data: data}, nil
}

// createEncoded sends req and returns the id of the incident the node
// stored; an answer without one is an error.
func createEncoded(ctx context.Context, conn grpc.ClientConnInterface, req *encoded) (string, error) {
	req = req.instance()
	var resp encoded
	if err := conn.Invoke(ctx, createIncidentMethod, req, &resp, grpc.ForceCodecV2(wireCodec{})); err != nil {
		return "", err
	}
	incident, err := field(resp.data, wire.CreateIncidentResponseIncident)
	if err != nil {
		return "", fmt.Errorf("CreateIncidentResponse: %w", err)
	}
	id, err := field(incident, wire.IncidentID)
	if err != nil || len(id) == 0 {
		return "", fmt.Errorf("CreateIncidentResponse.incident has no id (%v)", err)
	}
	return string(id), nil
}

var errNoField = errors.New("field absent")

// field returns the last value of the length-delimited field num in b, as
// a decoder would see it.
func field(b []byte, num protowire.Number) ([]byte, error) {
	var found []byte
	ok := false
	for len(b) > 0 {
		n, typ, size := protowire.ConsumeTag(b)
		if size < 0 {
			return nil, protowire.ParseError(size)
		}
		b = b[size:]
		if n == num && typ == protowire.BytesType {
			v, size := protowire.ConsumeBytes(b)
			if size < 0 {
				return nil, protowire.ParseError(size)
			}
			found, ok, b = v, true, b[size:]
			continue
		}
		size = protowire.ConsumeFieldValue(n, typ, b)
		if size < 0 {
			return nil, protowire.ParseError(size)
		}
		b = b[size:]
	}
	if !ok {
		return nil, fmt.Errorf("field %d: %w", num, errNoField)
	}
	return found, nil
}
