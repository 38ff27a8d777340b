package policy

import (
	"sync"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// maxCompiled bounds a Cache; past it the cache starts over. Teams have tens
// of peers with a few policy versions each in use, so a full cache means
// something walks old versions (an audit), not a working set to keep.
const maxCompiled = 1024

// Cache holds compiled policies by peer and version. Compiling builds the
// plan of every schema field, which is too slow to repeat on every feed
// walk, preview or audit step. Entries never go stale: a stored version
// is immutable and a peer's pseudonymisation key never changes once the
// team secret exists. The zero Cache is ready to use and safe for
// concurrent use.
//
// The key is the peer and version only, so one Cache must serve one
// team's policies: two teams in one process each need their own.
type Cache struct {
	mu       sync.Mutex
	compiled map[cacheKey]*Compiled
}

type cacheKey struct {
	peer    string
	version int64
}

// Compile returns p, the stored policy for peer, compiled: from the cache
// when that version was compiled before, else compiled with the key that
// key returns. key is called only on a miss, so a hit reads no key; its
// error is returned as it is.
func (c *Cache) Compile(peer string, p *irxv1.DisclosurePolicy, key func() ([]byte, error)) (*Compiled, error) {
	ref := cacheKey{peer, p.GetVersion()}
	c.mu.Lock()
	compiled, ok := c.compiled[ref]
	c.mu.Unlock()
	if ok {
		return compiled, nil
	}
	k, err := key()
	if err != nil {
		return nil, err
	}
	// Compiled outside the lock: two callers missing together both
	// compile, and either result serves, since both come from the same
	// immutable version.
	compiled, err = Compile(p, k)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.compiled == nil || len(c.compiled) >= maxCompiled {
		c.compiled = map[cacheKey]*Compiled{}
	}
	c.compiled[ref] = compiled
	c.mu.Unlock()
	return compiled, nil
}
