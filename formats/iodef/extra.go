package iodef

import (
	"bytes"
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// What IODEF has no element for travels as AdditionalData, the extension
// point RFC 7970 gives every class that needs one:
//
//   - irx's own fields of a part (a host's timezone, the incident's
//     priority...) as dtype "json" with meaning residualMeaning + the
//     message's name, holding the part's protobuf JSON with every field
//     IODEF carries cleared;
//   - the parts of an imported document irx has no field for, kept
//     verbatim in the record (irx.v1.IodefExtra), as dtype "xml" with
//     meaning extraMeaning + their information class and name their
//     original path.

const (
	residualMeaning = "urn:irx:v1:"
	extraMeaning    = "urn:irx:v1:extra:"
)

// residualElement is the AdditionalData holding the fields of m not
// named in mapped, or nil when they are all unset.
func residualElement(m proto.Message, mapped ...string) *element {
	rest := proto.Clone(m)
	r := rest.ProtoReflect()
	fields := r.Descriptor().Fields()
	for _, name := range mapped {
		if fd := fields.ByName(protoreflect.Name(name)); fd != nil {
			r.Clear(fd)
		}
	}
	if proto.Size(rest) == 0 {
		return nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(rest)
	if err != nil {
		return nil // only invalid UTF-8, which record.Validate refuses
	}
	// protojson varies its white space on purpose; compacted, the output
	// is stable.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil
	}
	return additionalData("json", residualMeaning+string(r.Descriptor().Name()), "", out.String())
}

// mergeResidual reads the AdditionalData children of n that hold irx's
// fields of the message dst and merges them into dst. A residual that
// does not read is left unused, so the warning lists it.
func (m *mapper) mergeResidual(n *element, dst proto.Message) {
	want := residualMeaning + string(dst.ProtoReflect().Descriptor().Name())
	for _, k := range n.children {
		if k.name.Space != m.ns || k.name.Local != "AdditionalData" {
			continue
		}
		if a := k.findAttr("meaning"); a == nil || strings.TrimSpace(a.value) != want {
			continue
		}
		part := dst.ProtoReflect().New().Interface()
		if err := (protojson.UnmarshalOptions{}).Unmarshal([]byte(strings.TrimSpace(string(k.text))), part); err != nil {
			m.note(k, "", "", "not irx's JSON of %s: %v", want, err)
			continue
		}
		clearOutputOnly(part)
		k.used = true
		for _, a := range k.attrs {
			a.used = true
		}
		proto.Merge(dst, part)
	}
}

// clearOutputOnly clears what a sender cannot set: the fields the origin
// team sets on its own record.
func clearOutputOnly(m proto.Message) {
	inc, ok := m.(*irxv1.Incident)
	if !ok {
		return
	}
	inc.Id, inc.Version = "", 0
	inc.GenerationTime, inc.CreateTime, inc.Provenance = nil, nil, nil
	inc.WithdrawTime, inc.WithdrawReason = nil, ""
}

// extraFields are the Incident fields that hold IodefExtra, one per
// information class.
var extraFields = []string{
	"iodef_extras_private_user", "iodef_extras_intruder", "iodef_extras_private_site",
	"iodef_extras_vulnerability", "iodef_extras_embarrassing", "iodef_extras_statistical",
	"iodef_extras_contact",
}

type classedExtra struct {
	extra *irxv1.IodefExtra
	class irxv1.InfoClass
}

// extrasOf lists the record's kept parts with their class, in the order
// of extraFields.
func extrasOf(inc *irxv1.Incident) []classedExtra {
	var out []classedExtra
	add := func(xs []*irxv1.IodefExtra, c irxv1.InfoClass) {
		for _, x := range xs {
			out = append(out, classedExtra{x, c})
		}
	}
	add(inc.GetIodefExtrasPrivateUser(), irxv1.InfoClass_INFO_CLASS_PRIVATE_USER)
	add(inc.GetIodefExtrasIntruder(), irxv1.InfoClass_INFO_CLASS_INTRUDER)
	add(inc.GetIodefExtrasPrivateSite(), irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE)
	add(inc.GetIodefExtrasVulnerability(), irxv1.InfoClass_INFO_CLASS_VULNERABILITY)
	add(inc.GetIodefExtrasEmbarrassing(), irxv1.InfoClass_INFO_CLASS_EMBARRASSING)
	add(inc.GetIodefExtrasStatistical(), irxv1.InfoClass_INFO_CLASS_STATISTICAL)
	add(inc.GetIodefExtrasContact(), irxv1.InfoClass_INFO_CLASS_CONTACT)
	return out
}

// addExtra files x under its class.
func addExtra(inc *irxv1.Incident, x *irxv1.IodefExtra, c irxv1.InfoClass) {
	switch c {
	case irxv1.InfoClass_INFO_CLASS_INTRUDER:
		inc.IodefExtrasIntruder = append(inc.IodefExtrasIntruder, x)
	case irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE:
		inc.IodefExtrasPrivateSite = append(inc.IodefExtrasPrivateSite, x)
	case irxv1.InfoClass_INFO_CLASS_VULNERABILITY:
		inc.IodefExtrasVulnerability = append(inc.IodefExtrasVulnerability, x)
	case irxv1.InfoClass_INFO_CLASS_EMBARRASSING:
		inc.IodefExtrasEmbarrassing = append(inc.IodefExtrasEmbarrassing, x)
	case irxv1.InfoClass_INFO_CLASS_STATISTICAL:
		inc.IodefExtrasStatistical = append(inc.IodefExtrasStatistical, x)
	case irxv1.InfoClass_INFO_CLASS_CONTACT:
		inc.IodefExtrasContact = append(inc.IodefExtrasContact, x)
	default:
		inc.IodefExtrasPrivateUser = append(inc.IodefExtrasPrivateUser, x)
	}
}

// classWord is how an extra's class is written in its meaning.
func classWord(c irxv1.InfoClass) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(c.String(), "INFO_CLASS_"), "_", "-"))
}

