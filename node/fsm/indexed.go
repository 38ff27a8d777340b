package fsm

import (
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// readIndexed reads, from an encoded incident, what a replica needs to
// store an evaluated create or a received view its leader checked: the
// fields its index keys are made of and the ones createEvaluated checks
// (id, version, create, generation and report times, status, TLP,
// priority, taxonomy, indicator values), what the statistics count by
// (the reporting site's sector and country too), the values correlation
// indexes (attacking hosts' names and addresses), and of the provenance
// the origin, the path and the sender, which a received view is checked
// against (receive) and correlation keys on. Everything else is stepped
// over without being decoded: decoding the whole record was most of what
// a replica spent on a create, to build a message it threw away. What is
// read here is what proto.Unmarshal would give for those fields
// (FuzzReadIndexed).
//
// It returns false for a withdrawn stub (see receive), for what the
// leader's encoder never writes (a singular field twice, a known field
// with another wire type, a field of a timestamp it does not know) and
// for malformed bytes; the caller then decodes the record whole, which
// reaches the same result or refuses it.
func readIndexed(b []byte) (*irxv1.Incident, bool) {
	inc := &irxv1.Incident{}
	var seen [wire.IncidentProvenance + 1]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if num == wire.IncidentWithdrawTime || num == wire.IncidentWithdrawReason {
			// A withdrawn stub: a received view is stored without these
			// (receive), so it is decoded whole and stamped.
			return nil, false
		}
		var known bool
		switch num {
		case wire.IncidentID, wire.IncidentVersion, wire.IncidentStatus, wire.IncidentTLP, wire.IncidentPriority, wire.IncidentTaxonomy,
			wire.IncidentReportTime, wire.IncidentGenerationTime, wire.IncidentCreateTime, wire.IncidentIndicators, wire.IncidentProvenance, wire.IncidentAttackingHosts,
			wire.IncidentReportingSite:
			known = true
			if num != wire.IncidentIndicators && num != wire.IncidentAttackingHosts {
				if seen[num] {
					return nil, false
				}
				seen[num] = true
			}
		}
		if !known {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			continue
		}
		switch num {
		case wire.IncidentVersion, wire.IncidentStatus, wire.IncidentTLP, wire.IncidentPriority:
			var v uint64
			var ok bool
			if v, b, ok = wire.VarintValue(typ, b); !ok {
				return nil, false
			}
			switch num {
			case wire.IncidentVersion:
				inc.Version = int64(v)
			case wire.IncidentStatus:
				inc.Status = irxv1.Status(int32(v))
			case wire.IncidentPriority:
				inc.Priority = irxv1.Priority(int32(v))
			default:
				inc.Tlp = irxv1.Tlp(int32(v))
			}
			continue
		}
		var v []byte
		var ok bool
		if v, b, ok = wire.BytesValue(typ, b); !ok {
			return nil, false
		}
		switch num {
		case wire.IncidentID:
			inc.Id, ok = readString(v)
		case wire.IncidentTaxonomy:
			inc.Taxonomy, ok = readTaxonomy(v)
		case wire.IncidentReportTime:
			inc.ReportTime, ok = readTimestamp(v)
		case wire.IncidentGenerationTime:
			inc.GenerationTime, ok = readTimestamp(v)
		case wire.IncidentCreateTime:
			inc.CreateTime, ok = readTimestamp(v)
		case wire.IncidentIndicators:
			var ind *irxv1.Indicator
			ind, ok = readIndicator(v)
			inc.Indicators = append(inc.Indicators, ind)
		case wire.IncidentProvenance:
			inc.Provenance, ok = readProvenance(v)
		case wire.IncidentReportingSite:
			inc.ReportingSite, ok = readReportingSite(v)
		case wire.IncidentAttackingHosts:
			var h *irxv1.Host
			h, ok = readHost(v)
			inc.AttackingHosts = append(inc.AttackingHosts, h)
		}
		if !ok {
			return nil, false
		}
	}
	return inc, true
}

