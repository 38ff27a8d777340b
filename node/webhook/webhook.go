// Package webhook posts a team's alerts and warnings, as JSON, to HTTPS
// endpoints its operators configured, signed with HMAC-SHA256 under a
// secret each endpoint shares with the team.
//
// Only the leader posts. Delivery is at least once: a new leader posts
// again every alert and warning it finds (receivers tell repeats by the
// alert's id and revision, or the warning's id and state). Each endpoint
// has a bounded queue; an event that does not fit, or that every attempt
// failed to deliver, is a dead letter: counted, logged, dropped.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// SignatureHeader carries "sha256=<hex of HMAC-SHA256(secret, body)>".
const SignatureHeader = "X-Irx-Signature"

// EventHeader says what the body is: "alert" or "warning".
const EventHeader = "X-Irx-Event"

// Hook is one configured endpoint.
type Hook struct {
	URL    string
	Secret []byte
}

// Check validates hooks: an absolute https URL (http only when allowHTTP,
// the development mode), not one of the node's own addresses, and a
// secret of at least 16 bytes. Fields are named webhooks[i].url etc.
func Check(hooks []Hook, allowHTTP bool, own []string) error {
	var vs []record.Violation
	for i, h := range hooks {
		field := fmt.Sprintf("webhooks[%d].url", i)
		u, err := url.Parse(h.URL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			vs = append(vs, record.Violation{Field: field, Description: "is not an absolute https URL"})
			continue
		case u.Scheme == "http" && !allowHTTP:
			vs = append(vs, record.Violation{Field: field, Description: "must be https (http only in development mode)"})
		}
		for _, a := range own {
			if sameEndpoint(u, a) {
				vs = append(vs, record.Violation{Field: field, Description: fmt.Sprintf("points at the node itself (%s)", a)})
			}
		}
		if len(h.Secret) < 16 {
			vs = append(vs, record.Violation{Field: fmt.Sprintf("webhooks[%d].secret_file", i), Description: "must hold a secret of at least 16 bytes"})
		}
	}
	if len(vs) > 0 {
		return &record.ValidationError{What: "config", Violations: vs}
	}
	return nil
}

// sameEndpoint: the URL's host and port are one of the node's listeners.
func sameEndpoint(u *url.URL, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	uport := u.Port()
	if uport == "" {
		uport = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	if uport != port {
		return false
	}
	uh := u.Hostname()
	if sameHost(uh, host) {
		return true
	}
	switch lip := net.ParseIP(host); {
	case host == "" || lip.IsUnspecified():
		// A wildcard listener answers at every address of the machine.
		return isLocal(uh) || isInterfaceAddr(uh)
	case isLocal(host):
		return isLocal(uh)
	}
	return false
}

// sameHost compares names case-insensitively and addresses by value, so
// [::1] and 0:0:0:0:0:0:0:1, or ::ffff:127.0.0.1 and 127.0.0.1, are one.
func sameHost(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func isLocal(h string) bool {
	ip := net.ParseIP(h)
	return strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified()))
}

