package fsm

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Warnings: those the team issued and those peers delivered, one key
// each, by id ("<origin team>:w<n>"); the team numbers its own.
//
//	wrn/<warning id>   Warning
//	alr/wseq           the last number the team gave a warning
var (
	prefixWarning    = []byte("wrn/")
	keyWarningSeq    = []byte("alr/wseq")
	errNotOwnWarning = errdefs.New(errdefs.ErrFailedPrecondition, "not a warning this team received")
)

func warningKey(id string) []byte { return cat(prefixWarning, []byte(id)) }

func (a *applier) loadWarning(id string) (*irxv1.Warning, error) {
	w := &irxv1.Warning{}
	found, err := getProto(a.reads(), warningKey(id), w)
	if err != nil || !found {
		return nil, err
	}
	return w, nil
}

func (a *applier) issueWarning(cmd *irxv1.Command, c *irxv1.IssueWarningCommand) *Result {
	w := proto.CloneOf(c.GetWarning())
	if err := record.ValidateWarning(w, "warning", a.now.AsTime()); err != nil {
		return &Result{Err: err}
	}
	seq, err := getUint64(a.reads(), keyWarningSeq)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	seq++
	w.WarningId = a.fsm.team + ":w" + strconv.FormatUint(seq, 10)
	w.OriginTeam, w.CreateTime, w.IssuedBy = a.fsm.team, a.now, cmd.GetActor().GetIdentity()
	w.ReceivedFrom, w.ReceiveTime, w.AcknowledgedBy, w.AcknowledgeTime, w.AcknowledgementDelivered = "", nil, "", nil, false
	for _, d := range w.GetDeliveries() {
		d.State, d.DeliverTime, d.AcknowledgeTime, d.AcknowledgedBy = irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_PENDING, nil, nil, ""
	}
	a.set(keyWarningSeq, u64(seq))
	a.putWarning(w)
	return &Result{Warning: w}
}

// receiveWarning stores a warning a peer delivered: its own, once.
func (a *applier) receiveWarning(c *irxv1.ReceiveWarningCommand) *Result {
	peer, w := c.GetPeerTeamId(), proto.CloneOf(c.GetWarning())
	if _, err := a.peerState(peer); err != nil {
		return &Result{Err: err}
	}
	origin, _, _ := strings.Cut(w.GetWarningId(), ":")
	switch {
	case w.GetOriginTeam() != peer || origin != peer:
		return &Result{Err: errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf("%s delivers warning %q of %q: a team delivers only its own warnings", peer, w.GetWarningId(), w.GetOriginTeam()))}
	case peer == a.fsm.team:
		return &Result{Err: fmt.Errorf("%w at index %d: a warning from this team to itself", ErrInvalidCommand, a.index)}
	}
	if err := record.ValidateWarning(w, "warning", time.Time{}); err != nil {
		return &Result{Err: err}
	}
	held, err := a.loadWarning(w.GetWarningId())
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if held != nil {
		return &Result{Warning: held}
	}
	w.Deliveries, w.IssuedBy = nil, ""
	w.ReceivedFrom, w.ReceiveTime = peer, a.now
	w.AcknowledgedBy, w.AcknowledgeTime, w.AcknowledgementDelivered = "", nil, false
	a.putWarning(w)
	return &Result{Warning: w}
}

func (a *applier) acknowledgeWarning(cmd *irxv1.Command, c *irxv1.AcknowledgeWarningCommand) *Result {
	who := cmd.GetActor().GetIdentity()
	if who == "" {
		return &Result{Err: fmt.Errorf("%w at index %d: an acknowledgement without an operator", ErrInvalidCommand, a.index)}
	}
	w, err := a.loadWarning(c.GetWarningId())
	switch {
	case err != nil:
		a.fail(err)
		return &Result{Err: err}
	case w == nil:
		return &Result{Err: fmt.Errorf("%w: warning %q", ErrNotFound, c.GetWarningId())}
	case w.GetReceivedFrom() == "":
		return &Result{Err: fmt.Errorf("%w: %s is this team's own warning; its recipients acknowledge it", errNotOwnWarning, c.GetWarningId())}
	case w.GetAcknowledgedBy() != "":
		return &Result{Warning: w} // the first acknowledgement stands
	}
	w.AcknowledgedBy, w.AcknowledgeTime = who, a.now
	a.putWarning(w)
	return &Result{Warning: w}
}

