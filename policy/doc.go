// Package policy is irx's disclosure engine: what one peer team receives of
// an incident record, and why. It is pure — no I/O, no clock, no global
// state — and imports only the schema.
//
//	c, err := policy.Compile(p, key)      // once per policy version and peer
//	view, why := policy.Disclose(inc, c)  // per record; view nil: nothing
//
// # Fields: classes and actions
//
// Every field of the schema has an RFC 2350 information class, its own
// (irx.v1.info_class) or inherited from the field holding its message.
// The policy gives each class an action; a class it does not name is
// stripped (default deny), and INFO_CLASS_HANDLING (id, version, TLP,
// restriction, named recipients, provenance) is always forwarded.
//
//   - forward: the value as it is.
//   - strip: removed. Stripping a field removes everything beneath it,
//     whatever the classes of the nested fields: a nested class can make a
//     field more private than its container, never less.
//   - pseudonymise: strings, addresses and ASNs become tokens keyed per
//     peer (HMAC-SHA256 of class and value; see transform.go for the formats
//     that keep the view a valid record). Enums, booleans, numbers, times
//     and codes (language tags, media types, currency codes, taxonomy
//     entries) are kept:
//     pseudonymise hides identities, not magnitudes; a policy that must hide
//     those strips the class.
//   - generalise: addresses to the rule's prefix (default /24 and /48;
//     "192.0.2.17" becomes "192.0.2.0/24"), times to the day (UTC
//     midnight), e-mail addresses to "@domain", host and domain names to
//     their last two labels (no public suffix list: coarser than the
//     registered domain under multi-label suffixes), URL indicators to their
//     host so generalised. Other strings have no coarser form and are
//     removed, each with its own decision; enums, booleans, numbers, ASNs and
//     codes are kept. A part that loses what the record validator requires
//     (a host with no name, address, domain or ASN; an indicator with no
//     value) is removed with it.
//
// The primary taxonomy is required by the schema: when its class is
// stripped it is replaced by other/undetermined, which claims nothing.
//
// # Conditions on the whole record
//
// Disclose evaluates these in order, all of them, and lists each in the
// explanation with its result; one that fails withholds the whole record.
//
//   - Record: the record is not withdrawn (withdraw_time unset; a withdrawn
//     record is never disclosed, and no other condition is evaluated), and
//     it has a valid TLP and restriction.
//   - Loop: the peer is not the record's origin (provenance.origin_team, or
//     the team of its id), not provenance.received_from and not on
//     provenance.path.
//   - TLP ceiling: the record's TLP is at most the policy's tlp_ceiling
//     (CLEAR < GREEN < AMBER < AMBER+STRICT < RED). A TLP:RED record also
//     needs the peer in named_recipients, and a ceiling of RED.
//   - Restriction (IODEF): the record's restriction, RESTRICTION_PRIVATE
//     when unset, must admit the peer. PUBLIC and PARTNER admit every peer
//     (a peer is by definition a party to a sharing agreement);
//     NEED_TO_KNOW admits a peer for which need-to-know holds (below);
//     PRIVATE and unknown values admit none.
//   - Re-share and hop limit, for a foreign record (one with received_from
//     or a path): only TLP:CLEAR and TLP:GREEN records are passed on; only
//     when the terms the team it came from granted us
//     (provenance.reshare) have may_reshare, a scope of community or
//     unlimited, and hops_left of at least 1 (absent terms are a refusal);
//     and only while len(path)+1 — the transfers from the origin once the
//     peer holds it, path listing every team that received the record
//     after its origin, this team last — is at most max(max_hops, 1).
//   - Need-to-know (when the policy sets need_to_know): a host address or
//     prefix (contained in a constituency CIDR), ASN, or host or domain name
//     (equal to or beneath a constituency domain) of the record lies in the
//     peer's constituency. Victim and attacking hosts, the reporting site's
//     domain and address, domain, URL, e-mail and ASN indicators count;
//     parts whose effective restriction is private do not.
//   - Taxonomy deny: no taxonomy of the record (primary or additional)
//     matches a deny entry ("class" or "class/type"). Deny wins.
//   - Taxonomy allow (when the list is not empty): one of them matches.
//   - Consent: reported, never failing; see below.
//
// # Restriction inheritance
//
// Every part that has a restriction field (alternative ids, descriptions,
// contacts, hosts, indicators, methods, assessments, log excerpts,
// evidence, history items) takes its own restriction, or when it is
// RESTRICTION_UNSPECIFIED its closest ancestor's, ending at the record's
// (private when unset). A part whose effective restriction does not admit
// the peer (same rule as above) is removed with everything beneath it. A
// part cannot widen a record that is withheld: a PUBLIC indicator of a
// PRIVATE record goes nowhere, because the record-level fields it would
// travel with are private.
//
// # Consent
//
// The reporter's consent (Incident.disclosure_consent, CERT/CC form 3.2)
// has a row per recipient class; the policy's recipient_class picks it
// (response team, site, law enforcement; vendors have no row, so nothing
// gated goes to vendors). An absent row or column is a refusal. Without
// "domain" the reporting site's name and domain and the victim hosts' host
// names and domains are removed; without "hosts" the victim hosts are;
// without "contact" the contacts are — whatever the class actions
// (a pseudonym or a prefix would still disclose something about them).
//
// # Re-share terms
//
// The explanation carries ReshareTerms for the view: TLP:CLEAR may be passed
// on to anyone, TLP:GREEN within the community, AMBER, AMBER+STRICT and RED
// never (TLP 2.0: AMBER allows the recipient's clients, not other teams).
// hops_left is max(max_hops, 1) - (len(path)+1) when the TLP allows
// re-sharing, else 0. A foreign record's terms never exceed those it came
// with: the scope is the narrower of the TLP's and provenance.reshare's,
// and hops_left is at most provenance.reshare.hops_left - 1, the transfer
// to the peer spending one.
//
// # The explanation
//
// Each field of the Incident that is set is named by a decision (kept,
// changed or removed, with its class, action, cause and rule). Beneath it,
// a decision on a path covers everything under that path unless a longer
// path has its own: deeper decisions are recorded where the class changes
// (a victim host's information_at_risk is embarrassing), and wherever a
// value or a part is removed (restriction, consent, generalise,
// completeness, fields unknown to the schema). Paths with the same outcome
// for the same reason share one FieldDecision, in the order of the record.
//
// # Determinism and memory
//
// The same record and policy give byte-identical output with
// proto.MarshalOptions{Deterministic: true}. The view shares with the
// input what it forwards unchanged (see Disclose); records are immutable
// versions, so this is safe for the node.
package policy
