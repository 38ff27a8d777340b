package pki

import "testing"

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7400": true, "127.9.9.9:1": true, "[::1]:7400": true, "localhost:7400": true,
		"0.0.0.0:7400": false, "192.0.2.1:7400": false, "[::]:7400": false, "irx1.example:7400": false,
		"127.0.0.1": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
