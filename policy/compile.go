package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// MinKeyLength is the shortest pseudonymisation key Compile accepts. Use 32
// random bytes per peer.
const MinKeyLength = 16

// ErrKeyTooShort is returned by Compile for a key under MinKeyLength. The
// error never contains the key.
var ErrKeyTooShort = errors.New("policy: pseudonymisation key is shorter than 16 bytes")

// Compiled is a validated policy with everything Disclose needs computed
// once: the per-class actions, the plan of every field of the schema (class,
// action, format, consent gate, Go struct field), the constituency as
// parsed prefixes, the taxonomy filters, and the texts of the explanation.
// It holds the peer's pseudonymisation key; it never prints it (see
// Format). A Compiled is immutable and safe for concurrent use.
type Compiled struct {
	policy     *irxv1.DisclosurePolicy
	peer       string
	version    int64
	recipient  irxv1.RecipientClass
	ceiling    irxv1.Tlp
	needToKnow bool
	maxHops    uint32

	actions        [numClasses]irxv1.DisclosureAction
	ruleIndex      [numClasses]int // -1: no rule
	v4bits, v6bits [numClasses]int
	ruleText       [numClasses]string

	cidrs   []netip.Prefix
	asns    []uint32
	domains []string
	allow   []taxEntry
	deny    []taxEntry

	root   *msgPlan
	nSlabs int
	// Offset of google.protobuf.Timestamp's unknown fields.
	tsUnknownOff uintptr
	tsHasUnknown bool
	b32          *base32.Encoding
	text         texts

	// pool holds per-call scratch space, each with its own HMAC keyed by
	// the peer's key. The key itself is kept only inside the pool's
	// constructor closure and the HMAC states.
	pool sync.Pool
}

// Compile validates p and prepares it for Disclose. key is the peer's
// pseudonymisation key (at least MinKeyLength bytes; 32 random bytes
// recommended); it is copied. Errors name the policy field and never contain
// the key.
func Compile(p *irxv1.DisclosurePolicy, key []byte) (*Compiled, error) {
	if err := Validate(p); err != nil {
		return nil, err
	}
	if len(key) < MinKeyLength {
		return nil, ErrKeyTooShort
	}
	c := &Compiled{
		policy:     proto.Clone(p).(*irxv1.DisclosurePolicy),
		peer:       p.GetPeerTeamId(),
		version:    p.GetVersion(),
		recipient:  p.GetRecipientClass(),
		ceiling:    p.GetTlpCeiling(),
		needToKnow: p.GetNeedToKnow(),
		maxHops:    p.GetMaxHops(),
		b32:        base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding),
	}
	for i := range c.ruleIndex {
		c.ruleIndex[i] = -1
		c.v4bits[i], c.v6bits[i] = DefaultIPv4PrefixLength, DefaultIPv6PrefixLength
	}
	for i, r := range p.GetRules() {
		ci := classIndex(r.GetInfoClass())
		c.actions[ci] = r.GetAction()
		c.ruleIndex[ci] = i
		if r.Ipv4PrefixLength != nil {
			c.v4bits[ci] = int(r.GetIpv4PrefixLength())
		}
		if r.Ipv6PrefixLength != nil {
			c.v6bits[ci] = int(r.GetIpv6PrefixLength())
		}
	}
	cons := p.GetConstituency()
	for _, s := range cons.GetCidrs() {
		c.cidrs = append(c.cidrs, netip.MustParsePrefix(s)) // Validate parsed it
	}
	c.asns = slices.Clone(cons.GetAsns())
	slices.Sort(c.asns)
	for _, d := range cons.GetDomains() {
		c.domains = append(c.domains, lowerASCII(strings.TrimSuffix(d, "."))) // Validate allows ASCII only
	}
	for _, s := range p.GetTaxonomyAllow() {
		e, _ := parseTaxEntry(s)
		c.allow = append(c.allow, e)
	}
	for _, s := range p.GetTaxonomyDeny() {
		e, _ := parseTaxEntry(s)
		c.deny = append(c.deny, e)
	}
	addr := addressClasses()
	for ci := range c.ruleText {
		class := irxv1.InfoClass(ci)
		if i := c.ruleIndex[ci]; i >= 0 {
			c.ruleText[ci] = fmt.Sprintf("%s: %s (rules[%d])", className(class), actionDetail(c.actions[ci], c.v4bits[ci], c.v6bits[ci], addr[class]), i)
		}
	}
	if err := c.buildPlan(); err != nil {
		return nil, err
	}
	c.buildTexts()
	k := slices.Clone(key)
	c.pool.New = func() any {
		return &walker{c: c, mac: hmac.New(sha256.New, k)}
	}
	return c, nil
}

// actionOf resolves a class to its action, the cause and the rule text the
// explanation gives.
func (c *Compiled) actionOf(class irxv1.InfoClass) (irxv1.DisclosureAction, irxv1.DecisionCause, string) {
	switch {
	case class == irxv1.InfoClass_INFO_CLASS_HANDLING:
		return irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE,
			"handling: always forwarded, so the peer can honour the record's markings"
	case !knownClass(class):
		return irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY,
			"no information class: never disclosed (default deny)"
	}
	ci := classIndex(class)
	if c.ruleIndex[ci] >= 0 {
		return c.actions[ci], irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE, c.ruleText[ci]
	}
	return irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY,
		className(class) + ": no rule names this class; stripped (default deny)"
}

func actionDetail(a irxv1.DisclosureAction, v4, v6 int, addresses bool) string {
	switch a {
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE:
		return "pseudonymise: names, addresses and ASNs replaced by tokens keyed for this peer; enums, flags, numbers and times kept"
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE:
		const rest = "times to the day, e-mail to @domain, names to their last two labels, amounts, sizes and counts to their first digit; ASNs and other text removed"
		if addresses {
			return fmt.Sprintf("generalise: addresses to /%d (IPv4) and /%d (IPv6), %s", v4, v6, rest)
		}
		return "generalise: " + rest
	}
	return actionName(a)
}

// SharesStatistics reports whether the policy discloses the statistical
// class in any form, so the team's aggregate counts may go to the peer;
// no policy (nil), a rule that strips the class, or none naming it
// (default deny) shares nothing.
func (c *Compiled) SharesStatistics() bool {
	if c == nil {
		return false
	}
	a, _, _ := c.actionOf(irxv1.InfoClass_INFO_CLASS_STATISTICAL)
	return a != irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP && a != irxv1.DisclosureAction_DISCLOSURE_ACTION_UNSPECIFIED
}

// PeerTeamID is the peer the policy is for.
func (c *Compiled) PeerTeamID() string { return c.peer }

// Version is the stored policy version (0 for a policy not yet stored).
func (c *Compiled) Version() int64 { return c.version }

// Policy returns a copy of the policy c was compiled from.
func (c *Compiled) Policy() *irxv1.DisclosurePolicy {
	return proto.Clone(c.policy).(*irxv1.DisclosurePolicy)
}

// Format prints the peer and version only, whatever the verb, so that a
// Compiled logged by mistake cannot print its key material.
func (c *Compiled) Format(f fmt.State, _ rune) {
	if c == nil {
		fmt.Fprint(f, "policy.Compiled(nil)")
		return
	}
	fmt.Fprintf(f, "policy.Compiled{peer: %q, version: %d}", c.peer, c.version)
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
