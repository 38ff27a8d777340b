package policy_test

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// canary is one unique value planted in a generated record, with what the
// test needs to know to say whether the view may contain it.
type canary struct {
	marker  string            // occurs in the view's bytes iff the value was disclosed as is
	path    string            // where it was planted, for failure messages
	classes []irxv1.InfoClass // the classes from the Incident field down to the leaf
	gates   []string          // consent columns it needs: "domain", "hosts", "contact"
	restr   []irxv1.Restriction
	keepAs  bool // a code, or an ASN indicator under generalise: kept by pseudonymise/generalise
	addr    netip.Addr
	field   protoreflect.FullName
}

type recordGen struct {
	t        *rapid.T
	n        int
	canaries []canary
	// addresses of hosts whose part is not private, for need-to-know
	hostAddrs []netip.Addr
	// victim hosts by path, and whether each has an address: whether a
	// host is left with an identifier depends on it (see hostSurvives)
	victims map[string]bool
}

func (g *recordGen) id() int { g.n++; return g.n }

func fieldClass(fd protoreflect.FieldDescriptor) irxv1.InfoClass {
	opts, _ := fd.Options().(*descriptorpb.FieldOptions)
	if opts == nil {
		return 0
	}
	return proto.GetExtension(opts, irxv1.E_InfoClass).(irxv1.InfoClass)
}

type genCtx struct {
	classes []irxv1.InfoClass
	gates   []string
	restr   []irxv1.Restriction
	victim  bool
	path    string
}

func (c genCtx) with(class irxv1.InfoClass, gate string, path string) genCtx {
	n := c
	n.classes = append(append([]irxv1.InfoClass(nil), c.classes...), class)
	n.gates = append([]string(nil), c.gates...)
	if gate != "" {
		n.gates = append(n.gates, gate)
	}
	n.path = path
	return n
}

var taxonomyPairs = [][2]string{
	{"intrusions", "system-compromise"}, {"malicious-code", "c2-server"}, {"fraud", "phishing"},
	{"availability", "ddos"}, {"information-gathering", "scanner"}, {"test", "test"},
}

func gateOf(fd protoreflect.FieldDescriptor, victim bool) string {
	switch fd.FullName() {
	case "irx.v1.Incident.contacts":
		return "contact"
	case "irx.v1.Incident.victim_hosts":
		return "hosts"
	case "irx.v1.ReportingSite.name", "irx.v1.ReportingSite.domain":
		return "domain"
	case "irx.v1.Host.hostname", "irx.v1.Host.domain":
		if victim {
			return "domain"
		}
	}
	return ""
}

// fill sets every field of m, recursively, with unique canaries shaped so
// the record validates.
func (g *recordGen) fill(m protoreflect.Message, ctx genCtx, depth int) {
	fds := m.Descriptor().Fields()
	// The part's restriction first: what is beneath inherits it.
	if rf := fds.ByName("restriction"); rf != nil && m.Descriptor().FullName() != "irx.v1.Incident" {
		r := irxv1.Restriction(rapid.SampledFrom([]int32{0, 0, 0, 1, 2, 3, 4}).Draw(g.t, ctx.path+".restriction"))
		m.Set(rf, protoreflect.ValueOfEnum(protoreflect.EnumNumber(r)))
		ctx.restr = append(append([]irxv1.Restriction(nil), ctx.restr...), r)
	}
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if fd.Name() == "restriction" {
			continue
		}
		class := fieldClass(fd)
		if class == 0 {
			class = ctx.classes[len(ctx.classes)-1]
		}
		path := ctx.path + "." + string(fd.Name())
		fctx := ctx.with(class, gateOf(fd, ctx.victim), path)
		if fd.FullName() == "irx.v1.Incident.victim_hosts" {
			fctx.victim = true
		}
		switch fd.FullName() {
		case "irx.v1.Incident.id", "irx.v1.Incident.provenance", "irx.v1.Incident.taxonomy", "irx.v1.Incident.additional_taxonomies",
			"irx.v1.Incident.tlp", "irx.v1.Incident.version", "irx.v1.Incident.named_recipients", "irx.v1.Incident.end_time",
			"irx.v1.Incident.disclosure_consent", "irx.v1.Incident.withdraw_time", "irx.v1.Incident.withdraw_reason":
			continue // set by record()
		}
		n := 1
		if fd.IsList() {
			n = rapid.IntRange(0, 2).Draw(g.t, path+".len")
		}
		for j := 0; j < n; j++ {
			p := path
			if fd.IsList() {
				p = fmt.Sprintf("%s[%d]", path, j)
			}
			fctx.path = p
			v, ok := g.value(m, fd, fctx, depth)
			if !ok {
				continue
			}
			if fd.IsList() {
				m.Mutable(fd).List().Append(v)
			} else {
				m.Set(fd, v)
			}
		}
	}
}

