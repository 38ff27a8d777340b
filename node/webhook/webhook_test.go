package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/node/webhook"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// state is a real state machine holding one alert: two records with the
// same C2 address.
func state(t *testing.T) *fsm.FSM {
	t.Helper()
	f, err := fsm.Open(filepath.Join(t.TempDir(), "state"), "cert-a", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 2 {
		cmd := &irxv1.Command{ProposeTime: timestamppb.New(now), Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
			Incident: &irxv1.Incident{
				Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
				AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}},
			},
		}}}
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	return f
}

func pool(srv *httptest.Server) *tls.Config {
	p := x509.NewCertPool()
	p.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: p}
}

// TestDelivery: a signed POST of the alert, a failure answered and
// retried, and, for an endpoint that always fails, a dead letter.
func TestDelivery(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	var calls atomic.Int32
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // the first attempt fails
			return
		}
		if !webhook.Verify(secret, body, r.Header.Get(webhook.SignatureHeader)) || r.Header.Get(webhook.EventHeader) != "alert" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer srv.Close()
	broken := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer broken.Close()

	f := state(t)
	tlsConf := pool(srv)
	tlsConf.RootCAs.AddCert(broken.Certificate())
	s := webhook.New([]webhook.Hook{{URL: srv.URL + "/irx", Secret: secret}, {URL: broken.URL, Secret: secret}}, f,
		webhook.Options{TLS: tlsConf, Attempts: 3, FirstRetry: 10 * time.Millisecond, PollEvery: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	for {
		delivered, failures, dead := s.Counts()
		if delivered >= 1 && failures >= 1 && dead >= 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("delivered %d, failures %d, dead letters %d", delivered, failures, dead)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0]["value"] != "ip:198.51.100.7" || got[0]["state"] != "ALERT_STATE_OPEN" {
		t.Fatalf("posted %v", got)
	}
	if calls.Load() < 2 {
		t.Fatalf("%d calls: the failed attempt was not retried", calls.Load())
	}
}

func TestCheck(t *testing.T) {
	secret := []byte("0123456789abcdef")
	for _, c := range []struct {
		hook      webhook.Hook
		allowHTTP bool
		field     string
	}{
		{webhook.Hook{URL: "https://hooks.example/irx", Secret: secret}, false, ""},
		{webhook.Hook{URL: "http://hooks.example/irx", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "http://hooks.example/irx", Secret: secret}, true, ""},
		{webhook.Hook{URL: "ftp://hooks.example/", Secret: secret}, true, "webhooks[0].url"},
		{webhook.Hook{URL: "https://127.0.0.1:7400/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://localhost:7400/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://hooks.example/", Secret: []byte("short")}, false, "webhooks[0].secret_file"},
		// Every listener given is the node's, whichever spelling reaches it.
		{webhook.Hook{URL: "https://127.0.0.1:7401/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://[::1]:7401/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://LOCALHOST.:7402/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://[::ffff:127.0.0.1]:7402/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://Irx1.Cert.Example:7403/", Secret: secret}, false, "webhooks[0].url"},
		{webhook.Hook{URL: "https://203.0.113.9:7404/", Secret: secret}, false, "webhooks[0].url"},
		// The same host on a port the node does not serve, and a loopback
		// listener's port on another host, are someone else.
		{webhook.Hook{URL: "https://127.0.0.1:7499/", Secret: secret}, false, ""},
		{webhook.Hook{URL: "https://irx1.cert.example:7400/", Secret: secret}, false, ""},
		{webhook.Hook{URL: "https://203.0.113.10:7404/", Secret: secret}, false, ""},
	} {
		err := webhook.Check([]webhook.Hook{c.hook}, c.allowHTTP,
			[]string{"127.0.0.1:7400", "0.0.0.0:7401", "localhost:7402", "irx1.cert.example:7403", "203.0.113.9:7404", ""})
		var verr *record.ValidationError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%v: %v", c.hook.URL, err)
		case c.field != "" && (!errors.As(err, &verr) || !strings.Contains(err.Error(), c.field)):
			t.Errorf("%v: %v, want a violation of %s", c.hook.URL, err, c.field)
		}
	}
}

// TestCheckWildcardListener: a listener on a wildcard address answers at
// every address of the machine, so a URL naming any of them is the node.
func TestCheckWildcardListener(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var tried int
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		tried++
		u := "https://" + net.JoinHostPort(n.IP.String(), "7401") + "/irx"
		hook := []webhook.Hook{{URL: u, Secret: []byte("0123456789abcdef")}}
		for _, wildcard := range []string{"0.0.0.0:7401", "[::]:7401", ":7401"} {
			if err := webhook.Check(hook, false, []string{wildcard}); err == nil || !strings.Contains(err.Error(), "points at the node itself") {
				t.Errorf("%s with a listener on %s: %v", u, wildcard, err)
			}
		}
		if err := webhook.Check(hook, false, []string{"0.0.0.0:7409"}); err != nil {
			t.Errorf("%s with a listener on another port: %v", u, err)
		}
	}
	if tried == 0 {
		t.Skip("no interface addresses")
	}
}

// countingSource counts the sender's reads of every warning.
type countingSource struct {
	*fsm.FSM
	warningReads atomic.Int32
}

func (c *countingSource) EachWarning(fn func(*irxv1.Warning) error) error {
	c.warningReads.Add(1)
	return c.FSM.EachWarning(fn)
}

// TestWarningsReadOnlyWhenChanged: every applied entry wakes the sender,
// but it reads the warnings only once per term and then when one changed;
// a new warning is posted, also one with no recipients (as a warning a
// peer delivered has none).
func TestWarningsReadOnlyWhenChanged(t *testing.T) {
	var mu sync.Mutex
	events := map[string]int{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		events[r.Header.Get(webhook.EventHeader)]++
		mu.Unlock()
	}))
	defer srv.Close()
	posted := func(kind string) int {
		mu.Lock()
		defer mu.Unlock()
		return events[kind]
	}
	f := state(t)
	src := &countingSource{FSM: f}
	s := webhook.New([]webhook.Hook{{URL: srv.URL, Secret: []byte("0123456789abcdef-secret")}}, src,
		webhook.Options{TLS: pool(srv), PollEvery: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not within the test's time", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("the alert is posted", func() bool { return posted("alert") == 1 })

	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	index := f.AppliedIndex()
	apply := func(cmd *irxv1.Command) {
		t.Helper()
		index++
		cmd.ProposeTime = timestamppb.New(now)
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	reads := src.warningReads.Load()
	for range 30 {
		apply(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
			Incident: &irxv1.Incident{Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "information-gathering", Type: "scanner"}},
		}}})
		time.Sleep(5 * time.Millisecond) // let the sender wake for each
	}
	if got := src.warningReads.Load(); got != reads {
		t.Fatalf("30 creates made the sender read every warning %d more times", got-reads)
	}
	apply(&irxv1.Command{Actor: &irxv1.OperatorAction{Identity: "alice"}, Kind: &irxv1.Command_IssueWarning{IssueWarning: &irxv1.IssueWarningCommand{
		Warning: &irxv1.Warning{Title: "scan", Severity: irxv1.WarningSeverity_WARNING_SEVERITY_HIGH, Tlp: irxv1.Tlp_TLP_GREEN,
			ExpireTime: timestamppb.New(now.Add(48 * time.Hour))},
	}}})
	wait("the new warning is posted", func() bool { return posted("warning") == 1 })
	if got := src.warningReads.Load(); got == reads {
		t.Fatal("the warning was posted without reading the warnings")
	}
}
