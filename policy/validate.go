package policy

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// MaxHops bounds DisclosurePolicy.max_hops. Incident sharing chains are a
// handful of teams long; a larger number is a typo.
const MaxHops = 64

// Default prefix lengths of GENERALISE when a rule does not set them: the
// common anonymisation cuts (a /24 is a site's LAN, a /48 a site's IPv6
// allocation).
const (
	DefaultIPv4PrefixLength = 24
	DefaultIPv6PrefixLength = 48
)

// Policy validation errors are *record.ValidationError values (What
// "disclosure policy"), of class errdefs.ErrInvalidArgument: Field is the
// proto path ("rules[2].ipv4_prefix_length") for Validate and Compile, the
// YAML key path ("rules.private_site.ipv4_prefix_length") with Line and
// Column for ParseYAML.

type fieldErrors []record.Violation

func (fs *fieldErrors) add(field, format string, args ...any) {
	*fs = append(*fs, record.Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (fs fieldErrors) err() error {
	if len(fs) == 0 {
		return nil
	}
	return policyError(fs)
}

// ValidationWhat is the What of a policy's *record.ValidationError.
const ValidationWhat = "disclosure policy"

func policyError(vs []record.Violation) *record.ValidationError {
	return &record.ValidationError{What: ValidationWhat, Violations: vs}
}

// Validate checks a policy. It is what Compile checks first, and what the
// policy service runs before it stores a version. Output-only fields
// (version, create_time) are not checked beyond their range.
func Validate(p *irxv1.DisclosurePolicy) error {
	var fs fieldErrors
	if p == nil {
		fs.add("policy", "is required")
		return fs.err()
	}
	if p.GetPeerTeamId() == "" {
		fs.add("peer_team_id", "is required: the peer's team id")
	} else if err := record.ValidateTeamID(p.GetPeerTeamId()); err != nil {
		fs.add("peer_team_id", "%v", err)
	}
	switch rc := p.GetRecipientClass(); {
	case rc == irxv1.RecipientClass_RECIPIENT_CLASS_UNSPECIFIED:
		fs.add("recipient_class", "is required: one of %s", enumChoices(rc.Descriptor()))
	case rc.Descriptor().Values().ByNumber(protoreflect.EnumNumber(rc)) == nil:
		fs.add("recipient_class", "%d is not a recipient class; one of %s", rc, enumChoices(rc.Descriptor()))
	}
	switch t := p.GetTlpCeiling(); {
	case t == irxv1.Tlp_TLP_UNSPECIFIED:
		fs.add("tlp_ceiling", "is required: the highest TLP the peer may receive, one of %s", enumChoices(t.Descriptor()))
	case t < irxv1.Tlp_TLP_CLEAR || t > irxv1.Tlp_TLP_RED:
		fs.add("tlp_ceiling", "%d is not a TLP; one of %s", t, enumChoices(t.Descriptor()))
	}
	validateRules(p.GetRules(), &fs)
	validateConstituency(p, &fs)
	validateTaxonomyLists(p.GetTaxonomyAllow(), p.GetTaxonomyDeny(), &fs)
	if p.GetMaxHops() > MaxHops {
		fs.add("max_hops", "%d is more than %d", p.GetMaxHops(), MaxHops)
	}
	if p.GetVersion() < 0 {
		fs.add("version", "must not be negative")
	}
	if ct := p.GetCreateTime(); ct != nil && !ct.IsValid() {
		fs.add("create_time", "%v", ct.CheckValid())
	}
	return fs.err()
}

func validateRules(rules []*irxv1.ClassRule, fs *fieldErrors) {
	addr := addressClasses()
	seen := map[irxv1.InfoClass]int{}
	for i, r := range rules {
		f := fmt.Sprintf("rules[%d]", i)
		if r == nil {
			fs.add(f, "is empty")
			continue
		}
		class := r.GetInfoClass()
		classOK := false
		switch {
		case class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED:
			fs.add(f+".info_class", "is required: one of %s", classChoices())
		case !knownClass(class):
			fs.add(f+".info_class", "%d is not an information class; one of %s", class, classChoices())
		default:
			classOK = true
			if j, dup := seen[class]; dup {
				fs.add(f+".info_class", "%s already has a rule at rules[%d]; one rule per class", className(class), j)
			} else {
				seen[class] = i
			}
		}
		action := r.GetAction()
		switch {
		case action == irxv1.DisclosureAction_DISCLOSURE_ACTION_UNSPECIFIED:
			fs.add(f+".action", "is required: one of %s", actionChoices())
			continue
		case action < irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD || action > irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE:
			fs.add(f+".action", "%d is not an action; one of %s", action, actionChoices())
			continue
		}
		if class == irxv1.InfoClass_INFO_CLASS_HANDLING && action != irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD {
			fs.add(f+".action", "handling information (id, version, TLP, restriction, named recipients, provenance) travels with every view so the peer can honour the markings; only forward is allowed, not %s", actionName(action))
		}
		for _, pl := range []struct {
			name string
			v    *uint32
			max  uint32
			fam  string
		}{
			{"ipv4_prefix_length", r.Ipv4PrefixLength, 32, "IPv4"},
			{"ipv6_prefix_length", r.Ipv6PrefixLength, 128, "IPv6"},
		} {
			if pl.v == nil {
				continue
			}
			switch {
			case action != irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE:
				fs.add(f+"."+pl.name, "only applies to the generalise action, not %s", actionName(action))
			case classOK && !addr[class]:
				fs.add(f+"."+pl.name, "class %s has no address fields, so a prefix length means nothing; remove it", className(class))
			case *pl.v > pl.max:
				fs.add(f+"."+pl.name, "%d is not an %s prefix length (0 to %d)", *pl.v, pl.fam, pl.max)
			}
		}
	}
}

func validateConstituency(p *irxv1.DisclosurePolicy, fs *fieldErrors) {
	c := p.GetConstituency()
	for _, fe := range record.ValidateConstituency(c) {
		fe.Field = "constituency." + fe.Field
		*fs = append(*fs, fe)
	}
	empty := len(c.GetCidrs()) == 0 && len(c.GetAsns()) == 0 && len(c.GetDomains()) == 0
	if p.GetNeedToKnow() && empty {
		fs.add("need_to_know", "requires a constituency (cidrs, asns or domains) to check records against; without one no record would ever be disclosed")
	}
}

// taxEntry is a parsed taxonomy filter entry: a class, or a class and type.
type taxEntry struct {
	class, typ string
}

func (e taxEntry) String() string {
	if e.typ == "" {
		return e.class
	}
	return e.class + "/" + e.typ
}

// covers reports whether e matches everything o matches.
func (e taxEntry) covers(o taxEntry) bool {
	return e.class == o.class && (e.typ == "" || e.typ == o.typ)
}

func (e taxEntry) matches(t *irxv1.Taxonomy) bool {
	return t != nil && e.class == t.GetClass() && (e.typ == "" || e.typ == t.GetType())
}

func parseTaxEntry(s string) (taxEntry, error) {
	class, typ, hasType := strings.Cut(s, "/")
	types := record.TaxonomyTypes(class)
	if types == nil {
		return taxEntry{}, fmt.Errorf("%q is not a taxonomy class; one of %s", class, strings.Join(record.TaxonomyClasses(), ", "))
	}
	if hasType && !record.ValidTaxonomy(class, typ) {
		return taxEntry{}, fmt.Errorf("%q is not a type of taxonomy class %q; one of %s", typ, class, strings.Join(types, ", "))
	}
	return taxEntry{class: class, typ: typ}, nil
}

func validateTaxonomyLists(allow, deny []string, fs *fieldErrors) {
	parse := func(list []string, name string) []taxEntry {
		out := make([]taxEntry, len(list))
		for i, s := range list {
			e, err := parseTaxEntry(s)
			if err != nil {
				fs.add(fmt.Sprintf("%s[%d]", name, i), "%v", err)
				continue
			}
			for j := 0; j < i; j++ {
				if out[j] == e {
					fs.add(fmt.Sprintf("%s[%d]", name, i), "%q is listed twice (also %s[%d])", s, name, j)
				}
			}
			out[i] = e
		}
		return out
	}
	a, d := parse(allow, "taxonomy_allow"), parse(deny, "taxonomy_deny")
	for i, ae := range a {
		if ae.class == "" {
			continue
		}
		for j, de := range d {
			if de.class != "" && de.covers(ae) {
				fs.add(fmt.Sprintf("taxonomy_allow[%d]", i), "%q can never match: taxonomy_deny[%d] %q denies it, and deny wins", ae, j, de)
			}
		}
	}
}

func knownClass(c irxv1.InfoClass) bool {
	return c > irxv1.InfoClass_INFO_CLASS_UNSPECIFIED && c <= irxv1.InfoClass_INFO_CLASS_HANDLING
}

// numClasses sizes the per-class tables: InfoClass numbers 0 to 8.
const numClasses = int(irxv1.InfoClass_INFO_CLASS_HANDLING) + 1

// className is the short name of a class as policies write it: "intruder",
// "private_site".
func className(c irxv1.InfoClass) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "INFO_CLASS_"))
}