func (g *recordGen) value(m protoreflect.Message, fd protoreflect.FieldDescriptor, ctx genCtx, depth int) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(g.str(m, fd, ctx)), true
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true), true
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(rapid.IntRange(1, vals.Len()-1).Draw(g.t, ctx.path)).Number()), true
	case protoreflect.Uint32Kind:
		switch fd.Name() {
		case "confidence":
			return protoreflect.ValueOfUint32(uint32(rapid.IntRange(1, 100).Draw(g.t, ctx.path))), true
		case "port":
			return protoreflect.ValueOfUint32(uint32(rapid.IntRange(1, 65535).Draw(g.t, ctx.path))), true
		case "ip_protocol":
			return protoreflect.ValueOfUint32(uint32(rapid.IntRange(1, 255).Draw(g.t, ctx.path))), true
		case "asn":
			return protoreflect.ValueOfUint32(uint32(rapid.IntRange(1, 4000000000).Draw(g.t, ctx.path))), true
		}
		return protoreflect.ValueOfUint32(uint32(rapid.IntRange(1, 1000).Draw(g.t, ctx.path))), true
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(int64(rapid.IntRange(1, 1<<40).Draw(g.t, ctx.path))), true
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			return protoreflect.ValueOfMessage(randomTime(g.t, ctx.path).ProtoReflect()), true
		}
		if depth > 6 {
			return protoreflect.Value{}, false
		}
		var child protoreflect.Message
		if fd.IsList() {
			child = m.Mutable(fd).List().NewElement().Message()
		} else {
			child = m.NewField(fd).Message()
		}
		if fd.Message().FullName() == "irx.v1.Taxonomy" {
			pair := rapid.SampledFrom(taxonomyPairs).Draw(g.t, ctx.path)
			child.Set(child.Descriptor().Fields().ByName("class"), protoreflect.ValueOfString(pair[0]))
			child.Set(child.Descriptor().Fields().ByName("type"), protoreflect.ValueOfString(pair[1]))
			return protoreflect.ValueOfMessage(child), true
		}
		g.fill(child, ctx, depth+1)
		if fd.FullName() == "irx.v1.Incident.victim_hosts" {
			if g.victims == nil {
				g.victims = map[string]bool{}
			}
			g.victims[ctx.path] = child.Get(child.Descriptor().Fields().ByName("addresses")).List().Len() > 0
		}
		return protoreflect.ValueOfMessage(child), true
	}
	panic(fmt.Sprintf("generator: unhandled field %s", fd.FullName()))
}

func randomTime(t *rapid.T, label string) *timestamppb.Timestamp {
	sec := rapid.Int64Range(946684800, 1893456000).Draw(t, label) // 2000 to 2030
	nanos := rapid.Int32Range(0, 999999999).Draw(t, label+".nanos")
	return &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}
}

