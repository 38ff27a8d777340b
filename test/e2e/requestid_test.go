package e2e

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// TestRequestIDReuseThroughFollowers: a request id's body digest travels
// with the write forwarded by a follower; every node answers a retry with
// the first record (replayed), and another body with ALREADY_EXISTS naming
// the record, from whichever node it arrives at.
func TestRequestIDReuseThroughFollowers(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	leader, clients := roles(t, nodes)
	f1, f2 := clients[(leader+1)%3], clients[(leader+2)%3]
	ctx := ctxT(t)

	green := sample(1)
	green.Tlp = irxv1.Tlp_TLP_GREEN
	first, err := f1.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: green, RequestId: "e2e-1"})
	if err != nil || first.GetRequestReplayed() {
		t.Fatalf("create through a follower: %v, %v", first, err)
	}
	id := first.GetIncident().GetId()
	for _, c := range []client{f2, clients[leader]} {
		again, err := c.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: sample(1), RequestId: "e2e-1"})
		if err == nil {
			t.Fatalf("another body (TLP:AMBER) under the same request id answered %v", again.GetIncident())
		}
		st := status.Convert(err)
		named := ""
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.ResourceInfo); ok {
				named = ri.GetResourceName()
			}
		}
		if st.Code() != codes.AlreadyExists || named != id || !strings.Contains(st.Message(), "different incident body") {
			t.Fatalf("reuse with another body: %v (resource %q), want ALREADY_EXISTS naming %s", err, named, id)
		}
		retry, err := c.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: green, RequestId: "e2e-1"})
		if err != nil || !retry.GetRequestReplayed() || retry.GetIncident().GetId() != id {
			t.Fatalf("retry with the same body: %v, %v", retry, err)
		}
	}
	if st := clusterStatus(t, clients[leader]); st.GetLastTicket() != 1 {
		t.Fatalf("last ticket %d after one create and its reuses", st.GetLastTicket())
	}
}
