package main

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// wantPermission is what each operator API method must require, written
// out here and not read from the descriptors: a method registered on the
// operator API that this table does not list fails the test, and so does a
// method whose declared permission differs from what the table says.
var wantPermission = map[string]irxv1.Permission{
	"/irx.v1.IncidentService/CreateIncident":          irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.IncidentService/UpdateIncident":          irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.IncidentService/WithdrawIncident":        irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.PeerService/HandOffIncidentToPeer":       irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.IncidentService/GetIncident":             irxv1.Permission_PERMISSION_READ,
	"/irx.v1.IncidentService/ListIncidents":           irxv1.Permission_PERMISSION_READ,
	"/irx.v1.IncidentService/ListIncidentVersions":    irxv1.Permission_PERMISSION_READ,
	"/irx.v1.IncidentService/ExportIncidents":         irxv1.Permission_PERMISSION_READ,
	"/irx.v1.IncidentService/ImportIncidents":         irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.PolicyService/SetPolicy":                 irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.PolicyService/GetPolicy":                 irxv1.Permission_PERMISSION_READ,
	"/irx.v1.PolicyService/ListPolicies":              irxv1.Permission_PERMISSION_READ,
	"/irx.v1.PolicyService/ListPolicyVersions":        irxv1.Permission_PERMISSION_READ,
	"/irx.v1.PolicyService/PreviewDisclosure":         irxv1.Permission_PERMISSION_READ,
	"/irx.v1.PeerService/CreatePeer":                  irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.PeerService/UpdatePeer":                  irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.PeerService/DeletePeer":                  irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.PeerService/GetPeer":                     irxv1.Permission_PERMISSION_READ,
	"/irx.v1.PeerService/ListPeers":                   irxv1.Permission_PERMISSION_READ,
	"/irx.v1.PeerStreamService/ListPeerStreams":       irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AuditService/ExplainDisclosure":          irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AuditService/ListDisclosures":            irxv1.Permission_PERMISSION_READ,
	"/irx.v1.TeamService/GetTeamDescription":          irxv1.Permission_PERMISSION_READ,
	"/irx.v1.TeamService/UpdateTeamDescription":       irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.TeamService/GetPeerTeamDescription":      irxv1.Permission_PERMISSION_READ,
	"/irx.v1.ClusterService/GetClusterStatus":         irxv1.Permission_PERMISSION_READ,
	"/irx.v1.ClusterService/AddMember":                irxv1.Permission_PERMISSION_CLUSTER_WRITE,
	"/irx.v1.ClusterService/RemoveMember":             irxv1.Permission_PERMISSION_CLUSTER_WRITE,
	"/irx.v1.ClusterService/TransferLeadership":       irxv1.Permission_PERMISSION_CLUSTER_WRITE,
	"/irx.v1.AccessService/GrantRole":                 irxv1.Permission_PERMISSION_ACCESS_WRITE,
	"/irx.v1.AccessService/RevokeRole":                irxv1.Permission_PERMISSION_ACCESS_WRITE,
	"/irx.v1.AccessService/RevokeCertificate":         irxv1.Permission_PERMISSION_ACCESS_WRITE,
	"/irx.v1.AccessService/ListRoleBindings":          irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AccessService/ListRevokedCertificates":   irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AccessService/ListOperatorActions":       irxv1.Permission_PERMISSION_READ,
	"/irx.v1.StatisticsService/GetStatistics":         irxv1.Permission_PERMISSION_READ,
	"/irx.v1.StatisticsService/SpendPrivacyBudget":    irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.BackupService/Backup":                    irxv1.Permission_PERMISSION_CLUSTER_WRITE,
	"/irx.v1.RetentionService/GetRetentionPolicy":     irxv1.Permission_PERMISSION_READ,
	"/irx.v1.RetentionService/SetRetentionPolicy":     irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.RetentionService/PreviewRetention":       irxv1.Permission_PERMISSION_READ,
	"/irx.v1.RetentionService/ListRetentionDecisions": irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AlertService/ListAlerts":                 irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AlertService/GetAlert":                   irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AlertService/AcknowledgeAlert":           irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.AlertService/WatchAlerts":                irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AlertService/GetAlertSettings":           irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AlertService/UpdateAlertSettings":        irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.AlertService/IssueWarning":               irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.AlertService/ListWarnings":               irxv1.Permission_PERMISSION_READ,
	"/irx.v1.AlertService/AcknowledgeWarning":         irxv1.Permission_PERMISSION_INCIDENTS_WRITE,
	"/irx.v1.AlertService/PutSharingGroup":            irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.AlertService/DeleteSharingGroup":         irxv1.Permission_PERMISSION_POLICIES_WRITE,
	"/irx.v1.AlertService/ListSharingGroups":          irxv1.Permission_PERMISSION_READ,
}

// openMethods answer every operator certificate of the team, without a
// role: health and the API's own description.
var openServices = []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}

// rolePermissions is the documented meaning of each role
// (docs/operations.md, Access control).
var rolePermissions = map[irxv1.Role][]irxv1.Permission{
	irxv1.Role_ROLE_VIEWER:        {irxv1.Permission_PERMISSION_READ},
	irxv1.Role_ROLE_ANALYST:       {irxv1.Permission_PERMISSION_INCIDENTS_WRITE},
	irxv1.Role_ROLE_POLICY_ADMIN:  {irxv1.Permission_PERMISSION_POLICIES_WRITE},
	irxv1.Role_ROLE_CLUSTER_ADMIN: {irxv1.Permission_PERMISSION_CLUSTER_WRITE, irxv1.Permission_PERMISSION_ACCESS_WRITE},
}