// recordWarningDelivery notes how far one of our warnings got with a
// recipient; it never goes back (an acknowledgement implies delivery).
func (a *applier) recordWarningDelivery(c *irxv1.RecordWarningDeliveryCommand) *Result {
	w, err := a.loadWarning(c.GetWarningId())
	switch {
	case err != nil:
		a.fail(err)
		return &Result{Err: err}
	case w == nil || w.GetOriginTeam() != a.fsm.team:
		return &Result{Err: fmt.Errorf("%w: warning %q of this team", ErrNotFound, c.GetWarningId())}
	}
	var d *irxv1.WarningDelivery
	for _, x := range w.GetDeliveries() {
		if x.GetPeerTeamId() == c.GetPeerTeamId() {
			d = x
		}
	}
	if d == nil {
		return &Result{Err: errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf("%s is not a recipient of %s", c.GetPeerTeamId(), c.GetWarningId()))}
	}
	if d.GetDeliverTime() == nil {
		d.DeliverTime = a.now
		d.State = irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_DELIVERED
	}
	if c.GetAcknowledged() && d.GetAcknowledgeTime() == nil {
		if why := record.CheckText(c.GetAcknowledgedBy(), record.Identifier); why != "" || len(c.GetAcknowledgedBy()) > 512 {
			return &Result{Err: &record.ValidationError{What: "acknowledgement", Violations: []record.Violation{{Field: "acknowledged_by", Description: "is not an identity of at most 512 bytes"}}}}
		}
		d.State, d.AcknowledgedBy, d.AcknowledgeTime = irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_ACKNOWLEDGED, c.GetAcknowledgedBy(), c.GetAcknowledgeTime()
		if !d.GetAcknowledgeTime().IsValid() {
			d.AcknowledgeTime = a.now
		}
	}
	a.putWarning(w)
	return &Result{Warning: w}
}

func (a *applier) markWarningAcknowledgementDelivered(c *irxv1.MarkWarningAcknowledgementDeliveredCommand) *Result {
	w, err := a.loadWarning(c.GetWarningId())
	switch {
	case err != nil:
		a.fail(err)
		return &Result{Err: err}
	case w == nil || w.GetAcknowledgedBy() == "":
		return &Result{Err: fmt.Errorf("%w: acknowledged warning %q", ErrNotFound, c.GetWarningId())}
	}
	w.AcknowledgementDelivered = true
	a.putWarning(w)
	return &Result{Warning: w}
}

// Warning returns one warning.
func (f *FSM) Warning(id string) (*irxv1.Warning, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	w := &irxv1.Warning{}
	found, err := getProto(f.db, warningKey(id), w)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: warning %q", ErrNotFound, id)
	}
	return w, nil
}

// Warnings lists the warnings the team issued and received, by id.
func (f *FSM) Warnings(pageSize int, pageToken string) ([]*irxv1.Warning, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return pageDecoded[irxv1.Warning](f, prefixWarning, pageSize, pageToken, valueItself)
}

// putWarning stores w and marks the batch as one that changed warnings.
func (a *applier) putWarning(w *irxv1.Warning) {
	a.setProto(w, warningKey(w.GetWarningId()))
	a.warningsChanged = true
}

// WarningRevision changes whenever a batch changed a warning, or the state
// was replaced: the leader's sender reads every warning again only then
// (and now and then for what became due).
func (f *FSM) WarningRevision() uint64 { return f.warningRevision.Load() }

// EachWarning calls fn with every warning, for the leader's deliveries.
func (f *FSM) EachWarning(fn func(*irxv1.Warning) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixWarning, UpperBound: prefixEnd(prefixWarning)})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		w := &irxv1.Warning{}
		if err := proto.Unmarshal(it.Value(), w); err != nil {
			return fmt.Errorf("fsm: decode %q: %w", it.Key(), err)
		}
		if err := fn(w); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}