func classFromWord(w string) (irxv1.InfoClass, bool) {
	v, ok := irxv1.InfoClass_value["INFO_CLASS_"+strings.ToUpper(strings.ReplaceAll(w, "-", "_"))]
	c := irxv1.InfoClass(v)
	if !ok || c == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED || c == irxv1.InfoClass_INFO_CLASS_HANDLING {
		return 0, false
	}
	return c, true
}

// extraElement is the AdditionalData that carries a kept part: its XML
// as the element's text, so that a part that was partial or invalid where
// it stood does not make the export invalid.
func extraElement(x *irxv1.IodefExtra, c irxv1.InfoClass) (*element, error) {
	ad := additionalData("xml", extraMeaning+classWord(c), x.GetPath(), x.GetXml())
	return setRestriction(ad, x.GetRestriction()), nil
}

// readExtra reads back an AdditionalData an export wrote for a kept part;
// ok is false when n is not one.
func (m *mapper) readExtra(n *element) bool {
	a := n.findAttr("meaning")
	if a == nil {
		return false
	}
	word, ok := strings.CutPrefix(strings.TrimSpace(a.value), extraMeaning)
	if !ok {
		return false
	}
	class, ok := classFromWord(word)
	if !ok {
		return false
	}
	text := strings.TrimSpace(string(n.text))
	if _, err := readTree("", []byte(text)); err != nil {
		return false
	}
	path, _ := n.attr("name")
	r, _ := m.restriction(n, m.incRestr)
	n.used = true
	a.used = true
	n.attr("dtype")
	addExtra(m.inc, &irxv1.IodefExtra{Path: path, Xml: text, Restriction: m.part(r)}, class)
	return true
}

// keepUnused keeps, as IodefExtra of the incident, every element the
// mapping did not use (with its descendants) and every attribute it did
// not use of an element it used; kept lists their paths.
func (m *mapper) keepUnused(n *element, kept *[]string) {
	if !n.used {
		m.keepExtra(n, m.path(n), fragment(n))
		p := m.path(n)
		if n.why != "" {
			p += " (" + n.why + ")"
		}
		*kept = append(*kept, atLine(p, n.line))
		return
	}
	for _, a := range n.attrs {
		if a.used || ignorableAttr(a.name) {
			continue
		}
		// The element with that attribute alone, so that the part says
		// where it stood.
		shallow := &element{name: n.name, attrs: []*attribute{a}}
		m.keepExtra(n, m.path(n)+"@"+a.name.Local, fragment(shallow))
		*kept = append(*kept, atLine(m.path(n)+attrLabel(a), n.line))
	}
	for _, k := range n.children {
		m.keepUnused(k, kept)
	}
}

func (m *mapper) keepExtra(n *element, path, xml string) {
	// The path without the incident's label: the same wherever the
	// incident stands in its document.
	if rest, ok := strings.CutPrefix(path, m.label); ok {
		path = "Incident" + rest
	}
	addExtra(m.inc, &irxv1.IodefExtra{Path: path, Xml: xml, Restriction: m.part(m.effectiveRestriction(n))}, extraClass(n))
}

// effectiveRestriction is the restriction of n in irx's terms: its own
// restriction attribute or its closest ancestor's, without marking any
// used.
func (m *mapper) effectiveRestriction(n *element) irxv1.Restriction {
	for e := n; e != nil; e = e.parent {
		a := e.findAttr("restriction")
		if a == nil {
			if e == m.incident {
				break
			}
			continue
		}
		v := strings.TrimSpace(a.value)
		if mk, ok := restrictionEnum.to[v]; ok {
			return mk.restriction
		}
		if v == "ext-value" {
			return irxv1.Restriction_RESTRICTION_PRIVATE
		}
		if e == m.incident {
			break
		}
	}
	return m.incRestr
}

// extraClass decides the information class of a kept part by the closest
// element of its path that says what it is about (extraClassOf); a part
// nothing says anything of is private user information, the class
// disclosed least.
func extraClass(n *element) irxv1.InfoClass {
	for e := n; e != nil; e = e.parent {
		if e.name.Local == "System" {
			// Who the system belongs to decides.
			if a := e.findAttr("category"); a != nil {
				switch strings.TrimSpace(a.value) {
				case "source", "intermediate", "infrastructure":
					return irxv1.InfoClass_INFO_CLASS_INTRUDER
				}
			}
			return irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE
		}
		if c, ok := extraClassOf[e.name.Local]; ok {
			return c
		}
	}
	return irxv1.InfoClass_INFO_CLASS_PRIVATE_USER
}
