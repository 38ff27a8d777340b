package record

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in     string
		want   ID
		wantOK bool
	}{
		{in: "cert-a:1", want: ID{Team: "cert-a", Ticket: 1}, wantOK: true},
		{in: "cert.example.org:42", want: ID{Team: "cert.example.org", Ticket: 42}, wantOK: true},
		{in: "a:9", want: ID{Team: "a", Ticket: 9}, wantOK: true},
		{in: "0team:7", want: ID{Team: "0team", Ticket: 7}, wantOK: true},
		{in: "cert-a:18446744073709551615", want: ID{Team: "cert-a", Ticket: 1<<64 - 1}, wantOK: true},

		// Tickets: positive decimal, one spelling only.
		{in: "cert-a:0"},
		{in: "cert-a:01"},
		{in: "cert-a:007"},
		{in: "cert-a:"},
		{in: "cert-a:+1"},
		{in: "cert-a:-1"},
		{in: "cert-a: 1"},
		{in: "cert-a:1 "},
		{in: "cert-a:1_000"},
		{in: "cert-a:0x10"},
		{in: "cert-a:1:2"},
		{in: "cert-a:one"},
		{in: "cert-a:18446744073709551616"}, // 2^64: overflow
		{in: "cert-a:99999999999999999999999"},

		// Separator.
		{in: "cert-a"},
		{in: "cert-a/1"},
		{in: ""},
		{in: ":1"},

		// Team part.
		{in: "Cert-A:1"},
		{in: "-cert:1"},
		{in: "cert-:1"},
		{in: ".cert:1"},
		{in: "cert_a:1"},
		{in: "cert a:1"},
		{in: "cert\x00a:1"},
		{in: strings.Repeat("a", MaxTeamIDLength+1) + ":1"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := ParseID(tt.in)
			if !tt.wantOK {
				if err == nil {
					t.Fatalf("ParseID(%q) = %+v, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrInvalidID) {
					t.Errorf("ParseID(%q) error %v does not wrap ErrInvalidID", tt.in, err)
				}
				if got != (ID{}) {
					t.Errorf("ParseID(%q) returned %+v with its error, want the zero ID", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("ParseID(%q).String() = %q, want the input back", tt.in, s)
			}
		})
	}
}

// TestIDRoundTrip checks, over random valid ids, that String and ParseID are
// inverse: every incident has exactly one spelling.
func TestIDRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	const inner = alnum + ".-"
	for range 2000 {
		n := 1 + r.IntN(MaxTeamIDLength)
		b := make([]byte, n)
		for i := range b {
			set := inner
			if i == 0 || i == n-1 {
				set = alnum
			}
			b[i] = set[r.IntN(len(set))]
		}
		id := ID{Team: string(b), Ticket: 1 + r.Uint64N(1<<63)}
		if r.IntN(10) == 0 {
			id.Ticket = 1<<64 - 1 - r.Uint64N(10)
		}
		got, err := ParseID(id.String())
		if err != nil {
			t.Fatalf("ParseID(%q): %v", id.String(), err)
		}
		if got != id {
			t.Fatalf("ParseID(%q) = %+v, want %+v", id.String(), got, id)
		}
		// A leading zero makes a second spelling of the same ticket: refused.
		if _, err := ParseID(id.Team + ":0" + strconv.FormatUint(id.Ticket, 10)); err == nil {
			t.Fatalf("ParseID accepted a leading zero for %v", id)
		}
	}
}

func TestValidateTeamID(t *testing.T) {
	tests := []struct {
		in     string
		wantOK bool
	}{
		{"a", true},
		{"7", true},
		{"cert-a", true},
		{"cert.example.org", true},
		{"c-e.r-t", true},
		{"a-b", true},
		{strings.Repeat("x", MaxTeamIDLength), true},

		{"", false},
		{strings.Repeat("x", MaxTeamIDLength+1), false},
		{"-", false},
		{".", false},
		{"-cert", false},
		{"cert-", false},
		{".cert", false},
		{"cert.", false},
		{"Cert", false},
		{"CERT-A", false},
		{"cert_a", false},
		{"cert a", false},
		{"cert:a", false},
		{"cert/a", false},
		{"cert\x00a", false},
		{"cërt", false},
	}
	for _, tt := range tests {
		err := ValidateTeamID(tt.in)
		if tt.wantOK && err != nil {
			t.Errorf("ValidateTeamID(%q) = %v, want nil", tt.in, err)
		}
		if !tt.wantOK && err == nil {
			t.Errorf("ValidateTeamID(%q) = nil, want an error", tt.in)
		}
	}
}
