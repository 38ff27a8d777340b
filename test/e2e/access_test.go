package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// TestRolesRevocationAndActions runs a three-node team whose operator API
// requires certificates even on loopback: the team's first operator
// grants an analyst her roles through one node, she creates an incident
// through another, the record of operator actions and the incident's
// history name her and her request id, and once her certificate is
// revoked every node refuses her next call and her open stream ends.
func TestRolesRevocationAndActions(t *testing.T) {
	base := t.TempDir()
	cfg := filepath.Join(base, "irxd.yaml")
	if err := os.WriteFile(cfg, []byte("tls:\n  api_tls_on_loopback: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*irxdtest.Node, 3)
	var members []string
	for i := range nodes {
		n, err := irxdtest.NewNode(irxdBin, filepath.Join(base, fmt.Sprintf("node%d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		members = append(members, fmt.Sprintf("node%d=%s", i+1, n.RaftAddr))
	}
	if err := irxdtest.ShareDevCA("dev", nodes...); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		n.Args = []string{"--team", "dev", "--node", fmt.Sprintf("node%d", i+1), "--members", strings.Join(members, ","), "--config", cfg}
		irxdtest.LaunchNode(t, n)
	}
	pkiDir := filepath.Join(nodes[0].DataDir, "pki")
	ca, err := pki.LoadCA(filepath.Join(pkiDir, pki.DevCACertFile), filepath.Join(pkiDir, pki.DevCAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	dialAs := func(id pki.Identity, n *irxdtest.Node) *grpc.ClientConn {
		t.Helper()
		c, k, err := ca.Issue(pki.IssueRequest{Identity: id, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour, Now: time.Now(), Usage: pki.UsageClient})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := pki.ClientConfig(pki.StaticCertificate(cert), ca.Pool(), pki.ExpectNode("dev"))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(n.APIAddr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adminID, aliceID := pki.OperatorIdentity("dev", pki.DevOperatorName), pki.OperatorIdentity("dev", "alice")
	admin := irxv1.NewAccessServiceClient(dialAs(adminID, nodes[1]))
	// The team's first operator holds every role once a leader committed
	// the bootstrap binding.
	waitUntil(t, ctx, "the first operator's binding", func() error {
		_, err := admin.ListRoleBindings(ctx, &irxv1.ListRoleBindingsRequest{})
		return err
	})
	alice := make([]*grpc.ClientConn, len(nodes))
	for i, n := range nodes {
		alice[i] = dialAs(aliceID, n)
	}
	// Without a binding, alice is refused, with what she lacks.
	_, err = irxv1.NewIncidentServiceClient(alice[2]).CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: sample(1)})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), aliceID.String()) ||
		!strings.Contains(err.Error(), "CreateIncident") || !strings.Contains(err.Error(), "ROLE_ANALYST") {
		t.Fatalf("create without a role: %v", err)
	}
	for _, role := range []irxv1.Role{irxv1.Role_ROLE_ANALYST, irxv1.Role_ROLE_VIEWER} {
		if _, err := admin.GrantRole(ctx, &irxv1.GrantRoleRequest{Identity: aliceID.String(), Role: role}); err != nil {
			t.Fatalf("grant %s: %v", role, err)
		}
	}
	// Every node applies the grant; each answers her once it has.
	var created *irxv1.Incident
	waitUntil(t, ctx, "alice's create through node3", func() error {
		callCtx := metadata.AppendToOutgoingContext(ctx, "x-request-id", "e2e-alice-create")
		resp, err := irxv1.NewIncidentServiceClient(alice[2]).CreateIncident(callCtx, &irxv1.CreateIncidentRequest{Incident: sample(1), RequestId: "alice-1"})
		created = resp.GetIncident()
		return err
	})
	got, err := irxv1.NewIncidentServiceClient(alice[0]).GetIncident(ctx, &irxv1.GetIncidentRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.GetVersionAction(); a.GetIdentity() != aliceID.String() || a.GetRequestId() != "e2e-alice-create" || a.GetMethod() != "/irx.v1.IncidentService/CreateIncident" {
		t.Errorf("version 1's action: %v", a)
	}

	// An open stream of hers, on another node than the revocation goes to.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := healthpb.NewHealthClient(alice[1]).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := watch.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()

	revokeCtx := metadata.AppendToOutgoingContext(ctx, "x-request-id", "e2e-revoke-alice")
	revoked, err := admin.RevokeCertificate(revokeCtx, &irxv1.RevokeCertificateRequest{Identity: aliceID.String(), Reason: "laptop stolen"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if r := revoked.GetRevokedCertificate(); r.GetRevokedBy() != adminID.String() || r.GetReason() != "laptop stolen" {
		t.Errorf("revocation: %v", r)
	}
	select {
	case err := <-ended:
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("the stream ended with %v, not PERMISSION_DENIED for the revocation", err)
		}
		t.Logf("alice's open stream ended %v after the revocation was committed", time.Since(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("alice's open stream was not cut")
	}
	for i, conn := range alice {
		waitUntil(t, ctx, fmt.Sprintf("node%d refusing alice", i+1), func() error {
			_, err := irxv1.NewIncidentServiceClient(conn).ListIncidents(ctx, &irxv1.ListIncidentsRequest{})
			if status.Code(err) == codes.PermissionDenied && strings.Contains(err.Error(), "revoked") {
				return nil
			}
			return fmt.Errorf("still answered: %v", err)
		})
	}

	// The record of actions: hers, and the admin's on her binding.
	actions, err := admin.ListOperatorActions(ctx, &irxv1.ListOperatorActionsRequest{Identity: aliceID.String()})
	if err != nil {
		t.Fatal(err)
	}
	if as := actions.GetActions(); len(as) != 1 || as[0].GetTarget() != "incident/"+created.GetId() || as[0].GetVersion() != 1 ||
		as[0].GetRequestId() != "e2e-alice-create" || as[0].GetTime() == nil {
		t.Errorf("alice's actions: %v", as)
	}
	actions, err = admin.ListOperatorActions(ctx, &irxv1.ListOperatorActionsRequest{Identity: adminID.String()})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, a := range actions.GetActions() {
		targets = append(targets, a.GetMethod()+" "+a.GetTarget()+" "+a.GetRequestId())
	}
	want := []string{
		"/irx.v1.AccessService/GrantRole binding/" + aliceID.String(),
		"/irx.v1.AccessService/GrantRole binding/" + aliceID.String(),
		"/irx.v1.AccessService/RevokeCertificate certificate/" + aliceID.String() + " e2e-revoke-alice",
	}
	if len(targets) != len(want) {
		t.Fatalf("the admin's actions:\n%s", strings.Join(targets, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(targets[i], want[i]) {
			t.Errorf("action %d: %q, want %q", i, targets[i], want[i])
		}
	}
}

// waitUntil retries f until it succeeds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRevokedNodeDropsOutOfTheTeam revokes a follower's node certificate:
// the other nodes close its intra-cluster connections and refuse new ones,
// so it receives no more entries and cannot forward writes, while the
// remaining majority goes on.
func TestRevokedNodeDropsOutOfTheTeam(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	leader, clients := roles(t, nodes)
	revokedIdx, otherIdx := (leader+1)%3, (leader+2)%3
	ctx := ctxT(t)
	create(t, clients[revokedIdx], sample(1)) // it serves before the revocation

	conn, err := nodes[leader].Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	revokedID := pki.NodeIdentity("dev", fmt.Sprintf("node%d", revokedIdx+1))
	if _, err := irxv1.NewAccessServiceClient(conn).RevokeCertificate(ctx, &irxv1.RevokeCertificateRequest{Identity: revokedID.String(), Reason: "retired"}); err != nil {
		t.Fatal(err)
	}
	var last *irxv1.Incident
	for i := range 5 {
		last = create(t, clients[leader], sample(i+2))
	}
	// The other follower has it (a linearizable read waits for it)...
	if _, err := clients[otherIdx].incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: last.GetId()}); err != nil {
		t.Fatalf("the remaining follower: %v", err)
	}
	// ... the revoked one never gets it, and cannot forward a write.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		_, err := clients[revokedIdx].incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: last.GetId(), Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("the revoked node answered %s: %v", last.GetId(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := clients[revokedIdx].incidents.CreateIncident(callCtx, &irxv1.CreateIncidentRequest{Incident: sample(9)}); err == nil {
		t.Fatal("a write through the revoked node succeeded")
	}
	if logs := nodes[leader].Logs(); !strings.Contains(logs, "certificate revoked") {
		t.Errorf("the leader logged no refusal of the revoked node:\n%s", logs)
	}
}
