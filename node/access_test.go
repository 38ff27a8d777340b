package node

import (
	"strings"
	"testing"

	"google.golang.org/grpc"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// A service whose methods declare no permission cannot be served on the
// operator API: resolving the permissions fails, naming every such method,
// and the node then refuses to start.
func TestMethodsWithoutPermissionAreNamed(t *testing.T) {
	s := grpc.NewServer()
	irxv1.RegisterAccessServiceServer(s, irxv1.UnimplementedAccessServiceServer{})
	perms, _, err := MethodPermissions(s)
	if err != nil {
		t.Fatalf("AccessService declares every permission: %v", err)
	}
	if got := perms["/irx.v1.AccessService/GrantRole"]; got != irxv1.Permission_PERMISSION_ACCESS_WRITE {
		t.Errorf("GrantRole requires %s", got)
	}
	// NodeService is intra-cluster only and declares none.
	irxv1.RegisterNodeServiceServer(s, irxv1.UnimplementedNodeServiceServer{})
	_, _, err = MethodPermissions(s)
	if err == nil || !strings.Contains(err.Error(), "/irx.v1.NodeService/Propose") {
		t.Fatalf("NodeService on the operator API: %v", err)
	}
}
