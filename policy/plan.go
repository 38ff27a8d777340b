package policy

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// leafKind says how a field's value is transformed. It comes from the
// field's type and, for strings with a format the record validator checks
// (addresses, digests, incident ids), from the field's name: a pseudonym or
// generalisation of such a field keeps that format, so the view stays a
// valid record.
type leafKind uint8

const (
	// Enums, booleans, and numbers that name a protocol or a point on a
	// scale (ports, IP protocol numbers, 0-100 confidences) or are
	// handling (version, hops left): structure, not identity. Kept by
	// pseudonymise and generalise; removed by strip.
	kindScalar leafKind = iota
	// A string that is a code of a public vocabulary (language tag, media
	// type, currency or country code, taxonomy entry; see vocabulary): kept by
	// pseudonymise and generalise when it is one, removed when it is not,
	// so a record stored before validation knew the vocabulary cannot slip
	// text through.
	kindCode
	// A number that measures something (an amount of money, a size, a
	// count): kept by pseudonymise, cut to its first significant digit by
	// generalise, since an exact figure can identify a victim.
	kindMagnitude
	// Free text and names: a "pseud:" token, or removed by generalise.
	kindText
	// A host or domain name: generalise keeps the last two labels.
	kindDomain
	// An e-mail address: generalise keeps "@domain".
	kindEmail
	// An IP address or CIDR prefix: pseudonymised to an address in a
	// reserved range, generalised to a prefix.
	kindAddress
	// Indicator.value: its format follows Indicator.kind.
	kindIndicatorValue
	// A hex digest: pseudonymised to 64 hex digits.
	kindHexDigest
	// An incident id "<team>:<ticket>": pseudonymised to "pseud:<number>".
	kindIncidentID
	// An autonomous system number: pseudonymised to a private-use ASN,
	// removed by generalise (it names a network, often an organisation,
	// and has no coarser form).
	kindASN
	// A google.protobuf.Timestamp: generalised to the day (UTC midnight),
	// kept by pseudonymise.
	kindTime
	// An irx.v1 message: walked.
	kindMessage
)

// vocabulary is the public code list a kindCode field's values come from.
type vocabulary uint8

const (
	vocabNone          vocabulary = iota
	vocabLanguage                 // BCP 47 language tags
	vocabMediaType                // RFC 6838 type/subtype
	vocabCurrency                 // ISO 4217 codes
	vocabCountry                  // ISO 3166-1 alpha-2 codes
	vocabTaxonomyClass            // Reference Security Incident Taxonomy classes
	vocabTaxonomyType             // its types, of the sibling class
)

// consentBits are the columns of the reporter's consent table (CERT/CC form
// 3.2): whether the reporter's domain, hosts and contact information may be
// given to a recipient class.
type consentBits uint8

const (
	consentDomain consentBits = 1 << iota
	consentHosts
	consentContact
)

// fieldPlan is what the engine does with one field of one message at one
// place in the schema tree (Host under victim_hosts and Host under
// attacking_hosts have different plans: their classes differ).
type fieldPlan struct {
	name   string
	off    uintptr      // offset of the Go struct field
	goKind reflect.Kind // of the Go struct field (checked against the proto kind)
	// The word whose being non-zero is the field's presence: the length of
	// a string or slice, the pointer, the number or boolean itself.
	presOff  uintptr
	presSize uint8
	list     bool
	kind     leafKind
	class    irxv1.InfoClass
	action   irxv1.DisclosureAction
	cause    irxv1.DecisionCause // CLASS_RULE, or DEFAULT_DENY when no rule names the class
	rule     string
	// boundary: the field's class differs from the enclosing field's (or it
	// is a field of the Incident), so the explanation gets a decision for it.
	// Handling fields inside parts (their restriction) are not boundaries:
	// they always travel with their part.
	boundary bool
	// gate: the consent column that must be granted for the field to leave
	// at all.
	gate consentBits
	// identity: the action gives the value back unchanged (for messages:
	// the container survives; what is beneath is looked at per call).
	identity bool
	// copyAsIs: a scalar the action keeps, inside a part (not a boundary,
	// not gated): the walk copies it without further ado.
	copyAsIs bool
	// placeholder: a required field (Incident.taxonomy) that is replaced by
	// a neutral value rather than removed when its class is stripped.
	placeholder bool
	// vocab is the vocabulary of a kindCode field; codeChecked is set when
	// the action keeps codes and so must check each value against it.
	vocab       vocabulary
	codeChecked bool
	// siblingOff is the offset of the field the value is read with:
	// Indicator.kind for an indicator value, Taxonomy.class for a
	// taxonomy type.
	siblingOff     uintptr
	v4bits, v6bits int
	msg            *msgPlan
}

