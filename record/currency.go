package record

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"strconv"
	"sync"
)

// iso4217ListOne is ISO 4217's list of current currency and funds codes as
// its Maintenance Agency publishes it (see iso4217/SOURCES). It is kept
// verbatim, not transcribed, so it can be checked against the source and
// replaced by a newer publication as it is.
//
//go:embed iso4217/list-one.xml
var iso4217ListOne []byte

// currencies maps each code of List One to its minor units (the number of
// digits after the decimal point), -1 where the list gives none ("N.A.":
// precious metals, units of account, XXX). It is parsed on first use and
// never changes afterwards.
var currencies = sync.OnceValue(func() map[string]int {
	m, err := parseISO4217(iso4217ListOne)
	if err != nil {
		// The list is compiled in and TestCurrencyList parses it: this
		// is a build that was never tested.
		panic(err)
	}
	return m
})

func parseISO4217(data []byte) (map[string]int, error) {
	var doc struct {
		Entries []struct {
			Code       string `xml:"Ccy"`
			MinorUnits string `xml:"CcyMnrUnts"`
		} `xml:"CcyTbl>CcyNtry"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("ISO 4217 list: %w", err)
	}
	out := map[string]int{}
	for _, e := range doc.Entries {
		if e.Code == "" {
			continue // a territory with no universal currency (Antarctica)
		}
		if !isUpperAlpha(e.Code, 3) {
			return nil, fmt.Errorf("ISO 4217 list: %q is not a three-letter code", e.Code)
		}
		units := -1
		if e.MinorUnits != "N.A." {
			n, err := strconv.Atoi(e.MinorUnits)
			if err != nil || n < 0 || n > 9 {
				return nil, fmt.Errorf("ISO 4217 list: %s has minor units %q", e.Code, e.MinorUnits)
			}
			units = n
		}
		out[e.Code] = units
	}
	if len(out) < 100 {
		return nil, fmt.Errorf("ISO 4217 list: only %d codes", len(out))
	}
	return out, nil
}

// ValidCurrency reports whether code is a current ISO 4217 currency or
// funds code, as the standard writes it (three upper-case letters, e.g.
// "EUR").
func ValidCurrency(code string) bool {
	_, ok := currencies()[code]
	return ok
}

// CurrencyMinorUnits returns the number of minor-unit digits of a currency
// ("EUR" 2, "JPY" 0, "BHD" 3); ok is false for a code that is not in the
// list or that the list gives no minor units for (XAU, XXX, ...).
func CurrencyMinorUnits(code string) (units int, ok bool) {
	n, known := currencies()[code]
	return n, known && n >= 0
}

func isUpperAlpha(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
