package iodef

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The indicators of an incident: the Observables of its IndicatorData.

// indicator maps an Indicator: every value its Observable holds becomes an
// irx indicator with the Indicator's description, times and confidence.
func (m *mapper) indicator(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	var values []indicatorValue
	if obs := m.child(n, "Observable"); obs != nil {
		r, _ = m.restriction(obs, r)
		values = m.observable(obs, r)
		if len(values) == 0 {
			obs.used = false
		}
	}
	if len(values) == 0 {
		n.used = false
		return
	}
	base := &irxv1.Indicator{Restriction: m.part(r)}
	if id := m.child(n, "IndicatorID"); id != nil {
		name, _ := id.attr("name")
		version, _ := id.attr("version")
		base.IodefId = &irxv1.IndicatorId{Id: id.textValue(), Name: name, Version: version}
	}
	base.Description = m.firstText(n, "Description")
	if k := m.child(n, "StartTime"); k != nil {
		base.FirstSeenTime = m.timestamp(k)
	}
	if k := m.child(n, "EndTime"); k != nil {
		base.LastSeenTime = m.timestamp(k)
	}
	if k := m.child(n, "Confidence"); k != nil {
		base.Confidence, _ = m.confidence(k)
	}
	for i, v := range values {
		ind := proto.Clone(base).(*irxv1.Indicator)
		ind.Kind, ind.Value, ind.Restriction = v.kind, v.value, m.part(v.restriction)
		if id := ind.GetIodefId(); id != nil && i > 0 {
			// irx keeps one value per indicator: the further ones get
			// ids of their own, derived from the sender's, so that an
			// export has one IndicatorID per Indicator.
			id.Id = fmt.Sprintf("%s-%d", id.GetId(), i+1)
		}
		m.inc.Indicators = append(m.inc.Indicators, ind)
	}
}

type indicatorValue struct {
	kind        irxv1.IndicatorKind
	value       string
	restriction irxv1.Restriction
}

// observable returns the values of an Observable (restricted to r) that
// irx has an indicator kind for.
func (m *mapper) observable(n *element, r irxv1.Restriction) []indicatorValue {
	var out []indicatorValue
	add := func(k irxv1.IndicatorKind, v string) { out = append(out, indicatorValue{k, v, r}) }
	for _, a := range m.children(n, "Address") {
		if v, ok := m.addressIndicator(a); ok {
			add(v.kind, v.value)
		}
	}
	domain := func(dd *element) {
		name := m.firstText(dd, "Name")
		if name == "" {
			dd.used = false
			return
		}
		if v, ok := m.checkIndicatorValue(dd, irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, name); ok {
			add(irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, v)
		}
	}
	for _, dd := range m.children(n, "DomainData") {
		domain(dd)
	}
	for _, sys := range m.children(n, "System") {
		before := len(out)
		if node := m.child(sys, "Node"); node != nil {
			for _, a := range m.children(node, "Address") {
				if v, ok := m.addressIndicator(a); ok {
					add(v.kind, v.value)
				}
			}
			for _, dd := range m.children(node, "DomainData") {
				domain(dd)
			}
		}
		if len(out) == before {
			sys.used = false
		}
	}
	for _, ed := range m.children(n, "EmailData") {
		if from := m.firstText(ed, "EmailFrom"); from != "" {
			add(irxv1.IndicatorKind_INDICATOR_KIND_EMAIL, from)
		} else {
			ed.used = false
		}
	}
	for _, fd := range m.children(n, "FileData") {
		before := len(out)
		fr, _ := m.restriction(fd, r)
		add := func(k irxv1.IndicatorKind, v string) { out = append(out, indicatorValue{k, v, fr}) }
		for _, f := range m.children(fd, "File") {
			start := len(out)
			if name := m.firstText(f, "FileName"); name != "" {
				add(irxv1.IndicatorKind_INDICATOR_KIND_FILE_NAME, name)
			}
			for _, hd := range m.children(f, "HashData") {
				if _, _, ok := enumAttr(m, hd, "scope", hashScopeEnum); !ok {
					hd.used = false
					continue
				}
				for _, h := range m.children(hd, "Hash") {
					if v, ok := m.hash(h); ok {
						add(irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, v)
					}
				}
			}
			if len(out) == start {
				f.used = false
			}
		}
		if len(out) == before {
			fd.used = false
		}
	}
	for _, b := range m.children(n, "BulkObservable") {
		kind, raw, ok := enumAttr(m, b, "type", bulkObservableTypeEnum)
		if ext := b.findAttr("ext-type"); !ok && raw == "ext-value" && ext != nil && strings.TrimSpace(ext.value) == otherIndicatorType {
			ext.used, b.findAttr("type").used = true, true
			kind, ok = irxv1.IndicatorKind_INDICATOR_KIND_OTHER, true
		}
		if !ok && raw == "ext-value" {
			// RFC 7970 section 7.2 lists C2 domains as ext-type "fqdn".
			if ext := b.findAttr("ext-type"); ext != nil && slices.Contains([]string{"fqdn", "domain"}, strings.ToLower(strings.TrimSpace(ext.value))) {
				ext.used, b.findAttr("type").used = true, true
				kind, ok = irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, true
			}
		}
		list := m.child(b, "BulkObservableList")
		if !ok || list == nil {
			b.used = false
			continue
		}
		for _, v := range strings.Fields(list.textValue()) {
			if val, ok := m.checkIndicatorValue(list, kind, v); ok {
				add(kind, val)
			}
		}
	}
	return out
}