// msgPlan is the plan of one message at one place in the schema tree.
type msgPlan struct {
	typ      reflect.Type               // the Go struct type
	size     uintptr                    // of the Go struct
	makeSlab func(n int) unsafe.Pointer // a new []T of n zero messages
	slab     int                        // index of the per-call allocator for typ
	fields   []fieldPlan
	// restrictionOff is the offset of the message's IODEF restriction
	// field (an int32), when hasRestriction.
	restrictionOff uintptr
	hasRestriction bool
	// unknownOff is the offset of the generated unknownFields (a []byte),
	// when hasUnknown.
	unknownOff uintptr
	hasUnknown bool
	// checks are the fields that decide, per value, whether the message
	// can go out unchanged (shared with the input) or must be rebuilt.
	checks []int
	// The record validator's completeness rules, for parts that lose
	// fields: requireAny (a Host needs a name, address, domain or ASN),
	// requireAll (an Indicator needs a kind and a value).
	requireAny, requireAll []int
	incompleteRule         string
}

// ownClass is the info_class option set on a field itself, if any.
func ownClass(fd protoreflect.FieldDescriptor) irxv1.InfoClass {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return irxv1.InfoClass_INFO_CLASS_UNSPECIFIED
	}
	c, _ := proto.GetExtension(opts, irxv1.E_InfoClass).(irxv1.InfoClass)
	return c
}

const timestampName protoreflect.FullName = "google.protobuf.Timestamp"

// stringKind maps the string fields whose format the record validator
// checks, or that generalise knows how to coarsen, to their kind. Every
// other string is free text.
func stringKind(fd protoreflect.FieldDescriptor) leafKind {
	switch fd.FullName() {
	case "irx.v1.Host.addresses":
		return kindAddress
	case "irx.v1.Indicator.value":
		return kindIndicatorValue
	case "irx.v1.Host.hostname", "irx.v1.Host.domain", "irx.v1.ReportingSite.domain", "irx.v1.Contact.constituency_domain":
		return kindDomain
	case "irx.v1.Contact.email":
		return kindEmail
	case "irx.v1.Evidence.sha256":
		return kindHexDigest
	case "irx.v1.RelatedActivity.incident_ids":
		return kindIncidentID
	}
	if codeVocabulary(fd) != vocabNone {
		return kindCode // codes from public vocabularies: they identify nothing
	}
	return kindText
}

// codeVocabulary is the vocabulary of a string field whose values are codes.
func codeVocabulary(fd protoreflect.FieldDescriptor) vocabulary {
	switch fd.FullName() {
	case "irx.v1.Description.lang":
		return vocabLanguage
	case "irx.v1.LogExcerpt.media_type":
		return vocabMediaType
	case "irx.v1.MonetaryImpact.currency":
		return vocabCurrency
	case "irx.v1.ReportingSite.country":
		return vocabCountry
	case "irx.v1.Taxonomy.class":
		return vocabTaxonomyClass
	case "irx.v1.Taxonomy.type":
		return vocabTaxonomyType
	}
	return vocabNone
}

// numberKind says what a number field is. Every number of the schema is
// listed: one that is not stops Compile, because whether generalise may
// keep a number depends on what it counts (TestNumbersClassified).
func numberKind(fd protoreflect.FieldDescriptor) (leafKind, error) {
	switch fd.FullName() {
	case "irx.v1.Host.asn":
		return kindASN, nil
	case "irx.v1.MonetaryImpact.amount_minor", "irx.v1.Evidence.size_bytes", "irx.v1.Compromise.sniffer_sessions_logged",
		"irx.v1.Counter.value":
		return kindMagnitude, nil
	case "irx.v1.Service.port", "irx.v1.Service.ip_protocol", "irx.v1.Indicator.confidence", "irx.v1.Assessment.confidence",
		"irx.v1.Incident.version", "irx.v1.ReshareTerms.hops_left",
		"irx.v1.Transfer.policy_version", "irx.v1.Provenance.terms_version":
		return kindScalar, nil
	}
	return 0, fmt.Errorf("policy: %s: a number the disclosure engine has no rule for; say in policy/plan.go's numberKind whether it is an identifier, a magnitude or a code", fd.FullName())
}