// isInterfaceAddr reports whether h is an address of one of the
// machine's interfaces. Names are not resolved: a name that resolves to
// the node is not caught (the check runs at start, where a lookup could
// hang or depend on a resolver's mood).
func isInterfaceAddr(h string) bool {
	ip := net.ParseIP(h)
	if ip == nil {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// Sign is the signature header's value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header in constant time.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Source is what the sender reads of the team's state.
type Source interface {
	AlertsChangedAfter(revision uint64, limit int) ([]*irxv1.Alert, error)
	EachWarning(fn func(*irxv1.Warning) error) error
	// WarningRevision changes whenever a warning changed.
	WarningRevision() uint64
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// Options tune a Sender; zero values take the defaults.
type Options struct {
	QueueSize   int           // per endpoint; default 1024
	Attempts    int           // per event; default 6
	FirstRetry  time.Duration // doubling; default 500ms
	MaxRetry    time.Duration // default 30s
	Timeout     time.Duration // per attempt; default 10s
	TLS         *tls.Config   // the client's; nil: the system's roots
	IsLeader    func() bool
	Logger      *slog.Logger
	PollEvery   time.Duration // default 1s
	AlertsBatch int           // default 256
}

// Sender posts events to the hooks while this node leads.
type Sender struct {
	hooks  []Hook
	src    Source
	opt    Options
	client *http.Client

	delivered, deadLetters, failures atomic.Uint64
}

// New returns a sender; Run starts it.
func New(hooks []Hook, src Source, opt Options) *Sender {
	if opt.QueueSize <= 0 {
		opt.QueueSize = 1024
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 6
	}
	if opt.FirstRetry <= 0 {
		opt.FirstRetry = 500 * time.Millisecond
	}
	if opt.MaxRetry <= 0 {
		opt.MaxRetry = 30 * time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.PollEvery <= 0 {
		opt.PollEvery = time.Second
	}
	if opt.AlertsBatch <= 0 {
		opt.AlertsBatch = 256
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.IsLeader == nil {
		opt.IsLeader = func() bool { return true }
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = opt.TLS
	return &Sender{hooks: hooks, src: src, opt: opt, client: &http.Client{Transport: transport, Timeout: opt.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Counts returns the events delivered, the failed attempts and the dead
// letters, since the sender started.
func (s *Sender) Counts() (delivered, failures, deadLetters uint64) {
	return s.delivered.Load(), s.failures.Load(), s.deadLetters.Load()
}

type event struct {
	kind string // "alert" or "warning"
	body []byte
}

// Run posts events until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	if len(s.hooks) == 0 {
		return
	}
	queues := make([]chan event, len(s.hooks))
	var wg sync.WaitGroup
	for i := range s.hooks {
		queues[i] = make(chan event, s.opt.QueueSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.post(ctx, s.hooks[i], queues[i])
		}()
	}
	defer wg.Wait()
	leading := false
	var rev uint64
	warned := map[string]string{}          // warning id -> the state posted
	warnedAt, warnedOK := uint64(0), false // the warning revision warned reflects, once read in this term
	for ctx.Err() == nil {
		applied := s.src.AppliedIndex()
		switch now := s.opt.IsLeader(); {
		case now && !leading:
			// A new term: everything again, at least once.
			rev, warned, warnedOK = 0, map[string]string{}, false
			leading = true
		case !now:
			leading = false
		}
		if leading {
			rev = s.collectAlerts(ctx, rev, queues)
			// Warnings are read only when one changed: every applied
			// entry wakes this loop, and reading them all each time cost
			// the leader in proportion to the warnings ever held.
			if wr := s.src.WarningRevision(); !warnedOK || wr != warnedAt {
				if s.collectWarnings(warned, queues) {
					warnedAt, warnedOK = wr, true
				}
			}
		}
		wait, done := context.WithTimeout(ctx, s.opt.PollEvery)
		_ = s.src.WaitApplied(wait, applied+1)
		done()
	}
}

// collectAlerts queues the alerts changed after rev and returns the new
// rev.
func (s *Sender) collectAlerts(ctx context.Context, rev uint64, queues []chan event) uint64 {
	for ctx.Err() == nil {
		alerts, err := s.src.AlertsChangedAfter(rev, s.opt.AlertsBatch)
		if err != nil {
			s.opt.Logger.Warn("webhook: reading alerts", "error", err)
			return rev
		}
		for _, al := range alerts {
			s.enqueue("alert", al, queues)
			rev = max(rev, al.GetRevision())
		}
		if len(alerts) < s.opt.AlertsBatch {
			break
		}
	}
	return rev
}

// collectWarnings queues the warnings whose state changed since warned
// says it was posted; it reports whether it read them all.
func (s *Sender) collectWarnings(warned map[string]string, queues []chan event) bool {
	err := s.src.EachWarning(func(w *irxv1.Warning) error {
		state := stateOf(w)
		if posted, ok := warned[w.GetWarningId()]; ok && posted == state {
			return nil
		}
		warned[w.GetWarningId()] = state
		s.enqueue("warning", w, queues)
		return nil
	})
	if err != nil {
		s.opt.Logger.Warn("webhook: reading warnings", "error", err)
		return false
	}
	return true
}

// stateOf is what makes a warning worth posting again.
func stateOf(w *irxv1.Warning) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&irxv1.Warning{
		Deliveries: w.GetDeliveries(), AcknowledgedBy: w.GetAcknowledgedBy(), AcknowledgementDelivered: w.GetAcknowledgementDelivered(),
	})
	return string(b)
}

func (s *Sender) enqueue(kind string, m proto.Message, queues []chan event) {
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		s.opt.Logger.Warn("webhook: encoding", "error", err)
		return
	}
	for i, q := range queues {
		select {
		case q <- event{kind: kind, body: body}:
		default:
			s.deadLetters.Add(1)
			s.opt.Logger.Warn("webhook: queue full; event dropped", "hook", i, "event", kind)
		}
	}
}

// post delivers a hook's events in order, each with retries.
func (s *Sender) post(ctx context.Context, h Hook, q <-chan event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-q:
			s.deliver(ctx, h, ev)
		}
	}
}

func (s *Sender) deliver(ctx context.Context, h Hook, ev event) {
	backoff := s.opt.FirstRetry
	var last error
	for attempt := 1; attempt <= s.opt.Attempts; attempt++ {
		if last = s.attempt(ctx, h, ev, attempt); last == nil {
			s.delivered.Add(1)
			return
		}
		s.failures.Add(1)
		if attempt == s.opt.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opt.MaxRetry)
	}
	s.deadLetters.Add(1)
	// The URL may hold a token in its path or query: log only the host.
	host := ""
	if u, err := url.Parse(h.URL); err == nil {
		host = u.Host
	}
	s.opt.Logger.Warn("webhook: event not delivered after every attempt; dropped", "host", host, "event", ev.kind, "attempts", s.opt.Attempts, "error", last)
}

func (s *Sender) attempt(ctx context.Context, h Hook, ev event, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(ev.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventHeader, ev.kind)
	req.Header.Set("X-Irx-Attempt", strconv.Itoa(n))
	req.Header.Set(SignatureHeader, Sign(h.Secret, ev.body))
	resp, err := s.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("post: %w", uerr.Err) // without the URL
		}
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
