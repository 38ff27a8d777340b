package record

import (
	"fmt"
	"net/netip"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// ValidateConstituency checks the networks of a constituency. A team's
// description states its constituency in the same form, checked by the
// same rules, so it can be copied into a policy as it is. Fields are
// relative to the constituency, e.g. "cidrs[2]".
func ValidateConstituency(c *irxv1.Constituency) []Violation {
	var fs violations
	for i, s := range c.GetCidrs() {
		f := fmt.Sprintf("cidrs[%d]", i)
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			fs.add(f, "%q is not a CIDR prefix (e.g. 192.0.2.0/24, 2001:db8::/32)", s)
		case pfx.Addr().Is4In6():
			fs.add(f, "%q is an IPv4-mapped IPv6 prefix; write the IPv4 prefix", s)
		case pfx != pfx.Masked():
			fs.add(f, "%q has host bits set; did you mean %s?", s, pfx.Masked())
		}
	}
	for i, a := range c.GetAsns() {
		if a == 0 {
			fs.add(fmt.Sprintf("asns[%d]", i), "0 is not an autonomous system number")
		}
	}
	for i, d := range c.GetDomains() {
		if err := validateDomain(d); err != nil {
			fs.add(fmt.Sprintf("domains[%d]", i), "%v", err)
		}
	}
	return fs
}

func validateDomain(d string) error {
	name := strings.TrimSuffix(d, ".")
	if name == "" {
		return fmt.Errorf("a domain is required, e.g. example.org")
	}
	if len(name) > 253 {
		return fmt.Errorf("%q is longer than 253 bytes", d)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("%q is an address; put addresses in cidrs", d)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a domain name: empty, over-long or hyphen-edged label %q", d, label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a domain name: %q in label %q", d, c, label)
			}
		}
	}
	return nil
}