func actionName(a irxv1.DisclosureAction) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "DISCLOSURE_ACTION_"))
}

func classChoices() string {
	var names []string
	for c := irxv1.InfoClass_INFO_CLASS_PRIVATE_USER; c <= irxv1.InfoClass_INFO_CLASS_HANDLING; c++ {
		names = append(names, className(c))
	}
	return strings.Join(names, ", ")
}

func actionChoices() string {
	return "forward, strip, pseudonymise, generalise"
}

func enumChoices(ed protoreflect.EnumDescriptor) string {
	var names []string
	vals := ed.Values()
	for i := 1; i < vals.Len(); i++ {
		names = append(names, string(vals.Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

// tlpName is how TLP 2.0 writes a marking: "TLP:AMBER+STRICT".
func tlpName(t irxv1.Tlp) string {
	switch t {
	case irxv1.Tlp_TLP_CLEAR:
		return "TLP:CLEAR"
	case irxv1.Tlp_TLP_GREEN:
		return "TLP:GREEN"
	case irxv1.Tlp_TLP_AMBER:
		return "TLP:AMBER"
	case irxv1.Tlp_TLP_AMBER_STRICT:
		return "TLP:AMBER+STRICT"
	case irxv1.Tlp_TLP_RED:
		return "TLP:RED"
	}
	return "TLP " + strconv.Itoa(int(t))
}
