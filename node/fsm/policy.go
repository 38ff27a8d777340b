package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Policy keys:
//
//	pol/<peer>\0<version8>    every version of a peer's policy, immutable
//	polv/<peer>               the peer's latest version number
//	m/team-secret             the team's pseudonymisation secret
var (
	prefixPolicy       = []byte("pol/")
	prefixPolicyLatest = []byte("polv/")
	keyTeamSecret      = []byte("m/team-secret")
)

// TeamSecretLength is the size of the team's pseudonymisation secret.
const TeamSecretLength = 32

// ErrNoTeamSecret is returned by PseudonymKey before any policy was stored.
var ErrNoTeamSecret = errdefs.New(errdefs.ErrFailedPrecondition, "the team has no pseudonymisation secret yet")

func policyKey(peer string, version int64) []byte {
	return cat(prefixPolicy, []byte(peer), []byte{0}, u64(uint64(version)))
}

func policyLatestKey(peer string) []byte { return cat(prefixPolicyLatest, []byte(peer)) }

func (a *applier) setPolicy(cmd *irxv1.Command, c *irxv1.SetPolicyCommand) *Result {
	p := proto.CloneOf(c.GetPolicy())
	if p == nil {
		p = &irxv1.DisclosurePolicy{}
	}
	p.Version, p.CreateTime = 0, nil
	if err := policy.Validate(p); err != nil {
		return &Result{Err: err}
	}
	if _, closer, err := a.reads().Get(keyTeamSecret); errors.Is(err, pebble.ErrNotFound) {
		if len(c.GetTeamSecret()) != TeamSecretLength {
			return &Result{Err: fmt.Errorf("%w: the first policy must carry a %d-byte team secret", ErrInvalidCommand, TeamSecretLength)}
		}
		a.set(keyTeamSecret, c.GetTeamSecret())
	} else if err != nil {
		a.fail(err)
		return &Result{Err: err}
	} else {
		_ = closer.Close()
	}
	latest, err := getUint64(a.reads(), policyLatestKey(p.GetPeerTeamId()))
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	p.Version = int64(latest) + 1
	p.CreateTime = cmd.GetProposeTime()
	data, err := marshal.Marshal(p)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	a.set(policyKey(p.GetPeerTeamId(), p.GetVersion()), data)
	a.set(policyLatestKey(p.GetPeerTeamId()), u64(uint64(p.GetVersion())))
	// The feed served to the peer switches to the new version at this
	// entry; what the peer already holds is disclosed again, in stretches
	// the leader proposes (RediscloseCommand), so that a tightened policy
	// takes back what the peer may no longer hold.
	a.appendFeed(&irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_POLICY, PeerTeamId: p.GetPeerTeamId(), PolicyVersion: p.GetVersion()})
	a.startRedisclosure(p.GetPeerTeamId(), p.GetVersion())
	return &Result{Policy: p, Err: a.err}
}

// HasTeamSecret reports whether the team's pseudonymisation secret exists.
func (f *FSM) HasTeamSecret() (bool, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return false, errClosed
	}
	_, closer, err := f.db.Get(keyTeamSecret)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// PseudonymKey derives the pseudonymisation key for one peer from the team
// secret: HMAC-SHA256(secret, "irx pseudonym key v1\x00" || peer). Peers get
// unrelated keys, so they cannot correlate their tokens with each other's,
// and the secret itself never leaves the state machine.
func (f *FSM) PseudonymKey(peer string) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	return pseudonymKey(f.db, peer)
}

// PseudonymKey is FSM.PseudonymKey for a walk that holds the reader.
func (r *VersionReader) PseudonymKey(peer string) ([]byte, error) { return pseudonymKey(r.f.db, peer) }

func pseudonymKey(db reader, peer string) ([]byte, error) {
	secret, closer, err := db.Get(keyTeamSecret)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNoTeamSecret
	}
	if err != nil {
		return nil, fmt.Errorf("fsm: team secret: %w", err)
	}
	defer closer.Close()
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("irx pseudonym key v1\x00"))
	mac.Write([]byte(peer))
	return mac.Sum(nil), nil
}

// Policy returns version of peer's policy, or the latest if version is 0.
func (f *FSM) Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	return policyFrom(f.db, peer, version)
}

// Policy is FSM.Policy for a walk that holds the reader.
func (r *VersionReader) Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error) {
	return policyFrom(r.f.db, peer, version)
}

func policyFrom(db reader, peer string, version int64) (*irxv1.DisclosurePolicy, error) {
	if version == 0 {
		latest, err := getUint64(db, policyLatestKey(peer))
		if err != nil {
			return nil, err
		}
		if latest == 0 {
			return nil, fmt.Errorf("%w: no disclosure policy for peer %q", ErrNotFound, peer)
		}
		version = int64(latest)
	}
	v, closer, err := db.Get(policyKey(peer, version))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: no version %d of the disclosure policy for peer %q", ErrNotFound, version, peer)
	}
	if err != nil {
		return nil, fmt.Errorf("fsm: policy: %w", err)
	}
	defer closer.Close()
	p := &irxv1.DisclosurePolicy{}
	if err := proto.Unmarshal(v, p); err != nil {
		return nil, fmt.Errorf("fsm: decode policy: %w", err)
	}
	return p, nil
}

// PolicyVersions lists versions of peer's policy, oldest first.
func (f *FSM) PolicyVersions(peer string, pageSize int, pageToken string) ([]*irxv1.DisclosurePolicy, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	out, next, err := pageDecoded[irxv1.DisclosurePolicy](f, cat(prefixPolicy, []byte(peer), []byte{0}), pageSize, pageToken, valueItself)
	if err == nil && len(out) == 0 && pageToken == "" {
		return nil, "", fmt.Errorf("%w: no disclosure policy for peer %q", ErrNotFound, peer)
	}
	return out, next, err
}

// Policies lists the latest policy of every peer, by peer team id.
func (f *FSM) Policies(pageSize int, pageToken string) ([]*irxv1.DisclosurePolicy, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	return pageDecoded[irxv1.DisclosurePolicy](f, prefixPolicyLatest, pageSize, pageToken, func(k, v []byte) ([]byte, error) {
		if len(v) != 8 {
			return nil, fmt.Errorf("fsm: %q holds %d bytes, want 8", k, len(v))
		}
		data, closer, err := f.db.Get(policyKey(string(k[len(prefixPolicyLatest):]), int64(binary.BigEndian.Uint64(v))))
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return bytes.Clone(data), nil
	})
}