func readTaxonomy(b []byte) (*irxv1.Taxonomy, bool) {
	t := &irxv1.Taxonomy{}
	ok := readStrings(b, 0, func(num protowire.Number, s string) {
		if num == wire.TaxonomyClass {
			t.Class = s
		} else {
			t.Type = s
		}
	}, wire.TaxonomyClass, wire.TaxonomyType)
	return t, ok
}

func readIndicator(b []byte) (*irxv1.Indicator, bool) {
	ind := &irxv1.Indicator{}
	ok := readStrings(b, 0, func(_ protowire.Number, s string) { ind.Value = s }, wire.IndicatorValue)
	return ind, ok
}

// readHost reads a host's name, domain and addresses (repeated).
func readHost(b []byte) (*irxv1.Host, bool) {
	h := &irxv1.Host{}
	ok := readStrings(b, wire.HostAddresses, func(num protowire.Number, s string) {
		switch num {
		case wire.HostHostname:
			h.Hostname = s
		case wire.HostDomain:
			h.Domain = s
		default:
			h.Addresses = append(h.Addresses, s)
		}
	}, wire.HostHostname, wire.HostAddresses, wire.HostDomain)
	return h, ok
}

// readReportingSite reads a reporting site's sector and country.
func readReportingSite(b []byte) (*irxv1.ReportingSite, bool) {
	r := &irxv1.ReportingSite{}
	var seen [wire.ReportingSiteCountry + 1]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if num != wire.ReportingSiteSector && num != wire.ReportingSiteCountry {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			continue
		}
		if seen[num] {
			return nil, false
		}
		seen[num] = true
		var ok bool
		if num == wire.ReportingSiteSector {
			var v uint64
			if v, b, ok = wire.VarintValue(typ, b); !ok {
				return nil, false
			}
			r.Sector = irxv1.Sector(int32(v))
			continue
		}
		var v []byte
		if v, b, ok = wire.BytesValue(typ, b); !ok {
			return nil, false
		}
		if r.Country, ok = readString(v); !ok {
			return nil, false
		}
	}
	return r, true
}

// readProvenance reads the origin team, the path (repeated) and the team
// a view was received from.
func readProvenance(b []byte) (*irxv1.Provenance, bool) {
	p := &irxv1.Provenance{}
	ok := readStrings(b, wire.ProvenancePath, func(num protowire.Number, s string) {
		switch num {
		case wire.ProvenanceOriginTeam:
			p.OriginTeam = s
		case wire.ProvenanceReceivedFrom:
			p.ReceivedFrom = s
		default:
			p.Path = append(p.Path, s)
		}
	}, wire.ProvenanceOriginTeam, wire.ProvenancePath, wire.ProvenanceReceivedFrom)
	return p, ok
}

// readStrings reads the string fields wanted of a message, handing each
// value to set in order, and steps over the others. Each may appear once,
// but repeated (0: none).
func readStrings(b []byte, repeated protowire.Number, set func(protowire.Number, string), wanted ...protowire.Number) bool {
	var seen uint64 // by position in wanted
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		i := slices.Index(wanted, num)
		if i < 0 {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b = b[n:]
			continue
		}
		if num != repeated {
			if seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
		}
		var v []byte
		var ok bool
		if v, b, ok = wire.BytesValue(typ, b); !ok {
			return false
		}
		s, ok := readString(v)
		if !ok {
			return false
		}
		set(num, s)
	}
	return true
}

// readString is a proto3 string: proto.Unmarshal refuses one that is not
// UTF-8.
func readString(v []byte) (string, bool) {
	if !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// readTimestamp reads a google.protobuf.Timestamp with nothing but its two
// fields, each at most once (sameInstant holds only for such).
func readTimestamp(b []byte) (*timestamppb.Timestamp, bool) {
	t := &timestamppb.Timestamp{}
	var seen [wire.TimestampNanos + 1]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || (num != wire.TimestampSeconds && num != wire.TimestampNanos) || seen[num] {
			return nil, false
		}
		seen[num] = true
		var v uint64
		var ok bool
		if v, b, ok = wire.VarintValue(typ, b[n:]); !ok {
			return nil, false
		}
		if num == wire.TimestampSeconds {
			t.Seconds = int64(v)
		} else {
			t.Nanos = int32(v)
		}
	}
	return t, true
}