// str is a unique canary shaped for its field.
func (g *recordGen) str(m protoreflect.Message, fd protoreflect.FieldDescriptor, ctx genCtx) string {
	id := g.id()
	mark := fmt.Sprintf("cnry%04d", id)
	c := canary{marker: mark, path: ctx.path, classes: ctx.classes, gates: ctx.gates, restr: ctx.restr, field: fd.FullName()}
	v := mark + " value"
	v4 := func() netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(100 + id/100%100), byte(100 + id%100), 123})
	}
	v6 := func() netip.Addr {
		// The last group is odd, the last octet of v4 is 123: a prefix of
		// up to /127 (/31) always differs from the address itself.
		return netip.MustParseAddr(fmt.Sprintf("2001:db8:c0de:%04x:1111:2222:3333:%04x", 0x1000+id, 0x2001+2*id))
	}
	addr := func(a netip.Addr) string {
		c.addr, c.marker = a, a.String()
		return a.String()
	}
	switch fd.FullName() {
	case "irx.v1.Host.addresses":
		if rapid.Bool().Draw(g.t, ctx.path+".v6") {
			v = addr(v6())
		} else {
			v = addr(v4())
		}
		if !restricted(ctx.restr, irxv1.Restriction_RESTRICTION_PRIVATE) {
			g.hostAddrs = append(g.hostAddrs, c.addr)
		}
	case "irx.v1.Host.hostname", "irx.v1.Host.domain", "irx.v1.ReportingSite.domain", "irx.v1.Contact.constituency_domain":
		v = mark + ".zone.example"
	case "irx.v1.Contact.email":
		v = mark + "@mail.example"
	case "irx.v1.Evidence.sha256":
		c.marker = fmt.Sprintf("deadbeef%04d", id)
		v = c.marker + strings.Repeat("0", 64-len(c.marker))
	case "irx.v1.RelatedActivity.incident_ids":
		v = mark + ":7"
	case "irx.v1.AlternativeId.team_id", "irx.v1.HistoryItem.team_id":
		v = mark
	// Codes: unique ones where the vocabulary has room for a marker (a
	// private-use language subtag, a media subtype); a currency or country
	// code has none, and is no canary.
	case "irx.v1.Description.lang":
		v, c.keepAs = "x-"+mark, true
	case "irx.v1.LogExcerpt.media_type":
		v, c.keepAs = "application/"+mark, true
	case "irx.v1.MonetaryImpact.currency":
		return rapid.SampledFrom([]string{"EUR", "USD", "JPY", "CHF"}).Draw(g.t, ctx.path)
	case "irx.v1.ReportingSite.country":
		return rapid.SampledFrom([]string{"NL", "DE", "FR", "JP"}).Draw(g.t, ctx.path)
	case "irx.v1.Indicator.value":
		kind := irxv1.IndicatorKind(m.Get(m.Descriptor().Fields().ByName("kind")).Enum())
		switch kind {
		case irxv1.IndicatorKind_INDICATOR_KIND_IPV4:
			v = addr(v4())
		case irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
			v = addr(v6())
		case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
			v = mark + ".zone.example"
		case irxv1.IndicatorKind_INDICATOR_KIND_URL:
			v = "https://" + mark + ".zone.example/x"
		case irxv1.IndicatorKind_INDICATOR_KIND_EMAIL:
			v = mark + "@mail.example"
		case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
			c.marker = fmt.Sprintf("deadbeef%04d", id)
			v = c.marker + strings.Repeat("0", 64-len(c.marker))
		case irxv1.IndicatorKind_INDICATOR_KIND_ASN:
			c.marker = fmt.Sprintf("AS%d", 1000000+id)
			v = c.marker
			c.field = "asn-indicator"
		}
	}
	g.canaries = append(g.canaries, c)
	return v
}

func restricted(rs []irxv1.Restriction, r irxv1.Restriction) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// record draws a valid incident whose every field holds a unique canary.
func (g *recordGen) record() *irxv1.Incident {
	inc := &irxv1.Incident{
		Id: "cert-a:1", Version: 1,
		Tlp:         irxv1.Tlp(rapid.IntRange(1, 5).Draw(g.t, "tlp")),
		Restriction: irxv1.Restriction(rapid.SampledFrom([]int32{0, 1, 1, 2, 2, 2, 2, 3, 3, 4}).Draw(g.t, "restriction")),
		Provenance:  &irxv1.Provenance{OriginTeam: "cert-a"},
	}
	pair := rapid.SampledFrom(taxonomyPairs).Draw(g.t, "taxonomy")
	inc.Taxonomy = &irxv1.Taxonomy{Class: pair[0], Type: pair[1]}
	if rapid.Bool().Draw(g.t, "additional") {
		pair := rapid.SampledFrom(taxonomyPairs).Draw(g.t, "additional taxonomy")
		inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: pair[0], Type: pair[1]}}
	}
	if rapid.IntRange(0, 3).Draw(g.t, "named") > 0 {
		inc.NamedRecipients = []string{"cert-b", "cert-c"}
	}
	if rapid.IntRange(0, 2).Draw(g.t, "foreign") == 0 {
		// Mostly re-shareable TLPs, or foreign records would hardly ever
		// get through for the canaries to be checked.
		inc.Tlp = irxv1.Tlp(rapid.SampledFrom([]int32{2, 1, 2, 1, 2, 3, 5}).Draw(g.t, "foreign tlp"))
		inc.Id, inc.Provenance = "cert-z:1", foreignProvenance(g.t)
	}
	if rapid.IntRange(0, 9).Draw(g.t, "withdrawn") == 9 { // rare: it withholds everything
		inc.WithdrawTime, inc.WithdrawReason = randomTime(g.t, "withdraw time"), "reported in error"
	}
	row := func(label string) *irxv1.ConsentScope {
		return &irxv1.ConsentScope{Domain: rapid.Bool().Draw(g.t, label+".domain"), Hosts: rapid.Bool().Draw(g.t, label+".hosts"), Contact: rapid.Bool().Draw(g.t, label+".contact")}
	}
	inc.DisclosureConsent = &irxv1.DisclosureConsent{SitesInvolved: row("sites"), ResponseTeams: row("teams"), LawEnforcement: row("leo")}
	root := inc.GetRestriction()
	if root == 0 {
		root = irxv1.Restriction_RESTRICTION_PRIVATE
	}
	g.fill(inc.ProtoReflect(), genCtx{classes: []irxv1.InfoClass{0}, restr: []irxv1.Restriction{root}, path: "incident"}, 0)
	inc.EndTime = &timestamppb.Timestamp{Seconds: inc.GetStartTime().GetSeconds() + rapid.Int64Range(0, 86400*30).Draw(g.t, "duration"), Nanos: inc.GetStartTime().GetNanos()}
	return inc
}