// consentGate maps the fields the reporter's consent governs to their
// consent column. underVictim is true beneath Incident.victim_hosts: those
// hosts are the reporter's; attacking hosts are not.
func consentGate(fd protoreflect.FieldDescriptor, underVictim bool) consentBits {
	switch fd.FullName() {
	case "irx.v1.Incident.contacts":
		return consentContact
	case "irx.v1.Incident.victim_hosts":
		return consentHosts
	case "irx.v1.ReportingSite.name", "irx.v1.ReportingSite.domain":
		// The site's name identifies it as its domain does.
		return consentDomain
	case "irx.v1.Host.hostname", "irx.v1.Host.domain":
		if underVictim {
			return consentDomain
		}
	}
	return 0
}

// addressClasses is the set of classes that own address fields, the only
// ones where a rule's prefix lengths mean something. It is computed from the
// schema, so a new address field anywhere updates it.
func addressClasses() map[irxv1.InfoClass]bool {
	out := map[irxv1.InfoClass]bool{}
	var walk func(md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, depth int)
	walk = func(md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, depth int) {
		if depth > maxDepth {
			return
		}
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			class := ownClass(fd)
			if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
				class = inherited
			}
			switch {
			case fd.Kind() == protoreflect.StringKind:
				if k := stringKind(fd); k == kindAddress || k == kindIndicatorValue || k == kindDomain {
					// Domain fields count: an IP literal in a host name
					// is generalised as an address.
					out[class] = true
				}
			case fd.Message() != nil && fd.Message().ParentFile().Package() == "irx.v1":
				walk(fd.Message(), class, depth+1)
			}
		}
	}
	walk((&irxv1.Incident{}).ProtoReflect().Descriptor(), irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, 0)
	return out
}

const maxDepth = 8

type planBuilder struct {
	c     *Compiled
	slabs map[reflect.Type]int
}

// buildPlan computes the plan of the whole Incident schema for the compiled
// policy's actions. It fails on a schema shape the walker does not handle
// (maps, oneofs, proto3 optional scalars, foreign message types, recursion),
// so a schema change that the engine does not understand stops Compile
// instead of leaking.
func (c *Compiled) buildPlan() error {
	b := &planBuilder{c: c, slabs: map[reflect.Type]int{}}
	root, err := b.message((&irxv1.Incident{}).ProtoReflect().Descriptor(), reflect.TypeFor[irxv1.Incident](),
		irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, false, 0)
	if err != nil {
		return err
	}
	c.root = root
	c.nSlabs = len(b.slabs)
	c.tsUnknownOff, c.tsHasUnknown = unknownFieldsOffset(reflect.TypeFor[timestamppb.Timestamp]())
	return nil
}

