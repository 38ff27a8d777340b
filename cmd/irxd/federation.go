package main

import (
	"github.com/irxfed/irx/federation"
	"github.com/irxfed/irx/node"
	"github.com/irxfed/irx/node/fsm"
)

// federationTeam is what federation runs on: the node, and the team's
// state as the state machine keeps it.
func federationTeam(n *node.Node) federation.Team {
	return federation.Team{Node: n, State: fsmState{n.State()}}
}

// fsmState is the state machine as federation reads it. Its methods are
// the state machine's but for Versions, whose reader federation names with
// its own interface.
type fsmState struct{ *fsm.FSM }

func (s fsmState) Versions() (federation.VersionReader, error) {
	r, err := s.NewVersionReader()
	if err != nil {
		return nil, err
	}
	return r, nil
}
