package query

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/balidx/balidx/storage"
	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/ethereum/go-ethereum/common"
)

// BloomFalsePositiveRate is the Bloom filter's false-positive rate at its
// capacity: one unknown address in a million reaches the cache.
const BloomFalsePositiveRate = 1e-6

// The filter probes bloomHashes bits per address, with the bits per
// address of capacity that this takes for BloomFalsePositiveRate: half the
// probes of the optimal 20 (each a likely CPU cache miss on the query path)
// for 20% more memory — 8.75 MB for a million accounts at twice the
// capacity.
const (
	bloomHashes         = 10
	bloomBitsPerAddress = 35 // (1 - e^(-10/35))^10 = 9.0e-7
)

func newBloomFilter(capacity uint) *bloom.BloomFilter {
	return bloom.New(capacity*bloomBitsPerAddress, bloomHashes)
}

// minBloomCapacity keeps a small snapshot's filter from being rebuilt often.
const minBloomCapacity = 1 << 16

// Snapshot is the query tier's read path over the storage snapshot: a Bloom
// filter of every known address (an unknown address never reaches the cache
// or the disk), a ristretto cache of per-address answers, and the trusted
// block every answer names. It is kept current by OnApplied.
type Snapshot struct {
	store *storage.Store
	cache *ristretto.Cache[string, cached]
	view  atomic.Pointer[view]

	// mu orders cache fills against invalidation: a fill (read + Set) holds
	// it shared; OnApplied holds it exclusively while it drops changed
	// accounts, waits for the cache's buffers, and publishes the new view.
	// bloom is guarded by it too.
	mu       sync.RWMutex
	bloom    *bloom.BloomFilter
	capacity uint

	snapshotReads atomic.Uint64 // bbolt reads, for the metrics
	unknownReads  atomic.Uint64 // of those, single-address reads of an account the snapshot lacks (a Bloom false positive)
	log           *slog.Logger
}

// DefaultCacheBytes bounds the cache unless SnapshotConfig says otherwise.
const DefaultCacheBytes = 64 << 20

// SnapshotConfig configures a Snapshot.
type SnapshotConfig struct {
	Store *storage.Store
	// CacheBytes bounds the cache; default DefaultCacheBytes.
	CacheBytes int64
	Log        *slog.Logger
}