func (b *planBuilder) message(md protoreflect.MessageDescriptor, gt reflect.Type, inherited irxv1.InfoClass, underVictim bool, depth int) (*msgPlan, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("policy: schema nests deeper than %d levels at %s (recursive message?)", maxDepth, md.FullName())
	}
	if gt.Kind() != reflect.Struct {
		return nil, fmt.Errorf("policy: %s: Go type %v is not a struct", md.FullName(), gt)
	}
	slab, ok := b.slabs[gt]
	if !ok {
		slab = len(b.slabs)
		b.slabs[gt] = slab
	}
	mp := &msgPlan{typ: gt, size: gt.Size(), slab: slab, makeSlab: slabMaker(gt)}
	mp.unknownOff, mp.hasUnknown = unknownFieldsOffset(gt)
	byName := structFields(gt)
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		var err error
		if fd.IsMap() || fd.ContainingOneof() != nil || fd.IsExtension() {
			return nil, fmt.Errorf("policy: %s: maps, oneofs and optional fields are not supported by the disclosure engine; extend policy/plan.go", fd.FullName())
		}
		idx, ok := byName[string(fd.Name())]
		if !ok {
			return nil, fmt.Errorf("policy: %s has no Go struct field in %v", fd.FullName(), gt)
		}
		sf := gt.Field(idx)
		if err := checkGoType(fd, sf.Type); err != nil {
			return nil, err
		}
		class := ownClass(fd)
		if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
			class = inherited
		}
		f := fieldPlan{
			name:     string(fd.Name()),
			off:      sf.Offset,
			presOff:  sf.Offset,
			presSize: uint8(sf.Type.Size()),
			goKind:   sf.Type.Kind(),
			list:     fd.IsList(),
			class:    class,
			boundary: class != inherited && class != irxv1.InfoClass_INFO_CLASS_HANDLING || depth == 0,
			gate:     consentGate(fd, underVictim),
		}
		switch sf.Type.Kind() {
		case reflect.String, reflect.Slice:
			// {data, len[, cap]}: the length is the second word.
			f.presOff, f.presSize = sf.Offset+unsafe.Sizeof(uintptr(0)), uint8(unsafe.Sizeof(0))
		}
		if s := f.presSize; s != 1 && s != 4 && s != 8 {
			return nil, fmt.Errorf("policy: %s: unexpected Go field size %d", fd.FullName(), s)
		}
		f.action, f.cause, f.rule = b.c.actionOf(class)
		f.v4bits, f.v6bits = b.c.v4bits[classIndex(class)], b.c.v6bits[classIndex(class)]
		switch {
		case fd.Kind() == protoreflect.StringKind:
			f.kind, f.vocab = stringKind(fd), codeVocabulary(fd)
		case isNumber(fd.Kind()):
			if f.kind, err = numberKind(fd); err != nil {
				return nil, err
			}
		case fd.Message() != nil && fd.Message().FullName() == timestampName:
			f.kind = kindTime
		case fd.Message() != nil && fd.Message().ParentFile().Package() == "irx.v1":
			f.kind = kindMessage
			et := sf.Type
			if f.list {
				et = et.Elem()
			}
			if et.Kind() != reflect.Pointer {
				return nil, fmt.Errorf("policy: %s: unexpected Go type %v", fd.FullName(), sf.Type)
			}
			child, err := b.message(fd.Message(), et.Elem(), class, underVictim || fd.FullName() == "irx.v1.Incident.victim_hosts", depth+1)
			if err != nil {
				return nil, err
			}
			f.msg = child
		case fd.Message() != nil:
			return nil, fmt.Errorf("policy: %s: message type %s is not supported by the disclosure engine", fd.FullName(), fd.Message().FullName())
		default:
			f.kind = kindScalar
		}
		switch {
		case f.kind == kindIndicatorValue:
			if f.siblingOff, err = siblingOffset(gt, byName, "kind", reflect.Int32); err != nil {
				return nil, fmt.Errorf("policy: %s: %w", fd.FullName(), err)
			}
		case f.vocab == vocabTaxonomyType:
			if f.siblingOff, err = siblingOffset(gt, byName, "class", reflect.String); err != nil {
				return nil, fmt.Errorf("policy: %s: %w", fd.FullName(), err)
			}
		}
		f.placeholder = fd.FullName() == "irx.v1.Incident.taxonomy"
		f.identity = identity(f.kind, f.action)
		f.codeChecked = f.kind == kindCode && !f.identity && f.action != irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP
		f.copyAsIs = f.identity && !f.boundary && f.gate == 0 && !f.list &&
			(f.kind == kindScalar || f.kind == kindCode || f.kind == kindMagnitude || f.kind == kindASN) &&
			f.action != irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP
		if fd.Name() == "restriction" && fd.Enum() != nil && fd.Enum().FullName() == "irx.v1.Restriction" && !f.list {
			mp.restrictionOff, mp.hasRestriction = sf.Offset, true
		}
		mp.fields = append(mp.fields, f)
	}
	for i := range mp.fields {
		f := &mp.fields[i]
		if !f.identity || f.boundary || f.gate != 0 || f.kind == kindMessage || f.kind == kindTime {
			mp.checks = append(mp.checks, i)
		}
	}
	find := func(names ...string) []int {
		var out []int
		for _, n := range names {
			for i := range mp.fields {
				if mp.fields[i].name == n {
					out = append(out, i)
				}
			}
		}
		return out
	}
	switch md.FullName() {
	case "irx.v1.Host":
		mp.requireAny = find("hostname", "addresses", "domain", "asn")
		mp.incompleteRule = "a host needs a name, address, domain or ASN, and the rules left none; the host is removed"
	case "irx.v1.Indicator":
		mp.requireAll = find("kind", "value")
		mp.incompleteRule = "an indicator needs a kind and a value, and the rules removed the value; the indicator is removed"
	case "irx.v1.AlternativeId":
		mp.requireAll = find("team_id", "ticket")
		mp.incompleteRule = "an alternative id needs a team and a ticket; removed"
	case "irx.v1.Taxonomy":
		mp.requireAll = find("class", "type")
		mp.incompleteRule = "a taxonomy entry needs a class and a type of it, and this one has none left; removed"
	}
	return mp, nil
}

