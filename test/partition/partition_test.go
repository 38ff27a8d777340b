// Package partition cuts a node of a three-node team off the network and
// heals it, with the nodes in our own containers (deploy/Dockerfile, FROM
// scratch) on private Docker networks. It is skipped, with the reason, when
// no Docker engine answers.
package partition

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

func dockerQuiet(args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = exec.CommandContext(ctx, "docker", args...).Run()
}

func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
		t.Skipf("skipped: no Docker engine answers (%v); partitions are tested with our own containers", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: the nodes' data directories are written by root in the containers; run as root")
	}
}

type member struct {
	name      string // node id and network alias
	container string
	dataDir   string
	apiAddr   string // published on 127.0.0.1
	client    client
}

type client struct {
	incidents irxv1.IncidentServiceClient
	cluster   irxv1.ClusterServiceClient
	health    healthpb.HealthClient
}

func TestPartitionedFollowerCannotCommitAndConverges(t *testing.T) {
	requireDocker(t)
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	prefix := "irxp-" + hex.EncodeToString(suffix[:])
	root := t.TempDir()

	// The image: our static binary on scratch.
	ctxDir := filepath.Join(root, "image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	moduleRoot := strings.TrimSuffix(strings.TrimSpace(run(t, "go", "env", "GOMOD")), "/go.mod")
	build := exec.Command("go", "build", "-o", filepath.Join(ctxDir, "irxd"), "./cmd/irxd")
	build.Dir, build.Env = moduleRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile(filepath.Join(moduleRoot, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), dockerfile, 0o644); err != nil {
		t.Fatal(err)
	}
	image := prefix + ":test"
	docker(t, "build", "-q", "-t", image, ctxDir)
	t.Cleanup(func() { dockerQuiet("rmi", "-f", image) })

	// Raft runs on one internal network; each node's operator API is
	// published from a network of its own, so cutting a node off the Raft
	// network leaves its clients able to reach it.
	raftNet := prefix + "-raft"
	docker(t, "network", "create", "--internal", raftNet)
	t.Cleanup(func() { dockerQuiet("network", "rm", raftNet) })

	ca, err := pki.NewCA("dev", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	members := make([]*member, 3)
	var list []string
	for i := range members {
		name := fmt.Sprintf("node%d", i+1)
		members[i] = &member{name: name, container: prefix + "-" + name, dataDir: filepath.Join(root, name)}
		list = append(list, name+"="+name+":7402")
		pkiDir := filepath.Join(members[i].dataDir, "pki")
		if err := os.MkdirAll(pkiDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := ca.WriteFiles(filepath.Join(pkiDir, pki.DevCACertFile), filepath.Join(pkiDir, pki.DevCAKeyFile)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		apiNet := m.container + "-api"
		docker(t, "network", "create", apiNet)
		t.Cleanup(func() { dockerQuiet("network", "rm", apiNet) })
		docker(t, "create", "--name", m.container, "--network", apiNet, "-p", "127.0.0.1::7400",
			"-v", m.dataDir+":/data", image,
			"--node", m.name, "--api-addr", "0.0.0.0:7400", "--raft-addr", "0.0.0.0:7402",
			"--raft-advertise", m.name+":7402", "--members", strings.Join(list, ","), "--log-level", "warn")
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s logs:\n%s", m.name, run(t, "docker", "logs", "--tail", "30", m.container))
			}
			dockerQuiet("rm", "-f", m.container)
		})
		docker(t, "network", "connect", "--alias", m.name, raftNet, m.container)
		docker(t, "start", m.container)
		port := docker(t, "port", m.container, "7400/tcp")
		m.apiAddr = strings.Split(port, "\n")[0]
	}

	// The operator API off loopback requires mutual TLS: use the operator
	// certificate the development PKI wrote.
	waitFor(t, 30*time.Second, "operator certificate", func() bool {
		_, err := os.Stat(filepath.Join(members[0].dataDir, "pki", pki.DevOperatorKeyFile))
		return err == nil
	})
	opCert, _, err := pki.LoadKeyPair(filepath.Join(members[0].dataDir, "pki", pki.DevOperatorCertFile), filepath.Join(members[0].dataDir, "pki", pki.DevOperatorKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := pki.ClientConfig(pki.StaticCertificate(opCert), ca.Pool(), pki.ExpectNode("dev"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		conn, err := grpc.NewClient(m.apiAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		m.client = client{irxv1.NewIncidentServiceClient(conn), irxv1.NewClusterServiceClient(conn), healthpb.NewHealthClient(conn)}
	}
	for _, m := range members {
		waitFor(t, 60*time.Second, m.name+" serving", func() bool {
			resp, err := m.client.health.Check(ctx(t, time.Second), &healthpb.HealthCheckRequest{})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		})
	}

	created := 0
	createOn := func(m *member, n int) {
		for i := 0; i < n; i++ {
			if _, err := m.client.incidents.CreateIncident(ctx(t, 10*time.Second), &irxv1.CreateIncidentRequest{Incident: sample(created)}); err != nil {
				t.Fatalf("create on %s: %v", m.name, err)
			}
			created++
		}
	}
	createOn(members[0], 20)

	var leader, cut, other *member
	for _, m := range members {
		st, err := m.client.cluster.GetClusterStatus(ctx(t, 5*time.Second), &irxv1.GetClusterStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetRole() == irxv1.NodeRole_NODE_ROLE_LEADER {
			leader = m
		} else if cut == nil {
			cut = m
		} else {
			other = m
		}
	}
	if leader == nil || cut == nil || other == nil {
		t.Fatal("no leader and two followers")
	}

	docker(t, "network", "disconnect", raftNet, cut.container)

	// The majority keeps committing, through the leader and the other
	// follower alike.
	createOn(leader, 50)
	createOn(other, 50)

	// The cut-off follower cannot commit: its clients get an error within
	// their deadline, never a false acknowledgement.
	_, err = cut.client.incidents.CreateIncident(ctx(t, 3*time.Second), &irxv1.CreateIncidentRequest{Incident: sample(999)})
	if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
		t.Fatalf("create on the cut-off follower: %v, want DEADLINE_EXCEEDED or UNAVAILABLE", err)
	}
	// A linearizable read cannot be served either; a stale read can.
	_, err = cut.client.incidents.GetIncident(ctx(t, 3*time.Second), &irxv1.GetIncidentRequest{Id: "dev:1"})
	if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
		t.Fatalf("linearizable read on the cut-off follower: %v", err)
	}
	if _, err := cut.client.incidents.GetIncident(ctx(t, 3*time.Second), &irxv1.GetIncidentRequest{Id: "dev:1", Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE}); err != nil {
		t.Fatalf("stale read on the cut-off follower: %v", err)
	}
	st, err := cut.client.cluster.GetClusterStatus(ctx(t, 5*time.Second), &irxv1.GetClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetLastTicket() >= uint64(created) {
		t.Fatalf("the cut-off follower saw %d tickets of %d", st.GetLastTicket(), created)
	}

	// Heal: everyone converges to the same state machine.
	docker(t, "network", "connect", "--alias", cut.name, raftNet, cut.container)
	var last string
	waitFor(t, 60*time.Second, "convergence", func() bool {
		var applied []uint64
		var digests []string
		for _, m := range members {
			st, err := m.client.cluster.GetClusterStatus(ctx(t, 5*time.Second), &irxv1.GetClusterStatusRequest{IncludeDigest: true})
			if err != nil {
				last = err.Error()
				return false
			}
			applied = append(applied, st.GetAppliedIndex())
			digests = append(digests, st.GetStateDigest())
			if st.GetLastTicket() != uint64(created) {
				last = fmt.Sprintf("%s has %d tickets, want %d", m.name, st.GetLastTicket(), created)
				return false
			}
		}
		last = fmt.Sprintf("applied %v digests %v", applied, digests)
		return applied[0] == applied[1] && applied[1] == applied[2] && digests[0] == digests[1] && digests[1] == digests[2]
	})
	t.Logf("converged: %s", last)
	if _, err := cut.client.incidents.GetIncident(ctx(t, 10*time.Second), &irxv1.GetIncidentRequest{Id: fmt.Sprintf("dev:%d", created)}); err != nil {
		t.Fatalf("healed follower, linearizable read: %v", err)
	}
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Logf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func sample(n int) *irxv1.Incident {
	return &irxv1.Incident{
		Tlp:            irxv1.Tlp_TLP_GREEN,
		Taxonomy:       &irxv1.Taxonomy{Class: "information-gathering", Type: "scanner"},
		AttackingHosts: []*irxv1.Host{{Addresses: []string{fmt.Sprintf("198.51.100.%d", n%250+1)}}},
	}
}
