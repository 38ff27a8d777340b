package pki

import (
	"net"
	"net/netip"
)

// IsLoopback reports whether addr ("host:port") is on the loopback
// interface: the only place irx speaks plaintext (the operator API in
// development mode), since nothing but the machine itself can reach it.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
