package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of irx identities.
const Scheme = "irx"

// Identity kinds.
const (
	KindNode     = "node"
	KindOperator = "operator"
	KindCA       = "ca"
)

// maxIDLen keeps identifiers usable as a single DNS label, which is what the
// SAN URI host component is parsed as.
const maxIDLen = 63

// ValidID reports whether s is a valid team or node identifier: lowercase
// [a-z0-9]([a-z0-9.-]*[a-z0-9])?, at most 63 characters.
func ValidID(s string) error {
	if s == "" {
		return errors.New("identifier is empty")
	}
	if len(s) > maxIDLen {
		return fmt.Errorf("identifier %q is longer than %d characters", s, maxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.' || c == '-':
			if i == 0 || i == len(s)-1 {
				return fmt.Errorf("identifier %q must start and end with [a-z0-9]", s)
			}
		default:
			return fmt.Errorf("identifier %q contains invalid character %q (allowed: a-z 0-9 . -)", s, c)
		}
	}
	return nil
}

// Identity is the principal named by an irx certificate.
type Identity struct {
	Team string
	Kind string // KindNode, KindOperator or KindCA
	Name string
}

// Validate checks the identifiers and the kind. A CA identity must be named
// after its team so that "the CA of team T" is a single, unambiguous name.
func (id Identity) Validate() error {
	if err := ValidID(id.Team); err != nil {
		return fmt.Errorf("team: %w", err)
	}
	switch id.Kind {
	case KindNode, KindOperator, KindCA:
	default:
		return fmt.Errorf("unknown identity kind %q", id.Kind)
	}
	if err := ValidID(id.Name); err != nil {
		return fmt.Errorf("%s name: %w", id.Kind, err)
	}
	if id.Kind == KindCA && id.Name != id.Team {
		return fmt.Errorf("ca identity name %q must equal its team %q", id.Name, id.Team)
	}
	return nil
}

// URI returns the SAN URI form irx://<team>/<kind>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: id.Team, Path: "/" + id.Kind + "/" + id.Name}
}

// String returns the URI form of the identity.
func (id Identity) String() string {
	return id.URI().String()
}

// IsNodeOf reports whether id is a node of the given team.
func (id Identity) IsNodeOf(team string) bool {
	return id.Kind == KindNode && id.Team == team
}

// NodeIdentity returns the identity of node nodeID in team.
func NodeIdentity(team, nodeID string) Identity {
	return Identity{Team: team, Kind: KindNode, Name: nodeID}
}

// OperatorIdentity returns the identity of operator name in team.
func OperatorIdentity(team, name string) Identity {
	return Identity{Team: team, Kind: KindOperator, Name: name}
}

// CAIdentity returns the identity of team's CA.
func CAIdentity(team string) Identity {
	return Identity{Team: team, Kind: KindCA, Name: team}
}

// ParseIdentity parses an irx:// URI. It accepts only the canonical form
// produced by Identity.URI: no user info, port, query, fragment, escapes or
// trailing slash, because two spellings of one identity would make pinning
// and authorisation by string comparison unsafe.
func ParseIdentity(u *url.URL) (Identity, error) {
	if u == nil {
		return Identity{}, errors.New("nil identity URI")
	}
	if u.Scheme != Scheme {
		return Identity{}, fmt.Errorf("identity URI %q: scheme must be %q", u, Scheme)
	}
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || u.RawFragment != "" || u.RawPath != "" || u.OmitHost {
		return Identity{}, fmt.Errorf("identity URI %q: must be irx://<team>/<kind>/<name> with nothing else", u)
	}
	rest, ok := strings.CutPrefix(u.Path, "/")
	if !ok {
		return Identity{}, fmt.Errorf("identity URI %q: missing path", u)
	}
	kind, name, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(name, "/") {
		return Identity{}, fmt.Errorf("identity URI %q: path must be /<kind>/<name>", u)
	}
	id := Identity{Team: u.Host, Kind: kind, Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u, err)
	}
	// Belt and braces: whatever slipped through the field checks above
	// (for example a port hidden in Host) changes the canonical form.
	if got := u.String(); got != id.String() {
		return Identity{}, fmt.Errorf("identity URI %q is not in canonical form %q", got, id.String())
	}
	return id, nil
}

// ParseIdentityString parses the string form of an identity URI.
func ParseIdentityString(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("identity URI: %w", err)
	}
	return ParseIdentity(u)
}

// IdentityFromCert extracts the irx identity of cert. URI SANs of other
// schemes are ignored so certificates can also carry e.g. SPIFFE IDs, but
// exactly one irx:// URI is required: with two, which one is "the" identity
// would be up to the verifier, and different verifiers could disagree.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("nil certificate")
	}
	var found *url.URL
	for _, u := range cert.URIs {
		if !strings.EqualFold(u.Scheme, Scheme) {
			continue
		}
		if found != nil {
			return Identity{}, fmt.Errorf("certificate %q carries more than one %s:// URI SAN", cert.Subject, Scheme)
		}
		found = u
	}
	if found == nil {
		return Identity{}, fmt.Errorf("certificate %q carries no %s:// URI SAN", cert.Subject, Scheme)
	}
	return ParseIdentity(found)
}
