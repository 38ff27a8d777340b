package main

import (
	"context"
	"errors"
	"fmt"

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

// encoded is a message that stays in its wire form.
type encoded struct{ data []byte }

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