// TestEveryOperatorMethodByRole calls every method of the operator API of a
// node with real certificates, as an operator bound to each role, one bound
// to none and a node of the team, and checks that exactly the roles the
// method's permission names get past the authorization (with an empty
// request, a permitted call fails validation or finds nothing, but never
// with PERMISSION_DENIED).
func TestEveryOperatorMethodByRole(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("dev", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id pki.Identity, usage pki.Usage) tls.Certificate {
		t.Helper()
		c, k, err := ca.Issue(pki.IssueRequest{Identity: id, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour, Now: time.Now(), Usage: usage})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	if err := ca.WriteFiles(caFile, filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	nc, nk, err := ca.Issue(pki.IssueRequest{Identity: pki.NodeIdentity("dev", "node1"), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour, Now: time.Now(), Usage: pki.UsageNode})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(certFile, keyFile, nc, nk); err != nil {
		t.Fatal(err)
	}
	api := freePort(t)
	startDaemon(t, append(baseArgs(filepath.Join(dir, "data")), "--team", "dev", "--node", "node1", "--api-addr", api, "--raft-addr", freePort(t),
		"--ca-file", caFile, "--cert-file", certFile, "--key-file", keyFile)...).waitFor(t, `operator API on \S+ \(mutual TLS`)

	dial := func(cert tls.Certificate) *grpc.ClientConn {
		t.Helper()
		conf, err := pki.ClientConfig(pki.StaticCertificate(cert), ca.Pool(), pki.ExpectNode("dev"))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(api, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The first operator of the team (admin) holds every role once the
	// leader committed the bootstrap binding; it binds the others.
	admin := dial(issue(pki.OperatorIdentity("dev", "admin"), pki.UsageClient))
	access := irxv1.NewAccessServiceClient(admin)
	for {
		_, err := access.ListRoleBindings(ctx, &irxv1.ListRoleBindingsRequest{})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the first operator never got its roles: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	type caller struct {
		name  string
		conn  *grpc.ClientConn
		perms []irxv1.Permission
		open  bool // may call the open services
	}
	var callers []caller
	for role, perms := range rolePermissions {
		name := strings.ToLower(strings.TrimPrefix(role.String(), "ROLE_"))
		name = strings.ReplaceAll(name, "_", "-")
		id := pki.OperatorIdentity("dev", name)
		if _, err := access.GrantRole(ctx, &irxv1.GrantRoleRequest{Identity: id.String(), Role: role}); err != nil {
			t.Fatalf("grant %s to %s: %v", role, id, err)
		}
		callers = append(callers, caller{name: name, conn: dial(issue(id, pki.UsageClient)), perms: perms, open: true})
	}
	callers = append(callers,
		caller{name: "unbound operator", conn: dial(issue(pki.OperatorIdentity("dev", "nobody"), pki.UsageClient)), open: true},
		caller{name: "node of the team", conn: dial(issue(pki.NodeIdentity("dev", "node2"), pki.UsageNode))})

	// The services the node actually serves, as reflection lists them.
	stream, err := grpc_reflection_v1.NewServerReflectionClient(admin).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var methods int
	seen := map[string]bool{}
	for _, svc := range resp.GetListServicesResponse().GetService() {
		if slices.Contains(openServices, svc.GetName()) {
			continue
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc.GetName()))
		if err != nil {
			t.Fatalf("served service %s: %v", svc.GetName(), err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			full := "/" + svc.GetName() + "/" + string(md.Name())
			seen[full] = true
			want, ok := wantPermission[full]
			if !ok {
				t.Errorf("%s is served on the operator API but not in this test's table: add it with the permission it must require", full)
				continue
			}
			if md.IsStreamingClient() {
				t.Errorf("%s streams from the client: extend this test to call it", full)
				continue
			}
			methods++
			for _, c := range callers {
				req := dynamicpb.NewMessage(md.Input())
				out := dynamicpb.NewMessage(md.Output())
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				var err error
				if md.IsStreamingServer() {
					// The first message, or the refusal, decides.
					var s grpc.ClientStream
					if s, err = c.conn.NewStream(callCtx, &grpc.StreamDesc{ServerStreams: true}, full); err == nil {
						if err = s.SendMsg(req); err == nil {
							_ = s.CloseSend()
							err = s.RecvMsg(out)
						}
					}
				} else {
					err = c.conn.Invoke(callCtx, full, req, out)
				}
				cancel()
				denied := status.Code(err) == codes.PermissionDenied
				allowed := slices.Contains(c.perms, want)
				switch {
				case allowed && denied:
					t.Errorf("%s: %s was refused: %v", full, c.name, err)
				case !allowed && !denied:
					t.Errorf("%s: %s was not refused (needs %s): %v", full, c.name, want, err)
				case denied && c.name != "node of the team" && !strings.Contains(status.Convert(err).Message(), want.String()):
					t.Errorf("%s: the refusal does not name the permission needed: %v", full, err)
				}
			}
		}
	}
	for m := range wantPermission {
		if !seen[m] {
			t.Errorf("%s is in the table but not served on the operator API", m)
		}
	}
	if methods < len(wantPermission) {
		t.Errorf("called %d methods, the table has %d", methods, len(wantPermission))
	}
}