func isNumber(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind,
		protoreflect.FloatKind, protoreflect.DoubleKind:
		return true
	}
	return false
}

// siblingOffset is the offset of another field of the same Go struct.
func siblingOffset(gt reflect.Type, byName map[string]int, name string, kind reflect.Kind) (uintptr, error) {
	i, ok := byName[name]
	if !ok || gt.Field(i).Type.Kind() != kind {
		return 0, fmt.Errorf("no sibling %v field %s", kind, name)
	}
	return gt.Field(i).Offset, nil
}

// slabMaker returns how to allocate n zero messages of type t in one typed
// array: make([]T, n) for the schema's types, reflect for any other (as
// correct, somewhat slower; TestSlabMakers lists what is missing).
func slabMaker(t reflect.Type) func(n int) unsafe.Pointer {
	switch t {
	case reflect.TypeFor[irxv1.Taxonomy]():
		return makeSlab[irxv1.Taxonomy]
	case reflect.TypeFor[irxv1.Transfer]():
		return makeSlab[irxv1.Transfer]
	case reflect.TypeFor[irxv1.AlternativeId]():
		return makeSlab[irxv1.AlternativeId]
	case reflect.TypeFor[irxv1.Description]():
		return makeSlab[irxv1.Description]
	case reflect.TypeFor[irxv1.ReportingSite]():
		return makeSlab[irxv1.ReportingSite]
	case reflect.TypeFor[irxv1.Contact]():
		return makeSlab[irxv1.Contact]
	case reflect.TypeFor[irxv1.Host]():
		return makeSlab[irxv1.Host]
	case reflect.TypeFor[irxv1.Service]():
		return makeSlab[irxv1.Service]
	case reflect.TypeFor[irxv1.Indicator]():
		return makeSlab[irxv1.Indicator]
	case reflect.TypeFor[irxv1.Method]():
		return makeSlab[irxv1.Method]
	case reflect.TypeFor[irxv1.Vulnerability]():
		return makeSlab[irxv1.Vulnerability]
	case reflect.TypeFor[irxv1.Counter]():
		return makeSlab[irxv1.Counter]
	case reflect.TypeFor[irxv1.NamedDescription]():
		return makeSlab[irxv1.NamedDescription]
	case reflect.TypeFor[irxv1.Assessment]():
		return makeSlab[irxv1.Assessment]
	case reflect.TypeFor[irxv1.SystemImpact]():
		return makeSlab[irxv1.SystemImpact]
	case reflect.TypeFor[irxv1.BusinessImpact]():
		return makeSlab[irxv1.BusinessImpact]
	case reflect.TypeFor[irxv1.MonetaryImpact]():
		return makeSlab[irxv1.MonetaryImpact]
	case reflect.TypeFor[irxv1.Discovery]():
		return makeSlab[irxv1.Discovery]
	case reflect.TypeFor[irxv1.Compromise]():
		return makeSlab[irxv1.Compromise]
	case reflect.TypeFor[irxv1.SiteSecurity]():
		return makeSlab[irxv1.SiteSecurity]
	case reflect.TypeFor[irxv1.SecurityTool]():
		return makeSlab[irxv1.SecurityTool]
	case reflect.TypeFor[irxv1.LogExcerpt]():
		return makeSlab[irxv1.LogExcerpt]
	case reflect.TypeFor[irxv1.Evidence]():
		return makeSlab[irxv1.Evidence]
	case reflect.TypeFor[irxv1.HistoryItem]():
		return makeSlab[irxv1.HistoryItem]
	case reflect.TypeFor[irxv1.RelatedActivity]():
		return makeSlab[irxv1.RelatedActivity]
	case reflect.TypeFor[irxv1.DisclosureConsent]():
		return makeSlab[irxv1.DisclosureConsent]
	case reflect.TypeFor[irxv1.ConsentScope]():
		return makeSlab[irxv1.ConsentScope]
	case reflect.TypeFor[irxv1.Provenance]():
		return makeSlab[irxv1.Provenance]
	case reflect.TypeFor[irxv1.ReshareTerms]():
		return makeSlab[irxv1.ReshareTerms]
	case reflect.TypeFor[irxv1.Expectation]():
		return makeSlab[irxv1.Expectation]
	case reflect.TypeFor[irxv1.IodefExtra]():
		return makeSlab[irxv1.IodefExtra]
	case reflect.TypeFor[irxv1.IndicatorId]():
		return makeSlab[irxv1.IndicatorId]
	case reflect.TypeFor[irxv1.RegistryHandle]():
		return makeSlab[irxv1.RegistryHandle]
	}
	slice := reflect.SliceOf(t)
	return func(n int) unsafe.Pointer { return reflect.MakeSlice(slice, n, n).UnsafePointer() }
}

