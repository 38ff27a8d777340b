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
// result.
func committedResult(res *fsm.Result, err error) (proto.Message, error) {
	if err != nil {
		return nil, err
	}
	return res.Stored()
}
