package policy_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/irxfed/irx/policy"
)

// TestCache: a version is compiled once and its key read once, whoever
// asks; another version or peer is another entry; a key error reaches the
// caller and caches nothing.
func TestCache(t *testing.T) {
	var c policy.Cache
	reads := 0
	key := func() ([]byte, error) { reads++; return keyFor("cert-b"), nil }
	v1 := basePolicy()
	v1.Version = 1
	first, err := c.Compile("cert-b", v1, key)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Compile("cert-b", v1, key)
	if err != nil {
		t.Fatal(err)
	}
	if again != first || reads != 1 {
		t.Fatalf("second call compiled again (same: %v) or read the key again (%d reads)", again == first, reads)
	}
	v2 := basePolicy()
	v2.Version = 2
	if second, err := c.Compile("cert-b", v2, key); err != nil || second == first || second.Version() != 2 {
		t.Fatalf("version 2: %v, %v (same as v1: %v)", second, err, second == first)
	}

	boom := errors.New("no team secret")
	failing := func() ([]byte, error) { return nil, boom }
	v3 := basePolicy()
	v3.Version = 3
	if got, err := c.Compile("cert-b", v3, failing); !errors.Is(err, boom) || got != nil {
		t.Fatalf("key error: got %v, %v", got, err)
	}
	before := reads
	if got, err := c.Compile("cert-b", v3, key); err != nil || got == nil || got.Version() != 3 || reads != before+1 {
		t.Fatalf("after a key error: %v, %v, %d key reads (want one more than %d): the failure was cached", got, err, reads, before)
	}

	// Callers that miss together may each compile; every one gets version 4.
	v4 := basePolicy()
	v4.Version = 4
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := c.Compile("cert-b", v4, func() ([]byte, error) { return keyFor("cert-b"), nil }); err != nil || got == nil || got.Version() != 4 {
				t.Errorf("concurrent: %v, %v", got, err)
			}
		}()
	}
	wg.Wait()
	if got, err := c.Compile("cert-b", v4, failing); err != nil || got.Version() != 4 {
		t.Fatalf("version 4 was not cached: %v, %v", got, err)
	}
}
