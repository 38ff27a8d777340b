package iodef

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// The values of elements: times, numbers, addresses, read as irx keeps
// them or refused with a message that names the element.

func (m *mapper) timestamp(n *element) *timestamppb.Timestamp {
	s := n.textValue()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		m.errf(n, "", "%q is not a date and time with a time zone (RFC 3339, e.g. 2026-03-01T12:00:00Z)", s)
		return nil
	}
	ts := timestamppb.New(t)
	if err := ts.CheckValid(); err != nil {
		m.errf(n, "", "%q is out of range (years 1 to 9999)", s)
		return nil
	}
	return ts
}

// confidence converts an IODEF Confidence to irx's 0 to 100. The ratings
// low, medium and high take the values of the STIX 2.1 "None/Low/Med/High"
// scale (15, 50, 85); a numeric value from 0 to 1 is a fraction, above 1 a
// percentage.
func (m *mapper) confidence(n *element) (uint32, bool) {
	rating, raw, ok := enumAttr(m, n, "rating", confidenceRatingEnum)
	switch {
	case raw == "":
		rating = "numeric" // the rating is required; a number says which
	case !ok:
		n.used = false // ext-value, or not IODEF (an error already)
		return 0, false
	}
	n.used = true
	switch rating {
	case "low":
		return 15, true
	case "medium":
		return 50, true
	case "high":
		return 85, true
	case "unknown":
		return 0, false
	}
	s := n.textValue()
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(f):
		m.errf(n, "", "%q is not a number", s)
		return 0, false
	case f < 0 || f > 100:
		m.errf(n, "", "%s is outside 0 to 1 (a fraction) and 0 to 100 (a percentage)", s)
		return 0, false
	case f <= 1:
		f *= 100
	}
	return uint32(math.Round(f)), true
}

func (m *mapper) uintText(n *element, what string, max uint64) (uint64, bool) {
	s := n.textValue()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		m.errf(n, "", "%q is not a %s (0 to %d)", s, what, max)
		return 0, false
	}
	return v, true
}

func parseASN(s string) (uint32, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// ipValue checks s against an address category: "ipv4-addr" wants an IPv4
// address, "ipv4-net" an IPv4 CIDR prefix, and likewise for IPv6; "" takes
// either. It returns the value as irx stores it and whether it is IPv4.
func ipValue(category, s string) (string, bool, error) {
	var (
		addr     netip.Addr
		isPrefix bool
	)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		addr = a
	} else if p, err := netip.ParsePrefix(s); err == nil {
		addr, isPrefix = p.Addr(), true
	} else {
		return "", false, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	v4 := addr.Is4()
	v6 := addr.Is6() && !addr.Is4In6()
	switch category {
	case "ipv4-addr":
		if !v4 || isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv4 address", s)
		}
	case "ipv4-net":
		if !v4 || !isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv4 CIDR prefix", s)
		}
	case "ipv6-addr":
		if !v6 || isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv6 address", s)
		}
	case "ipv6-net":
		if !v6 || !isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv6 CIDR prefix", s)
		}
	default:
		if !v4 && !v6 {
			return "", false, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 address", s)
		}
	}
	return s, v4, nil
}