// foreignProvenance draws the provenance of a record this team (cert-a)
// received from cert-z, its origin, or by way of cert-y, and the terms it
// came with: absent, refusing, contradictory or granting, so every re-share
// path is taken. cert-b and cert-c, the peers of the test, are never on it.
func foreignProvenance(t *rapid.T) *irxv1.Provenance {
	prov := &irxv1.Provenance{OriginTeam: "cert-z"}
	switch rapid.IntRange(0, 2).Draw(t, "path") {
	case 0:
		prov.ReceivedFrom, prov.Path = "cert-z", []string{"cert-a"}
	case 1:
		prov.ReceivedFrom, prov.Path = "cert-y", []string{"cert-y", "cert-a"}
	default:
		prov.Path = []string{"cert-y", "cert-a"} // received_from missing: path alone makes it foreign
	}
	// rapid favours the first values and small numbers: granting terms
	// come first so that foreign records get through often enough.
	if rapid.IntRange(0, 4).Draw(t, "no reshare terms") < 4 {
		prov.Reshare = &irxv1.ReshareTerms{
			MayReshare: rapid.IntRange(0, 3).Draw(t, "may reshare") < 3,
			Scope:      irxv1.ReshareScope(rapid.SampledFrom([]int32{2, 3, 2, 3, 0, 1}).Draw(t, "reshare scope")),
			HopsLeft:   uint32(rapid.SampledFrom([]int{1, 2, 1, 5, 3, 0}).Draw(t, "hops left")),
		}
	}
	return prov
}

// foreign is the engine's definition of a record this team received.
func foreign(inc *irxv1.Incident) bool {
	return inc.GetProvenance().GetReceivedFrom() != "" || len(inc.GetProvenance().GetPath()) > 0
}

type genPolicy struct {
	p       *irxv1.DisclosurePolicy
	actions map[irxv1.InfoClass]irxv1.DisclosureAction
	ntk     bool // whether need-to-know holds for the record
}

