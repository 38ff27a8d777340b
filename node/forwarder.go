package node

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs/errgrpc"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Group forwarding on a follower: writes that arrive while earlier
// forwarded calls are in flight go to the leader together, in one
// NodeService/ProposeBatch call. A forwarded write cost a gRPC call at
// both ends, a large part of what a create cost with clients spread over
// the team. A lone write goes alone, as Propose.
const (
	maxForwardCommands = 256
	maxForwardBytes    = 1 << 20
	maxForwardInFlight = 4

	// maxIntraRequestBytes bounds what the intra-cluster server reads: a
	// batch stops growing once it passes maxForwardBytes, so it is at most
	// that plus one request.
	maxIntraRequestBytes = maxForwardBytes + 2*MaxRequestBytes
)

type forwarding struct {
	ctx  context.Context // the caller's, with the forwarded mark
	conn *grpc.ClientConn
	cmd  *irxv1.Command // the forwarder's own copy (see submission)
	done chan forwardResult
}

type forwardResult struct {
	resp *irxv1.ProposeResponse
	err  error
}

type forwarder struct {
	n *Node
	*grouper[*forwarding]
	// noBatch holds the leader connections that answered ProposeBatch
	// with UNIMPLEMENTED (an older leader during a rolling upgrade).
	noBatch sync.Map // *grpc.ClientConn -> struct{}
}

func newForwarder(n *Node) *forwarder {
	f := &forwarder{n: n, grouper: newGrouper[*forwarding](n.stopObserving, maxForwardCommands, maxForwardBytes, maxForwardInFlight)}
	f.size = func(w *forwarding) int { return proto.Size(w.cmd) }
	// Leadership moved between two writes: the newer leader gets its own
	// call.
	f.together = func(first, next *forwarding) bool { return first.conn == next.conn }
	f.send = f.forward
	f.fail = func(w *forwarding) {
		w.done <- forwardResult{err: errStopping}
	}
	return f
}

// submit forwards cmd to the leader behind conn and waits for its answer
// or ctx. The answer is Propose's: a response, or the error the call or the
// leader gave.
func (f *forwarder) submit(ctx context.Context, conn *grpc.ClientConn, cmd *irxv1.Command) (*irxv1.ProposeResponse, error) {
	w := &forwarding{ctx: ctx, conn: conn, cmd: submission(cmd), done: make(chan forwardResult, 1)}
	// Idle: forwarded from here, as a Propose call bounded by ctx.
	if f.sendAlone([]*forwarding{w}) {
		r := <-w.done
		return r.resp, r.err
	}
	if err := f.put(ctx, w, "forwarded"); err != nil {
		return nil, err
	}
	r, err := await(ctx, f.stop, w.done, "the leader did not confirm the write in time; it may still be applied: retry with the same request_id")
	if err != nil {
		return nil, err
	}
	return r.resp, r.err
}

// forward makes one call for the batch and hands each write its answer.
func (f *forwarder) forward(batch []*forwarding) {
	client := irxv1.NewNodeServiceClient(batch[0].conn)
	if _, old := f.noBatch.Load(batch[0].conn); old || len(batch) == 1 {
		f.forwardEach(client, batch)
		return
	}
	// The writes share the call, so it is bounded by the apply timeout
	// rather than by any one caller; a caller that gives up earlier stops
	// waiting for its own answer.
	ctx, cancel := context.WithTimeout(context.Background(), f.n.cfg.Raft.ApplyTimeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, forwardedKey, f.n.cfg.NodeID)
	cmds := make([]*irxv1.Command, len(batch))
	for i, w := range batch {
		cmds[i] = w.cmd
	}
	resp, err := client.ProposeBatch(ctx, &irxv1.ProposeBatchRequest{Commands: cmds})
	if grpcstatus.Code(err) == codes.Unimplemented {
		// A leader from before ProposeBatch, during a rolling upgrade:
		// nothing was proposed, so each write goes on its own, from now on
		// without asking.
		f.noBatch.Store(batch[0].conn, struct{}{})
		f.forwardEach(client, batch)
		return
	}
	if err == nil && len(resp.GetResults()) != len(batch) {
		err = fmt.Errorf("the leader answered %d of %d forwarded writes", len(resp.GetResults()), len(batch))
	}
	for i, w := range batch {
		if err != nil {
			w.done <- forwardResult{err: err}
			continue
		}
		r := resp.GetResults()[i]
		if len(r.GetCallStatus()) > 0 {
			w.done <- forwardResult{err: decodeRefusal(r.GetCallStatus())}
			continue
		}
		w.done <- forwardResult{resp: r.GetResponse()}
	}
}

// forwardEach forwards every write of batch with its own Propose call, a
// lone write without a goroutine of its own.
func (f *forwarder) forwardEach(client irxv1.NodeServiceClient, batch []*forwarding) {
	propose := func(w *forwarding) {
		resp, err := client.Propose(w.ctx, &irxv1.ProposeRequest{Command: w.cmd})
		w.done <- forwardResult{resp: resp, err: err}
	}
	if len(batch) == 1 {
		propose(batch[0])
		return
	}
	var wg sync.WaitGroup
	for _, w := range batch {
		wg.Go(func() { propose(w) })
	}
	wg.Wait()
}

// decodeRefusal is the error of the leader's core that an encoded
// google.rpc.Status in its answer stands for (errgrpc.FromStatus).
func decodeRefusal(b []byte) error {
	st := &status.Status{}
	if err := proto.Unmarshal(b, st); err != nil {
		return fmt.Errorf("leader's answer: %w", err)
	}
	return errgrpc.FromStatus(grpcstatus.FromProto(st))
}
