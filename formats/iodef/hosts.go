package iodef

import (
	"regexp"
	"strconv"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The hosts of an incident: the Systems of its EventData Flows.

// system maps a System to a victim host (category target or sensor) or an
// attacking host (source, intermediate, infrastructure).
func (m *mapper) system(n *element, inherited irxv1.Restriction) {
	cat, _, ok := enumAttr(m, n, "category", systemCategoryEnum)
	if !ok {
		// Without a category (or with an extended one) irx cannot tell a
		// victim from an attacker.
		n.used = false
		return
	}
	r, _ := m.restriction(n, inherited)
	h := &irxv1.Host{Restriction: m.part(r)}
	if a := n.findAttr("spoofed"); a != nil {
		switch v := strings.TrimSpace(a.value); v {
		case "yes", "no", "unknown":
			a.used, h.Spoofed = true, v
		}
	}
	dst := &m.inc.AttackingHosts
	switch cat {
	case "target":
	case "sensor":
		h.Category = irxv1.SystemCategory_SYSTEM_CATEGORY_SENSOR
	case "intermediate":
		h.Category = irxv1.SystemCategory_SYSTEM_CATEGORY_INTERMEDIATE
	case "infrastructure":
		h.Category = irxv1.SystemCategory_SYSTEM_CATEGORY_INFRASTRUCTURE
	}
	if cat == "target" || cat == "sensor" {
		dst = &m.inc.VictimHosts
	}
	if node := m.child(n, "Node"); node != nil {
		m.node(node, h)
	}
	for _, role := range m.children(n, "NodeRole") {
		v, raw, ok := enumAttr(m, role, "category", nodeRoleEnum)
		if ok && raw == "ext-value" {
			v, _ = role.attr("ext-category")
		}
		if ok && v != "" {
			h.Functions = append(h.Functions, v)
		} else {
			role.used = false
		}
	}
	for _, svc := range m.children(n, "Service") {
		if s := m.service(svc); s != nil {
			h.Services = append(h.Services, s)
		}
	}
	for _, os := range m.children(n, "OperatingSystem") {
		if d := m.firstText(os, "Description"); d != "" && h.Platform == "" {
			h.Platform = d
		} else {
			os.used = false
		}
	}
	m.mergeResidual(n, h)
	if h.Hostname == "" && len(h.Addresses) == 0 && h.Asn == 0 {
		// irx needs a name, an address or an ASN to know the host.
		n.used = false
		return
	}
	*dst = append(*dst, h)
}

// node maps a Node's names and addresses onto h. A name that is not a host
// name (RFC 5070's NodeName is free text) is left out and listed in the
// warning: the host is still known by its other names and addresses.
func (m *mapper) node(n *element, h *irxv1.Host) {
	if nn := m.child(n, "NodeName"); nn != nil { // RFC 5070
		if name := nn.textValue(); record.ValidHostName(name) {
			h.Hostname = name
		} else {
			nn.used, nn.why = false, "not a host name"
		}
	}
	for _, dd := range m.children(n, "DomainData") {
		name := m.firstText(dd, "Name")
		switch {
		case h.Hostname != "" || name == "":
			dd.used = false // irx keeps one name per host
		case !record.ValidHostName(name):
			dd.used, dd.why = false, "not a host name"
		default:
			h.Hostname = name
		}
	}
	for _, a := range m.children(n, "Address") {
		cat := m.addressCategory(a)
		v := a.textValue()
		switch cat {
		case "asn":
			asn, ok := parseASN(v)
			if !ok {
				m.errf(a, "", "%q is not an autonomous system number", v)
				continue
			}
			if h.Asn != 0 {
				a.used = false
				continue
			}
			h.Asn = asn
		case "", "ipv4-addr", "ipv4-net", "ipv6-addr", "ipv6-net":
			ip, _, err := ipValue(cat, v)
			if err != nil {
				m.errf(a, "", "%v", err)
				continue
			}
			h.Addresses = append(h.Addresses, ip)
		case "site-uri":
			h.Urls = append(h.Urls, v)
		case "e-mail":
			h.Emails = append(h.Emails, v)
		default:
			a.used = false // MAC, ATM, masked networks...: kept verbatim
		}
	}
	for _, k := range m.children(n, "Location") {
		if v := k.textValue(); v != "" {
			h.Locations = append(h.Locations, v)
		}
	}
	for _, k := range m.children(n, "Counter") {
		if c := m.counter(k); c != nil {
			h.Counters = append(h.Counters, c)
		}
	}
	if dt := m.child(n, "DateTime"); dt != nil { // RFC 5070
		h.NameResolvedTime = m.timestamp(dt)
	}
}

// addressCategory is the category of an Address, "" when the document
// leaves it to the default (then either IP family is taken).
func (m *mapper) addressCategory(a *element) string {
	v, raw, ok := enumAttr(m, a, "category", addressCategoryEnum)
	if raw == "" {
		return ""
	}
	if !ok {
		return "invalid"
	}
	return v
}

func (m *mapper) service(n *element) *irxv1.Service {
	s := &irxv1.Service{}
	mapped := false
	for _, attr := range []string{"ip-protocol", "ip_protocol"} { // RFC 7970, RFC 5070
		if v, ok := n.attr(attr); ok {
			p, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				m.errf(n, attr, "%q is not an IANA protocol number (0 to 255)", v)
				return nil
			}
			s.IpProtocol, mapped = uint32(p), true
		}
	}
	if p := m.child(n, "Port"); p != nil {
		if v, ok := m.uintText(p, "port", 65535); ok {
			s.Port, mapped = uint32(v), true
		}
	}
	if pl := m.child(n, "Portlist"); pl != nil {
		if v := pl.textValue(); portlistPattern.MatchString(v) {
			s.Portlist, mapped = v, true
		} else {
			pl.used = false
		}
	}
	if sn := m.child(n, "ServiceName"); sn != nil {
		if app := m.firstText(sn, "IANAService"); app != "" {
			s.Application, mapped = app, true
		} else {
			sn.used = false
		}
	}
	if !mapped {
		n.used = false
		return nil
	}
	return s
}

// portlistPattern is IODEF's PortlistType.
var portlistPattern = regexp.MustCompile(`^\d+(-\d+)?(,\d+(-\d+)?)*$`)

// timezonePattern is IODEF's TimezoneType.
var timezonePattern = regexp.MustCompile(`^(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$`)