func drawPolicy(t *rapid.T, g *recordGen, inc *irxv1.Incident) genPolicy {
	p := &irxv1.DisclosurePolicy{
		PeerTeamId:     "cert-b",
		RecipientClass: irxv1.RecipientClass(rapid.IntRange(1, 4).Draw(t, "recipient")),
		TlpCeiling:     irxv1.Tlp(rapid.SampledFrom([]int32{1, 2, 3, 4, 5, 5, 5, 5, 5}).Draw(t, "ceiling")),
		MaxHops:        uint32(rapid.SampledFrom([]int{3, 2, 4, 0, 1}).Draw(t, "max hops")), // room for foreign records first
	}
	gp := genPolicy{p: p, actions: map[irxv1.InfoClass]irxv1.DisclosureAction{irxv1.InfoClass_INFO_CLASS_HANDLING: forward}}
	for c := privateUser; c <= contact; c++ {
		a := irxv1.DisclosureAction(rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("action %v", c)))
		if a == 0 {
			continue // no rule: default deny
		}
		r := rule(c, a)
		if a == generalise && (c == intruder || c == privateSite || c == contact) && rapid.Bool().Draw(t, "prefixes") {
			v4, v6 := uint32(rapid.IntRange(0, 31).Draw(t, "v4")), uint32(rapid.IntRange(0, 127).Draw(t, "v6"))
			r.Ipv4PrefixLength, r.Ipv6PrefixLength = &v4, &v6
		}
		p.Rules = append(p.Rules, r)
		gp.actions[c] = a
	}
	if rapid.Bool().Draw(t, "constituency") {
		p.Constituency = &irxv1.Constituency{Cidrs: []string{"192.0.2.0/24"}}
		if len(g.hostAddrs) > 0 && rapid.Bool().Draw(t, "match") {
			a := rapid.SampledFrom(g.hostAddrs).Draw(t, "ntk address")
			p.Constituency.Cidrs = append(p.Constituency.Cidrs, netip.PrefixFrom(a, a.BitLen()).String())
			gp.ntk = true
		}
		p.NeedToKnow = rapid.IntRange(0, 2).Draw(t, "need to know") == 0
	}
	switch rapid.IntRange(0, 5).Draw(t, "taxonomy filter") {
	case 1:
		p.TaxonomyDeny = []string{inc.GetTaxonomy().GetClass()}
	case 2:
		p.TaxonomyAllow = []string{inc.GetTaxonomy().GetClass() + "/" + inc.GetTaxonomy().GetType()}
	}
	return gp
}

func (gp genPolicy) action(c irxv1.InfoClass) irxv1.DisclosureAction {
	if a, ok := gp.actions[c]; ok {
		return a
	}
	return strip
}

func (gp genPolicy) admits(r irxv1.Restriction) bool {
	switch r {
	case public, partner:
		return true
	case needToKnow:
		return gp.ntk
	}
	return false
}

// expectDisclosed is the record-level model for generated records (never
// on a loop: the peers are on no path).
func (gp genPolicy) expectDisclosed(inc *irxv1.Incident) bool {
	p := gp.p
	tlp := inc.GetTlp()
	if inc.GetWithdrawTime() != nil {
		return false
	}
	if !mayPassOn(inc, p.GetMaxHops()) {
		return false
	}
	if tlp > p.GetTlpCeiling() {
		return false
	}
	if tlp == irxv1.Tlp_TLP_RED && len(inc.GetNamedRecipients()) == 0 {
		return false
	}
	r := inc.GetRestriction()
	if r == 0 {
		r = private
	}
	if !gp.admits(r) || p.GetNeedToKnow() && !gp.ntk {
		return false
	}
	if len(p.GetTaxonomyDeny()) > 0 && (inc.GetTaxonomy().GetClass() == p.GetTaxonomyDeny()[0] ||
		len(inc.GetAdditionalTaxonomies()) > 0 && inc.GetAdditionalTaxonomies()[0].GetClass() == p.GetTaxonomyDeny()[0]) {
		return false
	}
	return true // the allow entry is the record's own taxonomy
}

// mayPassOn is the model of the re-share conditions: a local record always
// may; a foreign one only at TLP:CLEAR or GREEN, with terms from upstream
// that grant re-share in the community or beyond with a transfer left, and
// within the hop limit.
func mayPassOn(inc *irxv1.Incident, maxHops uint32) bool {
	if !foreign(inc) {
		return true
	}
	up := inc.GetProvenance().GetReshare()
	return inc.GetTlp() <= irxv1.Tlp_TLP_GREEN && up.GetMayReshare() && up.GetHopsLeft() >= 1 &&
		(up.GetScope() == irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY || up.GetScope() == irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED) &&
		len(inc.GetProvenance().GetPath())+1 <= int(max(maxHops, 1))
}

// expectTerms is the model of the re-share terms a disclosed record goes
// out with.
func expectTerms(inc *irxv1.Incident, maxHops uint32) (irxv1.ReshareScope, uint32) {
	scope := irxv1.ReshareScope_RESHARE_SCOPE_NONE
	switch inc.GetTlp() {
	case irxv1.Tlp_TLP_CLEAR:
		scope = irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED
	case irxv1.Tlp_TLP_GREEN:
		scope = irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY
	}
	up := inc.GetProvenance().GetReshare()
	if foreign(inc) && up.GetScope() < scope {
		scope = up.GetScope() // expectDisclosed admitted only community and unlimited
	}
	hops, limit := len(inc.GetProvenance().GetPath())+1, int(max(maxHops, 1))
	if scope == irxv1.ReshareScope_RESHARE_SCOPE_NONE || hops >= limit {
		return scope, 0
	}
	left := limit - hops
	if foreign(inc) {
		left = min(left, int(up.GetHopsLeft())-1)
	}
	return scope, uint32(left)
}

