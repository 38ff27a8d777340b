package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Team description key:
//
//	team/description    the team's RFC 2350 description (TeamDescription), latest version only
//
// Earlier versions are not kept: the description is a published document,
// not a record of what the team told anyone, and its versions only number
// the updates so a reader can tell which one it holds.
var keyTeamDescription = []byte("team/description")

// setTeamDescription replaces the team's description with the next
// version. The proposer validated it already; it is checked again here
// because the log, not the proposer, decides what is stored.
func (a *applier) setTeamDescription(c *irxv1.SetTeamDescriptionCommand) *Result {
	d := proto.CloneOf(c.GetDescription())
	if d == nil {
		return &Result{Err: &record.ValidationError{Violations: []record.Violation{{Field: "description", Description: "is required"}}}}
	}
	d.TeamId, d.Version, d.UpdateTime = "", 0, nil
	if err := record.ValidateTeamDescription(d, "description"); err != nil {
		return &Result{Err: err}
	}
	current := &irxv1.TeamDescription{}
	if _, err := getProto(a.reads(), keyTeamDescription, current); err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if want := c.GetExpectedVersion(); want != 0 && want != current.GetVersion() {
		return &Result{Err: fmt.Errorf("%w: the team description is at version %d, not %d", ErrVersionConflict, current.GetVersion(), want)}
	}
	d.TeamId = a.fsm.team
	d.Version = current.GetVersion() + 1
	d.UpdateTime = a.now
	a.setProto(d, keyTeamDescription)
	if a.err != nil {
		return &Result{Err: a.err}
	}
	return &Result{TeamDescription: d}
}

// TeamDescription returns the team's current description, ErrNotFound if
// none was ever set.
func (f *FSM) TeamDescription() (*irxv1.TeamDescription, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	d := &irxv1.TeamDescription{}
	found, err := getProto(f.db, keyTeamDescription, d)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: the team has no description yet; set one with TeamService/UpdateTeamDescription (irxctl team set -f FILE)", ErrNotFound)
	}
	return d, nil
}
