package federation

import (
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/node/fsm"
)

// fsmState is a real state machine as federation reads it, as cmd/irxd
// wires it in irxd.
type fsmState struct{ *fsm.FSM }

func (s fsmState) Versions() (VersionReader, error) {
	r, err := s.NewVersionReader()
	if err != nil {
		return nil, err
	}
	return r, nil
}

// committedResult is what node.Commit answers for a state machine's
// result: what it stored, or its refusal.
func committedResult(res *fsm.Result, err error) (proto.Message, error) {
	switch {
	case err != nil:
		return nil, err
	case res.Err != nil:
		return nil, res.Err
	case res.Incident != nil || res.Encoded != nil:
		return res.Created()
	case res.Peer != nil:
		return res.Peer, nil
	case res.TeamDescription != nil:
		return res.TeamDescription, nil
	case res.Policy != nil:
		return res.Policy, nil
	}
	return nil, nil
}
