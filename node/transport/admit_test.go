package transport_test

import (
	"crypto/x509"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/node/transport"
	"github.com/irxfed/irx/pki"
)

// A node the admit function refuses after its connection was established
// (its certificate revoked) is cut by CloseRefused, and refused in every
// new handshake, in both directions.
func TestCloseRefusedCutsAndRefuses(t *testing.T) {
	ca := newCA(t)
	var refuseN2 atomic.Bool
	admit := func(id pki.Identity, _ *x509.Certificate) error {
		if refuseN2.Load() && id == pki.NodeIdentity(team, "n2") {
			return errors.New("certificate revoked")
		}
		return nil
	}
	a := newLayer(t, ca, "n1", transport.WithAdmit(admit))
	b := newLayer(t, ca, "n2")

	accepted := acceptOne(a)
	out, err := b.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var in io.ReadWriteCloser
	select {
	case in = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return")
	}
	if in == nil {
		t.Fatal("Accept failed")
	}
	if n := a.CloseRefused(); n != 0 {
		t.Fatalf("closed %d connections of an admitted node", n)
	}
	refuseN2.Store(true)
	if n := a.CloseRefused(); n != 1 {
		t.Fatalf("closed %d connections, want the one of n2", n)
	}
	_ = out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := out.Read(make([]byte, 1)); err == nil {
		t.Fatal("n2's connection still reads after it was cut")
	}
	if _, err := b.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second); err == nil {
		t.Fatal("n2 dialled n1 after it was refused")
	}
	if _, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second); err == nil {
		t.Fatal("n1 dialled the refused n2")
	}
}
