package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// revokeBound is how long the revocation test waits for what should take
// under a second (a cut) or a few seconds (a puller's reconnection):
// generous, for a busy two-core machine.
const revokeBound = 30 * time.Second

// rawStream is a Subscribe stream to one node of A, opened with a
// certificate of B by the test itself, that reads until it ends.
type rawStream struct {
	node  int
	end   chan error
	endAt time.Time // set before end is sent

	mu  sync.Mutex
	ids map[string]bool // incidents received
}

func (s *rawStream) received(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

// openRaw subscribes to addr with cert and waits for the first response,
// so the stream is admitted and open when it returns.
func openRaw(t *testing.T, node int, addr string, cert tls.Certificate, aPool *x509.CertPool) *rawStream {
	t.Helper()
	stream, err := subscribeRaw(t, addr, cert, aPool)
	if err != nil {
		t.Fatalf("node %d: Subscribe with B's certificate: %v", node, err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("node %d: the first response to B's certificate: %v", node, err)
	}
	s := &rawStream{node: node, end: make(chan error, 1), ids: map[string]bool{}}
	record := func(resp *irxv1.SubscribeResponse) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, it := range resp.GetItems() {
			s.ids[it.GetIncident().GetId()] = true
		}
	}
	record(first)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				s.endAt = time.Now()
				s.end <- err
				return
			}
			record(resp)
		}
	}()
	return s
}

func subscribeRaw(t *testing.T, addr string, cert tls.Certificate, aPool *x509.CertPool) (irxv1.FederationService_SubscribeClient, error) {
	t.Helper()
	conf, err := pki.ClientConfig(pki.StaticCertificate(cert), aPool, pki.ExpectNode("cert-a"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return irxv1.NewFederationServiceClient(conn).Subscribe(ctx, &irxv1.SubscribeRequest{})
}

func refusedOrClosed(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unavailable
}

var cutLine = regexp.MustCompile(`(?m)^(irx_peer_(?:streams|connections)_cut_total)\{peer="([^"]+)",reason="([^"]+)"\} (\S+)$`)

// cutCounts reads a node's cut counters: name/peer/reason -> value.
func cutCounts(t *testing.T, metricsAddr string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range cutLine.FindAllStringSubmatch(scrape(t, metricsAddr), -1) {
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]+"/"+m[2]+"/"+m[3]] = v
	}
	return out
}