func grantedColumns(inc *irxv1.Incident, rc irxv1.RecipientClass) map[string]bool {
	var row *irxv1.ConsentScope
	switch rc {
	case irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM:
		row = inc.GetDisclosureConsent().GetResponseTeams()
	case irxv1.RecipientClass_RECIPIENT_CLASS_SITE:
		row = inc.GetDisclosureConsent().GetSitesInvolved()
	case irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT:
		row = inc.GetDisclosureConsent().GetLawEnforcement()
	}
	return map[string]bool{"domain": row.GetDomain(), "hosts": row.GetHosts(), "contact": row.GetContact()}
}

var tokenRE = regexp.MustCompile(`pseud:[a-z2-7]{26}`)

// TestDiscloseProperties: over random records filled with unique canaries
// and random policies, (1) nothing of a stripped class, a non-consented
// column or an unadmitted part appears anywhere in the view; (2) nothing
// pseudonymised or generalised appears as it was; (3) forwarded values do
// appear; (4) generalised addresses are exactly the masked prefix;
// (5) pseudonyms are stable for one peer and differ across peers; (6) the
// view is a valid record; (7) the output is deterministic; (8) a withdrawn
// record is never disclosed, and a foreign one only on the terms it came
// with, which the view's terms never exceed: hops_left at most the
// upstream hops_left - 1, a scope no wider than the upstream's.
func TestDiscloseProperties(t *testing.T) {
	// A security property: run more than rapid's default 100 cases unless
	// -rapid.checks says otherwise (about a second).
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("1000")
		defer func() { _ = f.Value.Set(f.DefValue) }()
	}
	var runs, withdrawn, disclosed, foreignDisclosed, leaksChecked, keptChecked, hiddenChecked int
	defer func() {
		t.Logf("%d records (%d withdrawn), %d disclosed (%d foreign); canaries checked: %d must not leak, %d transformed, %d forwarded",
			runs, withdrawn, disclosed, foreignDisclosed, leaksChecked, hiddenChecked, keptChecked)
		if runs > 20 && disclosed*8 < runs {
			t.Errorf("only %d of %d generated records were disclosed: the property test is nearly vacuous", disclosed, runs)
		}
		if runs > 200 && foreignDisclosed == 0 {
			t.Errorf("no foreign record of %d was disclosed: the re-share paths went untested", runs)
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		runs++
		g := &recordGen{t: t}
		inc := g.record()
		if err := record.Validate(inc, "incident"); err != nil {
			t.Fatalf("generator made an invalid record: %v", err)
		}
		if inc.GetWithdrawTime() != nil {
			withdrawn++
		}
		gp := drawPolicy(t, g, inc)
		c, err := policy.Compile(gp.p, keyFor("cert-b"))
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		view, ex := discloseCompiled(t, inc, c, gp.p)
		if want := gp.expectDisclosed(inc); (view != nil) != want || ex.GetDisclosed() != want {
			t.Fatalf("disclosed %v, model says %v: %v", view != nil, want, ex.GetReasons())
		}
		if view == nil {
			return
		}
		disclosed++
		if foreign(inc) {
			foreignDisclosed++
		}
		checkTerms(t, inc, gp.p.GetMaxHops(), ex)
		if err := record.Validate(view, "view"); err != nil {
			t.Fatalf("view is not a valid record: %v", err)
		}
		b := marshal(t, view)
		text := prototext.Format(view)

		granted := grantedColumns(inc, gp.p.GetRecipientClass())
		for _, cn := range g.canaries {
			gone := false
			for _, cl := range cn.classes[1:] {
				gone = gone || gp.action(cl) == strip
			}
			for _, gt := range cn.gates {
				gone = gone || !granted[gt]
			}
			for _, r := range cn.restr {
				gone = gone || r != inherit && !gp.admits(r)
			}
			for path, hasAddress := range g.victims {
				gone = gone || strings.HasPrefix(cn.path, path+".") && !hostSurvives(gp, granted, hasAddress)
			}
			leafAction := gp.action(cn.classes[len(cn.classes)-1])
			keep := leafAction == forward || cn.keepAs
			present := bytes.Contains(b, []byte(cn.marker))
			if present != strings.Contains(text, cn.marker) {
				t.Fatalf("%s: bytes and text disagree", cn.path)
			}
			switch {
			case gone:
				leaksChecked++
			case keep:
				keptChecked++
			default:
				hiddenChecked++
			}
			switch {
			case gone && present:
				t.Fatalf("%s (%v) leaked: %q is in the view though %s", cn.path, cn.classes, cn.marker, why(gp, cn, granted))
			case !gone && !keep && present:
				t.Fatalf("%s (%v, %v) disclosed as is: %q", cn.path, cn.classes, leafAction, cn.marker)
			case !gone && keep && !present:
				t.Fatalf("%s (%v, %v) should have been disclosed: %q missing", cn.path, cn.classes, leafAction, cn.marker)
			}
		}
		checkGeneralisedAddresses(t, gp, g, view)

		// Deterministic, and stable across Compile for the same peer key.
		view2, ex2 := policy.Disclose(inc, mustCompile(t, gp.p))
		if !bytes.Equal(b, marshal(t, view2)) || !bytes.Equal(marshal(t, ex), marshal(t, ex2)) {
			t.Fatal("not deterministic")
		}
		// Another peer, same rules: no token in common.
		other := proto.Clone(gp.p).(*irxv1.DisclosurePolicy)
		other.PeerTeamId = "cert-c"
		view3, _ := discloseChecked(t, inc, other)
		if view3 == nil {
			t.Fatal("the same policy for another named peer withheld the record")
		}
		mine := map[string]bool{}
		for _, tok := range tokenRE.FindAllString(text, -1) {
			mine[tok] = true
		}
		for _, tok := range tokenRE.FindAllString(prototext.Format(view3), -1) {
			if mine[tok] {
				t.Fatalf("token %s given to two peers", tok)
			}
		}
		if len(mine) > 0 && len(tokenRE.FindAllString(prototext.Format(view3), -1)) == 0 {
			t.Fatal("the other peer got no tokens where this one did")
		}
	})
}

