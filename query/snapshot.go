package query

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

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
	cache *ristretto.Cache[string, entry]
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

// view is the trusted block answers are given at.
type view struct {
	meta    storage.Meta
	block   *blockInfo
	unknown entry // the answer for an address never seen (Bloom negative)
	// withheld lists the tokens whose amounts are not served at this
	// block (or, in a view made for one answer, a list read later: a
	// token once withheld stays so, and more is never less honest);
	// withheldJSON is its rendering for answers of the default page.
	withheld     []storage.WithheldToken
	withheldJSON []byte
}

func (v *view) setWithheld(list []storage.WithheldToken) {
	v.withheld, v.withheldJSON = list, appendWithheld(nil, list, defaultPage)
}

// viewAt is the view for an answer read at m: the published one when it
// stands at m, else a new one with the withheld tokens read now.
func (s *Snapshot) viewAt(m storage.Meta) (*view, error) {
	if v := s.view.Load(); v != nil && v.meta.Trusted.Number == m.Trusted.Number {
		return v, nil
	}
	v := newView(m)
	if m.Withheld > 0 {
		_, list, err := s.store.Withheld()
		if err != nil {
			return nil, err
		}
		v.setWithheld(list)
	}
	return v, nil
}

func newView(m storage.Meta) *view {
	bi := newBlockInfo(m)
	return &view{meta: m, block: bi, unknown: newEntry(common.Address{}, storage.Balances{}, bi.number)}
}

// blockInfo is a trusted block with its JSON rendered once.
type blockInfo struct {
	number uint64
	json   []byte // {"number":…,"hash":"0x…","timestamp":…}
}

func newBlockInfo(m storage.Meta) *blockInfo {
	b := make([]byte, 0, 128)
	b = append(b, `{"number":`...)
	b = strconv.AppendUint(b, m.Trusted.Number, 10)
	b = append(b, `,"hash":"`...)
	b = append(b, m.Trusted.Hash.Hex()...)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendUint(b, m.Trusted.Timestamp, 10)
	b = append(b, '}')
	return &blockInfo{number: m.Trusted.Number, json: b}
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
	cache, err := ristretto.NewCache(&ristretto.Config[string, entry]{
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
		v := newView(m)
		_, list, err := cfg.Store.Withheld()
		if err != nil {
			return nil, err
		}
		v.setWithheld(list)
		s.view.Store(v)
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
	v := newView(res.Meta)
	if prev := s.view.Load(); prev != nil {
		v.withheld, v.withheldJSON = prev.withheld, prev.withheldJSON
	}
	if len(res.NewlyWithheld) > 0 {
		list := slices.Concat(v.withheld, res.NewlyWithheld)
		slices.SortFunc(list, func(x, y storage.WithheldToken) int { return bytes.Compare(x.Contract[:], y.Contract[:]) })
		v.setWithheld(list) // in contract order, as Store.Withheld lists them
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
	s.view.Store(v)
}

// source says where an answer came from.
type source uint8

const (
	fromBloom    source = iota // never seen: the filter answered
	fromCache                  // a cached entry
	fromSnapshot               // read from bbolt
)

// lookup returns the balances of a, the view they are true at, and where
// they came from; v is nil when no block has been applied yet. key is a's
// 20 bytes as a string, for the cache lookup only (ristretto hashes it and
// keeps nothing of it): the caller may lend memory it reuses.
//
// A cached entry is true at every block from the one it was read at to the
// published view (OnApplied drops it before publishing a block that changes
// it), so it is answered at v, the view loaded before the cache was asked.
// An entry read at a later block than v was cached after a block landed
// meanwhile: the lookup starts again at the newer view, once, and then
// reads the snapshot, whose answer names the block it read.
func (s *Snapshot) lookup(a common.Address, key string) (e entry, v *view, src source, err error) {
	for range 2 {
		v = s.view.Load()
		if v == nil {
			return nil, nil, fromBloom, nil
		}
		s.mu.RLock()
		known := s.bloom.Test(a[:])
		s.mu.RUnlock()
		if !known {
			return v.unknown, v, fromBloom, nil
		}
		e, hit := s.cache.Get(key)
		if !hit {
			break
		}
		if e.readAt() <= v.block.number {
			return e, v, fromCache, nil
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
	m, err := s.store.Read([]common.Address{a}, out[:])
	s.snapshotReads.Add(1)
	if err != nil {
		return nil, nil, err
	}
	if !out[0].Known {
		s.unknownReads.Add(1)
	}
	e := newEntry(a, out[0], m.Trusted.Number)
	v := s.view.Load()
	if v == nil || v.meta.Trusted.Number != m.Trusted.Number {
		// The store committed a block OnApplied has not published yet:
		// answer at the block read, and cache nothing.
		v, err := s.viewAt(m)
		return e, v, err
	}
	s.cache.Set(string(a[:]), e, e.cost())
	return e, v, nil
}

// readMany reads accounts in one consistent transaction (the batch route).
func (s *Snapshot) readMany(accounts []common.Address, out []storage.Balances) (*view, error) {
	m, err := s.store.Read(accounts, out)
	s.snapshotReads.Add(uint64(len(accounts)))
	if err != nil {
		return nil, err
	}
	return s.viewAt(m)
}

// current is the published view, or nil before the first block.
func (s *Snapshot) current() *view { return s.view.Load() }

// SnapshotReads counts reads that reached bbolt.
func (s *Snapshot) SnapshotReads() uint64 { return s.snapshotReads.Load() }

// UnknownReads counts single-address reads that reached bbolt for an
// account the snapshot does not hold: what unknown addresses cost past the
// Bloom filter (its false positives, ~1e-6 of them).
func (s *Snapshot) UnknownReads() uint64 { return s.unknownReads.Load() }

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
func (s *Snapshot) batch(raw []string) (batchResult, error) {
	res := batchResult{entries: make([]batchEntry, len(raw))}
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur := s.view.Load()
	if cur == nil {
		return res, nil
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
	v, err := s.readMany(known, out[:len(known)])
	if err != nil {
		return res, err
	}
	idx := knownIdx
	res.reads = len(known)
	if v.meta.Trusted.Number != cur.meta.Trusted.Number {
		if v, err = s.readMany(all, out); err != nil {
			return res, err
		}
		idx = allIdx
		res.reads += len(all)
	}
	for j, i := range idx {
		res.entries[i].balances = out[j]
	}
	res.view = v
	return res, nil
}