func (m *mapper) addressIndicator(a *element) (indicatorValue, bool) {
	cat := m.addressCategory(a)
	v := a.textValue()
	var kind irxv1.IndicatorKind
	switch cat {
	case "", "ipv4-addr", "ipv4-net", "ipv6-addr", "ipv6-net":
		ip, v4, err := ipValue(cat, v)
		if err != nil {
			m.errf(a, "", "%v", err)
			return indicatorValue{}, false
		}
		kind = irxv1.IndicatorKind_INDICATOR_KIND_IPV6
		if v4 {
			kind = irxv1.IndicatorKind_INDICATOR_KIND_IPV4
		}
		return indicatorValue{kind: kind, value: ip}, true
	case "site-uri":
		kind = irxv1.IndicatorKind_INDICATOR_KIND_URL
	case "e-mail":
		kind = irxv1.IndicatorKind_INDICATOR_KIND_EMAIL
	case "asn":
		kind = irxv1.IndicatorKind_INDICATOR_KIND_ASN
	default:
		a.used = false
		return indicatorValue{}, false
	}
	val, ok := m.checkIndicatorValue(a, kind, v)
	return indicatorValue{kind: kind, value: val}, ok
}

// checkIndicatorValue checks v as irx checks an indicator of kind.
func (m *mapper) checkIndicatorValue(n *element, kind irxv1.IndicatorKind, v string) (string, bool) {
	var err error
	switch kind {
	case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
		want4 := kind == irxv1.IndicatorKind_INDICATOR_KIND_IPV4
		var v4 bool
		if v, v4, err = ipValue("", v); err == nil && v4 != want4 {
			family := "IPv6"
			if want4 {
				family = "IPv4"
			}
			err = fmt.Errorf("%q is not an %s address or prefix", v, family)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_ASN:
		if _, ok := parseASN(v); !ok {
			err = fmt.Errorf("%q is not an autonomous system number", v)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
		if _, herr := hex.DecodeString(v); herr != nil || v == "" {
			err = fmt.Errorf("%q is not a hex digest", v)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
		if !record.ValidHostName(v) {
			err = fmt.Errorf("%q is not a domain name (letters, digits and hyphens in dot-separated labels)", v)
		}
	}
	if err == nil && strings.TrimSpace(v) == "" {
		err = errors.New("is empty")
	}
	if err != nil {
		m.errf(n, "", "%v", err)
		return "", false
	}
	return v, true
}

// hash reads an XML Signature digest (base64) as the hex irx keeps.
func (m *mapper) hash(n *element) (string, bool) {
	if dm := m.childrenNS(n, xmldsigNS, "DigestMethod"); len(dm) > 0 {
		dm[0].attr("Algorithm")
	}
	dv := m.childrenNS(n, xmldsigNS, "DigestValue")
	if len(dv) == 0 {
		n.used = false
		return "", false
	}
	s := dv[0].textValue()
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil || len(raw) == 0 {
		m.errf(dv[0], "", "%q is not a base64 digest", s)
		return "", false
	}
	return hex.EncodeToString(raw), true
}