// TestFederationLiveRevocation: B follows A's feed; at A the peer B is
// deleted, then (re-created) disabled, then pinned to another CA, then one
// of its certificates is revoked. Each time every open stream of B, on
// every node of A, ends within a second or so, A's metrics count the cut on
// each node, B's puller is refused from then on, and a record A creates
// afterwards does not reach B until B is admitted again. Revoking one
// certificate leaves B's other certificates connected.
func TestFederationLiveRevocation(t *testing.T) {
	a, metricsAddrs := startTeamWithMetrics(t, "cert-a", 3)
	nodes := a.nodes
	b := startTeam(t, "cert-b", 1)
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1))

	aCA, err := nodes[0].CACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	aPool, err := pki.NewCertPool([]byte(aCA))
	if err != nil {
		t.Fatal(err)
	}
	bPKI := filepath.Join(b.nodes[0].DataDir, "pki")
	// B's own node certificate, the one its puller presents.
	bCert, err := tls.LoadX509KeyPair(filepath.Join(bPKI, pki.DevNodeCertFile), filepath.Join(bPKI, pki.DevNodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bLeaf, err := x509.ParseCertificate(bCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	bCA, err := pki.LoadCA(filepath.Join(bPKI, pki.DevCACertFile), filepath.Join(bPKI, pki.DevCAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bPeer, err := irxdtest.PeerRecord("cert-b", b.nodes, false)
	if err != nil {
		t.Fatal(err)
	}

	created := 0
	createAtA := func() *irxv1.Incident {
		created++
		return create(t, a.clients[created%3], shareable(created, irxv1.Tlp_TLP_GREEN))
	}
	following := func() error {
		resp, err := b.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"})
		if err != nil {
			return err
		}
		if st := resp.GetPeer().GetStatus(); !st.GetConnected() {
			return fmt.Errorf("B does not follow A: %v", st)
		}
		return nil
	}
	// refusedAfter waits until B's puller failed to follow A after since:
	// it tried again, and was refused.
	refusedAfter := func(since time.Time) string {
		t.Helper()
		var last string
		eventually(t, revokeBound, "B's puller is refused", func() error {
			resp, err := b.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"})
			if err != nil {
				return err
			}
			st := resp.GetPeer().GetStatus()
			if st.GetConnected() || st.GetLastErrorTime() == nil || !st.GetLastErrorTime().AsTime().After(since) {
				return fmt.Errorf("B's status of A: %v", st)
			}
			last = st.GetLastError()
			return nil
		})
		return last
	}
	openAll := func(cert tls.Certificate) []*rawStream {
		var out []*rawStream
		for i, n := range nodes {
			out = append(out, openRaw(t, i, n.FedAddr, cert, aPool))
		}
		return out
	}

	// B follows A.
	first := createAtA()
	eventually(t, revokeBound, "B has A's first record", hasVersion(b.clients[0], first.GetId(), 1))
	eventually(t, revokeBound, "B follows A", following)

	// phase makes one change at A, with streams of B open on every node of
	// A, and checks they are all cut, that B is refused, and that a record
	// created afterwards does not reach B. restore admits B again, and the
	// record then arrives.
	phase := func(reason string, change, restore func()) {
		t.Helper()
		streams := openAll(bCert)
		before := make([]map[string]float64, len(nodes))
		for i := range nodes {
			before[i] = cutCounts(t, metricsAddrs[i])
		}
		changed := time.Now()
		change()
		applied := time.Since(changed)
		for _, s := range streams {
			select {
			case err := <-s.end:
				if !refusedOrClosed(err) {
					t.Errorf("%s: node %d: B's stream ended with %v, want PermissionDenied or Unavailable", reason, s.node, err)
				}
				t.Logf("%s: node %d cut B's stream %v after the change was requested (the call took %v): %v",
					reason, s.node, s.endAt.Sub(changed).Round(time.Millisecond), applied.Round(time.Millisecond), status.Code(err))
			case <-time.After(revokeBound):
				t.Fatalf("%s: node %d: B's stream is still open %v after the change", reason, s.node, revokeBound)
			}
		}
		// Every node counted what it cut: at least the test's stream.
		for i := range nodes {
			eventually(t, revokeBound, fmt.Sprintf("%s: node %d counts the cut", reason, i), func() error {
				after := cutCounts(t, metricsAddrs[i])
				for _, name := range []string{"irx_peer_streams_cut_total", "irx_peer_connections_cut_total"} {
					key := name + "/cert-b/" + reason
					if after[key] < before[i][key]+1 {
						return fmt.Errorf("%s %v, was %v", key, after[key], before[i][key])
					}
				}
				return nil
			})
		}
		// A new stream is refused, B's puller too, and a record created
		// now does not reach B.
		if stream, err := subscribeRaw(t, nodes[0].FedAddr, bCert, aPool); err == nil {
			if _, err := stream.Recv(); !refusedOrClosed(err) {
				t.Errorf("%s: a new stream of B: %v, want it refused", reason, err)
			}
		} else if !refusedOrClosed(err) {
			t.Errorf("%s: a new stream of B: %v", reason, err)
		}
		later := createAtA()
		t.Logf("%s: B's puller: %s", reason, refusedAfter(time.Now()))
		if _, err := get(b.clients[0], later.GetId()); status.Code(err) != codes.NotFound {
			t.Fatalf("%s: B holds %s, created after it was refused (%v)", reason, later.GetId(), err)
		}
		for _, s := range streams {
			if s.received(later.GetId()) {
				t.Fatalf("%s: node %d sent %s to B after the change", reason, s.node, later.GetId())
			}
		}
		restore()
		eventually(t, revokeBound, reason+": B has the record once admitted again", hasVersion(b.clients[0], later.GetId(), 1))
		eventually(t, revokeBound, reason+": B follows A again", following)
	}
	update := func(p *irxv1.Peer, paths ...string) {
		t.Helper()
		if _, err := a.peers[1].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{Peer: p, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}); err != nil {
			t.Fatalf("UpdatePeer %v: %v", paths, err)
		}
	}

	phase("deleted", func() {
		if _, err := a.peers[0].DeletePeer(ctxT(t), &irxv1.DeletePeerRequest{TeamId: "cert-b"}); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if _, err := a.peers[2].CreatePeer(ctxT(t), &irxv1.CreatePeerRequest{Peer: bPeer}); err != nil {
			t.Fatal(err)
		}
	})
	phase("disabled", func() {
		update(&irxv1.Peer{TeamId: "cert-b", Disabled: true}, "disabled")
	}, func() {
		update(&irxv1.Peer{TeamId: "cert-b", Disabled: false}, "disabled")
	})
	rotated, err := pki.NewCA("cert-b", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	phase("ca_changed", func() {
		update(&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(rotated.CertPEM())}, "ca_certificate_pem")
	}, func() {
		update(&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: bPeer.GetCaCertificatePem()}, "ca_certificate_pem")
	})

	// Revoking B's node certificate leaves another certificate of B
	// connected: it goes on receiving.
	other := issueFor(t, bCA, pki.NodeIdentity("cert-b", "n9"))
	spared := openAll(other)
	phase("certificate_revoked", func() {
		update(&irxv1.Peer{TeamId: "cert-b", RevokedCertificateFingerprints: []string{pki.Fingerprint(bLeaf)}}, "revoked_certificate_fingerprints")
	}, func() {
		// Shown by GetPeer and ListPeers before it is lifted.
		got, err := a.peers[2].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-b"})
		if err != nil || !slices.Equal(got.GetPeer().GetRevokedCertificateFingerprints(), []string{pki.Fingerprint(bLeaf)}) {
			t.Errorf("GetPeer: %v, %v", got.GetPeer().GetRevokedCertificateFingerprints(), err)
		}
		list, err := a.peers[0].ListPeers(ctxT(t), &irxv1.ListPeersRequest{})
		if err != nil || len(list.GetPeers()) != 1 || len(list.GetPeers()[0].GetRevokedCertificateFingerprints()) != 1 {
			t.Errorf("ListPeers: %v, %v", list, err)
		}
		update(&irxv1.Peer{TeamId: "cert-b"}, "revoked_certificate_fingerprints")
	})
	last := createAtA()
	for _, s := range spared {
		eventually(t, revokeBound, fmt.Sprintf("node %d: the stream of B's other certificate receives", s.node), func() error {
			select {
			case err := <-s.end:
				return fmt.Errorf("ended: %v", err)
			default:
			}
			if !s.received(last.GetId()) {
				return fmt.Errorf("no %s yet", last.GetId())
			}
			return nil
		})
	}

	// Bad input changes nothing.
	_, err = a.peers[0].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{
		Peer:       &irxv1.Peer{TeamId: "cert-b", RevokedCertificateFingerprints: []string{pki.Fingerprint(bLeaf), "SHA256:not-hex"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"revoked_certificate_fingerprints"}},
	})
	assertInvalid(t, err, "peer.revoked_certificate_fingerprints[1]")
	tooMany := make([]string, 257)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("SHA256:%064x", i)
	}
	_, err = a.peers[0].CreatePeer(ctxT(t), &irxv1.CreatePeerRequest{Peer: &irxv1.Peer{
		TeamId: "cert-c", CaCertificatePem: string(mustNewCA(t, "cert-c").CertPEM()), RevokedCertificateFingerprints: tooMany,
	}})
	assertInvalid(t, err, "peer.revoked_certificate_fingerprints")
	got, err := a.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-b"})
	if err != nil || len(got.GetPeer().GetRevokedCertificateFingerprints()) != 0 {
		t.Errorf("after refused updates: %v, %v", got.GetPeer().GetRevokedCertificateFingerprints(), err)
	}
	if _, err := a.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-c"}); status.Code(err) != codes.NotFound {
		t.Errorf("a refused CreatePeer stored cert-c: %v", err)
	}
	// CreatePeer takes the list, in any case of hex; it is stored in
	// lower case.
	upper := "SHA256:" + strings.ToUpper(strings.TrimPrefix(pki.Fingerprint(bLeaf), "SHA256:"))
	resp, err := a.peers[0].CreatePeer(ctxT(t), &irxv1.CreatePeerRequest{Peer: &irxv1.Peer{
		TeamId: "cert-c", CaCertificatePem: string(mustNewCA(t, "cert-c").CertPEM()), RevokedCertificateFingerprints: []string{upper},
	}})
	if err != nil || !slices.Equal(resp.GetPeer().GetRevokedCertificateFingerprints(), []string{pki.Fingerprint(bLeaf)}) {
		t.Errorf("CreatePeer with a revoked certificate: %v, %v", resp.GetPeer().GetRevokedCertificateFingerprints(), err)
	}
}

func issueFor(t *testing.T, ca *pki.CA, id pki.Identity) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{Identity: id, Usage: pki.UsageNode, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustNewCA(t *testing.T, team string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(team, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
