package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestUpdatePeerNeverLosesAnUpdate: updates of a peer made at once never
// overwrite each other. Operators who each add a revoked certificate to
// the list (read, append, UpdatePeer with the etag read, again on
// ABORTED) all find theirs in it; updates of other fields without an
// etag, through other nodes, all stand (the node applies the mask to what
// is stored, again if another change got in between, and answers ABORTED,
// having applied nothing, only when that keeps happening); an etag that no longer names the
// stored configuration is refused with ABORTED and changes nothing.
func TestUpdatePeerNeverLosesAnUpdate(t *testing.T) {
	a := startTeam(t, "cert-a", 3)
	if _, err := a.peers[0].CreatePeer(ctxT(t), &irxv1.CreatePeerRequest{Peer: &irxv1.Peer{
		TeamId: "cert-b", CaCertificatePem: string(mustNewCA(t, "cert-b").CertPEM()),
	}}); err != nil {
		t.Fatal(err)
	}
	read := func(node int) *irxv1.Peer {
		t.Helper()
		got, err := a.peers[node].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-b"})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetPeer()
	}
	first := read(0)
	if first.GetEtag() == "" {
		t.Fatal("GetPeer returned no etag")
	}

	const operators = 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*operators)
	for i := range operators {
		fp := fmt.Sprintf("SHA256:%064x", i+1)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 50 {
				got, err := a.peers[i%3].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-b"})
				if err != nil {
					errs <- err
					return
				}
				p := got.GetPeer()
				p.RevokedCertificateFingerprints = append(p.RevokedCertificateFingerprints, fp)
				_, err = a.peers[i%3].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{Peer: p, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"revoked_certificate_fingerprints"}}})
				if status.Code(err) == codes.Aborted {
					continue
				}
				errs <- err
				return
			}
			errs <- fmt.Errorf("operator %d: still ABORTED after 50 attempts", i)
		}()
		go func() {
			defer wg.Done()
			p := &irxv1.Peer{TeamId: "cert-b", DisplayName: fmt.Sprintf("CERT-B %d", i), Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", 20000+i)}}
			path := "display_name"
			if i%2 == 1 {
				path = "endpoints"
			}
			// The node retries a few times itself; ABORTED after that
			// says nothing was applied, and the caller tries again.
			for range 50 {
				_, err := a.peers[(i+1)%3].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{Peer: p, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}}})
				if status.Code(err) != codes.Aborted {
					errs <- err
					return
				}
			}
			errs <- fmt.Errorf("update %d: still ABORTED after 50 attempts", i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	last := read(0)
	for i := range operators {
		if fp := fmt.Sprintf("SHA256:%064x", i+1); !slices.Contains(last.GetRevokedCertificateFingerprints(), fp) {
			t.Errorf("operator %d's revocation was lost: %v", i, last.GetRevokedCertificateFingerprints())
		}
	}
	if last.GetDisplayName() == "" || len(last.GetEndpoints()) != 1 {
		t.Errorf("an update without an etag was lost: %q %v", last.GetDisplayName(), last.GetEndpoints())
	}

	// The etag read first names a configuration long gone.
	stale := &irxv1.Peer{TeamId: "cert-b", Disabled: true, Etag: first.GetEtag()}
	_, err := a.peers[1].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{Peer: stale, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"disabled"}}})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("UpdatePeer with a stale etag: %v", err)
	}
	if now := read(0); now.GetDisabled() || now.GetEtag() != last.GetEtag() {
		t.Fatalf("the refused update changed the peer: disabled %v, etag %s → %s", now.GetDisabled(), last.GetEtag(), now.GetEtag())
	}
	// With the current one it applies, and the etag moves.
	stale.Etag = last.GetEtag()
	resp, err := a.peers[2].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{Peer: stale, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"disabled"}}})
	if err != nil || !resp.GetPeer().GetDisabled() || resp.GetPeer().GetEtag() == last.GetEtag() || resp.GetPeer().GetEtag() == "" {
		t.Fatalf("UpdatePeer with the current etag: %v, %v", resp.GetPeer(), err)
	}
}