func makeSlab[T any](n int) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(make([]T, n))) }

// unknownFieldsOffset finds the generated unknownFields field (a []byte).
func unknownFieldsOffset(t reflect.Type) (uintptr, bool) {
	sf, ok := t.FieldByName("unknownFields")
	if !ok || len(sf.Index) != 1 || sf.Type.Kind() != reflect.Slice || sf.Type.Elem().Kind() != reflect.Uint8 {
		return 0, false
	}
	return sf.Offset, true
}

// checkGoType verifies that the generated Go field has the layout the
// walker reads and writes through its offset. The walker accesses fields by
// offset (as protobuf-go's own fast path does); this check is what makes
// that sound, and it fails Compile on anything unexpected.
func checkGoType(fd protoreflect.FieldDescriptor, t reflect.Type) error {
	want := func(ok bool) error {
		if ok {
			return nil
		}
		return fmt.Errorf("policy: %s: unexpected Go type %v for a %v field", fd.FullName(), t, fd.Kind())
	}
	if fd.IsList() {
		if t.Kind() != reflect.Slice {
			return want(false)
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			return want(t.Elem().Kind() == reflect.String)
		case protoreflect.MessageKind:
			return want(t.Elem().Kind() == reflect.Pointer && t.Elem().Elem().Kind() == reflect.Struct)
		}
		return fmt.Errorf("policy: %s: repeated %v fields are not supported by the disclosure engine", fd.FullName(), fd.Kind())
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return want(t.Kind() == reflect.String)
	case protoreflect.BoolKind:
		return want(t.Kind() == reflect.Bool)
	case protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return want(t.Kind() == reflect.Int32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return want(t.Kind() == reflect.Int64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return want(t.Kind() == reflect.Uint32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return want(t.Kind() == reflect.Uint64)
	case protoreflect.MessageKind:
		return want(t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct)
	}
	return fmt.Errorf("policy: %s: %v fields are not supported by the disclosure engine", fd.FullName(), fd.Kind())
}

// identity reports whether action gives every value of kind back
// unchanged. (Codes are kept only when they are codes: not identity.)
func identity(kind leafKind, action irxv1.DisclosureAction) bool {
	switch action {
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD:
		return true
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE:
		return kind == kindScalar || kind == kindMagnitude || kind == kindTime || kind == kindMessage
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE:
		return kind == kindScalar || kind == kindMessage
	}
	return false
}

// structFields maps proto field names to Go struct field indices, from the
// generated protobuf struct tags.
func structFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("protobuf")
		for _, part := range strings.Split(tag, ",") {
			if name, ok := strings.CutPrefix(part, "name="); ok {
				out[name] = i
			}
		}
	}
	return out
}

func classIndex(c irxv1.InfoClass) int {
	if c < 0 || int(c) >= numClasses {
		return 0
	}
	return int(c)
}