// NewSnapshot loads the Bloom filter from the store.
func NewSnapshot(cfg SnapshotConfig) (*Snapshot, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("query snapshot: no store")
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, cached]{
		NumCounters: max(cfg.CacheBytes/100, 1000), // ~10× the entries that fit
		MaxCost:     cfg.CacheBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("query cache: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Snapshot{store: cfg.Store, cache: cache, log: cfg.Log}
	m, err := cfg.Store.Meta()
	if err != nil {
		return nil, err
	}
	if err := s.rebuildBloom(m.Accounts); err != nil {
		return nil, err
	}
	if m.HasTrusted {
		withheld, full, err := s.tokenLists(m, nil, nil)
		if err != nil {
			return nil, err
		}
		s.view.Store(newView(m, withheld, full))
	}
	return s, nil
}

// rebuildBloom sizes the filter for twice the known accounts and fills it.
// Callers hold mu exclusively, or own s alone.
func (s *Snapshot) rebuildBloom(accounts uint64) error {
	capacity := max(uint(2*accounts), minBloomCapacity)
	f := newBloomFilter(capacity)
	if err := s.store.ForEachAccount(func(a common.Address) { f.Add(a[:]) }); err != nil {
		return fmt.Errorf("build bloom filter: %w", err)
	}
	s.bloom, s.capacity = f, capacity
	return nil
}

// Close releases the cache.
func (s *Snapshot) Close() { s.cache.Close() }

// OnApplied makes a commit visible to readers. Call it after every commit.
func (s *Snapshot) OnApplied(res storage.Applied) {
	if res.Blocks == 0 {
		return
	}
	prev := s.view.Load()
	withheld, full, err := s.tokenLists(res.Meta, prev, res.NewlyWithheld)
	if err != nil && prev != nil {
		// A failed read says less (fewer tokens listed), never more: the
		// store serves no withheld amount whatever the list, and the next
		// commit reads it again.
		s.log.Error("token lists not read: the previous block's are answered", "err", err)
		withheld, full = prev.withheld, prev.fullTokens
	}
	v := newView(res.Meta, withheld, full)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !res.Meta.HasTrusted {
		// A page of a seed: its accounts join the filter, and nothing is
		// answered until the seed's last page makes its block trusted.
		v = nil
	}
	if len(res.NewlyWithheld) > 0 {
		// Any cached answer may hold an amount of a token withheld now:
		// rare enough to drop them all rather than find their holders.
		s.cache.Clear()
	}
	if res.Meta.Accounts > uint64(s.capacity) {
		// Past capacity the false-positive rate climbs: resize. Rare (the
		// capacity doubles), and readers only wait for it on a cache miss.
		if err := s.rebuildBloom(res.Meta.Accounts); err != nil {
			// The old filter has every account added so far and gets the
			// new ones below: still no false negatives, only more positives.
			s.log.Error("bloom filter not resized", "accounts", res.Meta.Accounts, "err", err)
		}
	}
	for _, a := range res.Accounts {
		s.bloom.Add(a[:])
		s.cache.Del(string(a[:]))
	}
	s.cache.Wait() // no Set queued before the Del can land after it
	if v != nil {
		s.view.Store(v)
	}
}

// source says where an answer came from.
type source uint8

const (
	fromBloom    source = iota // never seen: the filter answered
	fromCache                  // a cached entry
	fromSnapshot               // read from bbolt
)

// bounds are what a view must meet to be answered at: the operator's hard
// bound on the trusted block's age (MaxStaleness; past it, 503 stale; zero:
// none), and the request's min_block (below it, 503 behind: another
// replica may be ahead).
type bounds struct {
	maxAge   time.Duration
	now      func() time.Time
	minBlock uint64
}

func (b bounds) check(v *view) error {
	switch {
	case b.maxAge > 0 && age(b.now(), v) > b.maxAge:
		return errStale
	case v.meta.Trusted.Number < b.minBlock:
		return errBehind
	}
	return nil
}

// age is how old v's trusted block is at now.
func age(now time.Time, v *view) time.Duration {
	return now.Sub(time.Unix(int64(v.meta.Trusted.Timestamp), 0))
}

// cacheItemBytes is ristretto's stored item (key hashes, value, expiry)
// and its share of the policy's bookkeeping, per entry: an entry costs its
// bytes and this.
const cacheItemBytes = 96

// cached is what the cache holds for an address: its entry and the block
// the entry was read at.
type cached struct {
	entry  entry
	readAt uint64
}

// lookup returns the answer for a, the view it is true at, and where it
// came from: errUnavailable before the first block, the error of a view
// out of bounds (errStale, errBehind). key is a's 20 bytes as a string, for the cache lookup
// only (ristretto hashes it and keeps nothing of it): the caller may lend
// memory it reuses.
//
// A cached entry is true at every block from the one it was read at to the
// published view (OnApplied drops it before publishing a block that changes
// it), so it is answered at v, the view loaded before the cache was asked.
// An entry read at a later block than v was cached after a block landed
// meanwhile: the lookup starts again at the newer view, once, and then
// reads the snapshot, whose answer names the block it read.
func (s *Snapshot) lookup(a common.Address, key string, b bounds) (e entry, v *view, src source, err error) {
	for range 2 {
		v = s.view.Load()
		if v == nil {
			return nil, nil, fromBloom, errUnavailable
		}
		if err := b.check(v); err != nil {
			return nil, nil, fromBloom, err
		}
		s.mu.RLock()
		known := s.bloom.Test(a[:])
		s.mu.RUnlock()
		if !known {
			return v.unknown, v, fromBloom, nil
		}
		c, hit := s.cache.Get(key)
		if !hit {
			break
		}
		if c.readAt <= v.meta.Trusted.Number {
			return c.entry, v, fromCache, nil
		}
	}
	e, v, err = s.fill(a)
	return e, v, fromSnapshot, err
}

// fill reads a from the store and caches it. Holding mu shared from before
// the read until after the Set means a concurrent OnApplied either sees the
// Set (and drops it if a changed) or the read sees its commit.
func (s *Snapshot) fill(a common.Address) (entry, *view, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out [1]storage.Balances
	v, published, err := s.read([]common.Address{a}, out[:])
	if err != nil {
		return nil, nil, err
	}
	if !out[0].Known {
		s.unknownReads.Add(1)
	}
	e := newEntry(a, out[0])
	if published { // else answered at the block read, and not cached
		s.cache.Set(string(a[:]), cached{entry: e, readAt: v.meta.Trusted.Number}, int64(cap(e))+cacheItemBytes)
	}
	return e, v, nil
}

// read reads accounts in one transaction, and returns the view they are
// true at: the published one, or, when the store has committed a block
// OnApplied has not published yet, a view made for this read, with the
// withheld tokens read now (a token once withheld stays so: a list read
// later is never less honest).
func (s *Snapshot) read(accounts []common.Address, out []storage.Balances) (v *view, published bool, err error) {
	m, err := s.store.Read(accounts, out)
	s.snapshotReads.Add(uint64(len(accounts)))
	if err != nil {
		return nil, false, err
	}
	if v := s.view.Load(); v != nil && v.meta.Trusted.Number == m.Trusted.Number {
		return v, true, nil
	}
	withheld, full, err := s.tokenLists(m, s.view.Load(), nil)
	if err != nil {
		return nil, false, err
	}
	return newView(m, withheld, full), false, nil
}

// current is the published view, or nil before the first block.
func (s *Snapshot) current() *view { return s.view.Load() }

// SnapshotReads counts reads that reached bbolt.
func (s *Snapshot) SnapshotReads() uint64 { return s.snapshotReads.Load() }

// UnknownReads counts single-address reads that reached bbolt for an
// account the snapshot does not hold: what unknown addresses cost past the
// Bloom filter (its false positives, ~1e-6 of them).
func (s *Snapshot) UnknownReads() uint64 { return s.unknownReads.Load() }

// amounts reads holdings in one transaction (none: nothing is read) and
// returns the view they are true at, within b.
func (s *Snapshot) amounts(holdings []storage.Holding, b bounds) (*view, []storage.Amount, error) {
	v := s.view.Load()
	if v == nil {
		return nil, nil, errUnavailable
	}
	var out []storage.Amount
	if len(holdings) > 0 {
		out = make([]storage.Amount, len(holdings))
		m, err := s.store.ReadAmounts(holdings, out)
		s.snapshotReads.Add(uint64(len(holdings)))
		if err != nil {
			return nil, nil, err
		}
		if v = s.view.Load(); v.meta.Trusted.Number != m.Trusted.Number {
			v = newView(m, nil, nil) // a block committed, not yet published: answered at the block read (its meta alone)
		}
	}
	return v, out, b.check(v)
}

// batchEntry is one address of a batch.
type batchEntry struct {
	valid    bool
	address  common.Address
	balances storage.Balances
}

type batchResult struct {
	view    *view
	entries []batchEntry
	reads   int // addresses read from bbolt
}

// batch reads every valid address of raw in one transaction. Addresses the
// Bloom filter has never seen are not read, unless the store has committed a
// block the filter does not reflect yet; then all are read.
func (s *Snapshot) batch(raw []string, b bounds) (batchResult, error) {
	res := batchResult{entries: make([]batchEntry, len(raw))}
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur := s.view.Load()
	if cur == nil {
		return res, errUnavailable
	}
	var known, all []common.Address
	var knownIdx, allIdx []int
	for i, r := range raw {
		a, _, ok := parseAddress(r)
		res.entries[i] = batchEntry{valid: ok, address: a}
		if !ok {
			continue
		}
		all, allIdx = append(all, a), append(allIdx, i)
		if s.bloom.Test(a[:]) {
			known, knownIdx = append(known, a), append(knownIdx, i)
		}
	}
	out := make([]storage.Balances, len(all))
	v, _, err := s.read(known, out[:len(known)])
	if err != nil {
		return res, err
	}
	idx := knownIdx
	res.reads = len(known)
	if v.meta.Trusted.Number != cur.meta.Trusted.Number {
		if v, _, err = s.read(all, out); err != nil {
			return res, err
		}
		idx = allIdx
		res.reads += len(all)
	}
	for j, i := range idx {
		res.entries[i].balances = out[j]
	}
	res.view = v
	if err := b.check(v); err != nil {
		return res, err
	}
	return res, nil
}
