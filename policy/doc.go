// Package policy is irx's disclosure engine: what one peer team receives of
// an incident record, and why. It is pure — no I/O, no clock, no global
// state — and imports only the schema and the record's own rules
// (record: what a valid value of each field is).
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
//     that keep the view a valid record). Enums, booleans, other numbers and
//     times are kept: pseudonymise hides identities, not magnitudes; a
//     policy that must hide those strips the class or generalises it.
//     Codes (below) are kept.
//   - generalise: addresses to the rule's prefix (default /24 and /48;
//     "192.0.2.17" becomes "192.0.2.0/24"), times to the day (UTC
//     midnight), host and domain names to their last two labels (no public
//     suffix list: coarser than the registered domain under multi-label
//     suffixes), e-mail addresses to "@" and their domain, URL indicators to
//     their host (an IP literal to its prefix, a name to its last two
//     labels), numbers as below, codes kept. A name is generalised only
//     when what is kept is a host name — two labels of letters, digits and
//     hyphens (1 to 63 characters, no hyphen first or last), the last not
//     all digits — and an e-mail address only when everything after its
//     last "@" is one; anything else in the value would be in the kept
//     part ("x.example owner=secret", "192.0.2.241:22", "evil.example/path"),
//     so such a value is removed, as is a single label. Other strings have
//     no coarser form and are removed. Each removed value has its own
//     decision.
//
// Codes are the values of Description.lang (BCP 47 language tags),
// LogExcerpt.media_type (RFC 6838 type/subtype), MonetaryImpact.currency
// (ISO 4217), ReportingSite.country (ISO 3166-1 alpha-2) and Taxonomy class
// and type (the Reference Security Incident Taxonomy): public vocabularies that identify nothing, so pseudonymise and
// generalise keep them as they are — when they are codes, as the record
// validator defines them. A value that is not (a record stored before the
// validator knew the vocabulary) is removed: the engine does not rely on
// what was validated when.
//
// Numbers under generalise, by what they are (the schema's every number is
// classified; Compile refuses a schema with one that is not):
//
//   - identifiers with no coarser form are removed: an ASN (Host.asn, an
//     ASN indicator) names a network, often one organisation, and an
//     autonomous system has no "wider" number;
//   - magnitudes are cut to their first significant digit, toward zero
//     (MonetaryImpact.amount_minor 1,250,000 becomes 1,000,000;
//     Evidence.size_bytes 1,073,741,824 becomes 1,000,000,000;
//     Compromise.sniffer_sessions_logged 47 becomes 40; Counter.value
//     likewise): an exact figure can name a victim (a loss reported in the
//     news), its order and first digit rarely can. Cut, not rounded: the result says "at least" and
//     never overflows;
//   - numbers that name a protocol or a point on a scale are kept: ports,
//     IP protocol numbers, 0-100 confidences (and the handling counters,
//     version and hops left, which are always forwarded).
//
// A part that the rules leave without what the record validator requires
// of it (a host with no name, address, domain or ASN; an indicator with no
// kind or value; an alternative id with no team or ticket; a taxonomy entry
// with no class or type) is removed with everything in it. (A part that
// came without it, in a record no validator would accept, goes on as the
// rules leave it.)
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
//   - Loop: the peer is not the record's origin (neither
//     provenance.origin_team nor the team of its id), not
//     provenance.received_from and not on provenance.path.
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
//     (equal to or beneath a constituency domain, ASCII letters compared
//     without case as DNS does) of the record lies in the peer's
//     constituency. Victim and attacking hosts, the reporting site's domain,
//     and address, domain, URL (its host), e-mail (its domain) and ASN
//     ("AS64500" or "64500") indicators count; parts whose effective
//     restriction admits no peer (private, or a number that is no
//     restriction) do not.
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
// value or a part is removed (restriction, consent, generalise, codes that
// are not, completeness, fields unknown to the schema — "(unknown)" in the
// path, in messages and timestamps alike). A part removed whole has one
// decision and none beneath it. A value removed from a repeated field has
// its own decision ("...[2]") when the field held others; a repeated field
// left empty is removed, with the cause and rule of the last removal. A
// field's decision comes before the decisions beneath it; paths with the
// same outcome for the same reason share one FieldDecision, the
// FieldDecisions in the order their first paths were decided.
//
// policy/policytest is a second implementation of these rules, a plain
// protoreflect walk; the tests compare the two byte for byte.
//
// # Determinism and memory
//
// The same record and policy give byte-identical output with
// proto.MarshalOptions{Deterministic: true}. The view shares with the
// input what it forwards unchanged (see Disclose); records are immutable
// versions, so this is safe for the node.
package policy