// checkTerms holds a disclosed record's re-share terms to the model, and a
// foreign record's to those it came with: hops_left at most the upstream
// hops_left - 1 and a scope no wider than the upstream's, whatever the
// model says.
func checkTerms(t *rapid.T, inc *irxv1.Incident, maxHops uint32, ex *irxv1.Explanation) {
	rs := ex.GetReshare()
	if scope, left := expectTerms(inc, maxHops); rs.GetScope() != scope || rs.GetHopsLeft() != left || rs.GetMayReshare() != (left > 0) {
		t.Fatalf("re-share terms %v, model says scope %v, hops_left %d", rs, scope, left)
	}
	if !foreign(inc) {
		return
	}
	up := inc.GetProvenance().GetReshare()
	if int64(rs.GetHopsLeft()) > int64(up.GetHopsLeft())-1 || rs.GetScope() > up.GetScope() {
		t.Fatalf("a foreign record goes out with terms %v, wider than the %v it came with", rs, up)
	}
}

// TestReshareProperties: over records that are local or foreign with
// random upstream terms, TLP and hop limits, and a policy that lets
// everything else through, a record is disclosed exactly when the model of
// the re-share conditions says so, with the model's terms, never wider than
// the upstream's; a withheld foreign record names an unsatisfied re-share
// or hop-limit reason.
func TestReshareProperties(t *testing.T) {
	// A security property too, and cheap: 1000 cases in well under a second.
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("1000")
		defer func() { _ = f.Value.Set(f.DefValue) }()
	}
	var runs, foreignDisclosed, foreignWithheld int
	defer func() {
		t.Logf("%d records; foreign: %d disclosed, %d withheld", runs, foreignDisclosed, foreignWithheld)
		if runs > 200 && (foreignDisclosed == 0 || foreignWithheld == 0) {
			t.Error("the generator missed a side of the re-share decision")
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		runs++
		inc := smallIncident(func(inc *irxv1.Incident) {
			inc.Tlp = irxv1.Tlp(rapid.SampledFrom([]int32{2, 1, 2, 1, 2, 3, 4, 5}).Draw(t, "tlp"))
			inc.NamedRecipients = []string{"cert-b"}
			if rapid.IntRange(0, 3).Draw(t, "foreign") > 0 {
				inc.Id, inc.Provenance = "cert-z:4", foreignProvenance(t)
			}
		})
		maxHops := uint32(rapid.SampledFrom([]int{3, 2, 4, 3, 6, 1, 0}).Draw(t, "max hops"))
		p := basePolicy(func(p *irxv1.DisclosurePolicy) { p.MaxHops = maxHops })
		view, ex := discloseChecked(t, inc, p)
		if want := mayPassOn(inc, maxHops); (view != nil) != want {
			t.Fatalf("disclosed %v, model says %v: %v", view != nil, want, ex.GetReasons())
		}
		if foreign(inc) && view != nil {
			foreignDisclosed++
		} else if foreign(inc) {
			foreignWithheld++
		}
		if view == nil {
			failed := false
			for _, r := range ex.GetReasons() {
				code := r.GetCode()
				failed = failed || !r.GetSatisfied() && (code == irxv1.ReasonCode_REASON_CODE_RESHARE || code == irxv1.ReasonCode_REASON_CODE_HOP_LIMIT)
			}
			if !failed {
				t.Fatalf("withheld without a failed re-share or hop-limit reason: %v", ex.GetReasons())
			}
			return
		}
		validView(t, view)
		checkTerms(t, inc, maxHops, ex)
	})
}

// hostSurvives is the model of a generated victim host's completeness: it
// keeps an identifier (the generator sets its name, domain and ASN, and
// maybe addresses) unless consent takes its names and generalise its ASN
// while it has no address.
func hostSurvives(gp genPolicy, granted map[string]bool, hasAddress bool) bool {
	return granted["domain"] || hasAddress || gp.action(privateSite) != generalise
}

func why(gp genPolicy, cn canary, granted map[string]bool) string {
	var parts []string
	for _, cl := range cn.classes[1:] {
		if gp.action(cl) == strip {
			parts = append(parts, fmt.Sprintf("class %v is stripped", cl))
		}
	}
	for _, gt := range cn.gates {
		if !granted[gt] {
			parts = append(parts, "no consent for "+gt)
		}
	}
	for _, r := range cn.restr {
		if r != inherit && !gp.admits(r) {
			parts = append(parts, fmt.Sprintf("restriction %v", r))
		}
	}
	return strings.Join(parts, ", ")
}

// checkGeneralisedAddresses: every address a generalised class discloses is
// exactly the masked prefix of a planted address at the rule's length, so
// nothing beyond the prefix (for /16, the third and fourth octets) leaks.
func checkGeneralisedAddresses(t *rapid.T, gp genPolicy, g *recordGen, view *irxv1.Incident) {
	planted := map[netip.Addr]bool{}
	for _, cn := range g.canaries {
		if cn.addr.IsValid() {
			planted[cn.addr] = true
		}
	}
	bits := func(class irxv1.InfoClass, a netip.Addr) int {
		for _, r := range gp.p.GetRules() {
			if r.GetInfoClass() == class {
				if a.Is4() {
					if r.Ipv4PrefixLength != nil {
						return int(r.GetIpv4PrefixLength())
					}
					return policy.DefaultIPv4PrefixLength
				}
				if r.Ipv6PrefixLength != nil {
					return int(r.GetIpv6PrefixLength())
				}
				return policy.DefaultIPv6PrefixLength
			}
		}
		return -1
	}
	check := func(class irxv1.InfoClass, s string) {
		if gp.action(class) != generalise {
			return
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("generalised address %q is not a prefix", s)
		}
		if p.Bits() != bits(class, p.Addr()) || p != p.Masked() {
			t.Fatalf("generalised address %q: want a masked /%d", s, bits(class, p.Addr()))
		}
		found := false
		for a := range planted {
			if a.BitLen() == p.Addr().BitLen() && p.Contains(a) {
				found = true
			}
		}
		if !found {
			t.Fatalf("generalised address %q is the prefix of no planted address", s)
		}
	}
	for _, h := range view.GetVictimHosts() {
		for _, a := range h.GetAddresses() {
			check(privateSite, a)
		}
	}
	for _, h := range view.GetAttackingHosts() {
		for _, a := range h.GetAddresses() {
			check(intruder, a)
		}
	}
	for _, ind := range view.GetIndicators() {
		if k := ind.GetKind(); k == irxv1.IndicatorKind_INDICATOR_KIND_IPV4 || k == irxv1.IndicatorKind_INDICATOR_KIND_IPV6 {
			check(intruder, ind.GetValue())
		}
	}
}
