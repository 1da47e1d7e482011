package query

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"sync"
	"time"
)

// nonceCache remembers accepted (client, nonce) pairs for as long as a
// replay could pass the timestamp check: a request signed at ts is fresh
// until ts+window, so its pair may be forgotten from the first second after
// that. Pairs are kept as seeded 64-bit hashes (an honest request is
// mistaken for a replay with probability pairs/2^64) in one set, with a ring
// of per-second lists saying what expires when. Each request deletes a few
// expired pairs (forgetPerAdd): deleting a second's worth at once took 5 ms
// at 35k signed requests/s, with every signed request waiting behind the
// lock. Memory is bounded by max pairs (~46 bytes each,
// BenchmarkNonceCacheBytesPerPair): when full, every expired pair is deleted
// at once, and if that makes no room, new requests are refused
// (overloaded) rather than remembered badly. With
// clocks in sync a pair is held about one window, so the default 2Mi pairs
// keep up with ~70k signed requests/s under the default 30 s window.
type nonceCache struct {
	mu      sync.Mutex
	seed    maphash.Seed
	window  int64 // seconds
	max     int
	seen    map[uint64]struct{}
	expires [][]uint64 // by expiry second modulo its length
	swept   int64      // every pair expiring before this second is out of expires
	expired [][]uint64 // lists taken out of expires whose pairs are not all deleted yet
}

// forgetPerAdd is how many expired pairs a request deletes: in steady
// state about one expires per request, so a backlog left by a burst drains.
const forgetPerAdd = 4

// DefaultMaxNonces bounds the replay cache.
const DefaultMaxNonces = 2 << 20

func newNonceCache(window time.Duration, max int) *nonceCache {
	if max == 0 {
		max = DefaultMaxNonces
	}
	w := int64((window + time.Second - 1) / time.Second)
	// Expiry seconds of fresh requests lie within [now, now+2·window].
	return &nonceCache{seed: maphash.MakeSeed(), window: w, max: max, seen: map[uint64]struct{}{}, expires: make([][]uint64, 2*w+2)}
}

// nonceShare is one client's share of the replay cache: the pairs it may
// hold, and how many it holds by expiry second (a ring as long as the
// cache's). Its pairs expire on the cache's schedule; the share only counts
// them, under the cache's lock.
type nonceShare struct {
	max   int
	secs  []int64 // the expiry second each slot counts
	count []int
}

// newShare sizes a client's share from its quota: within it, the client is
// accepted at most burst + rate × t requests in t seconds, and a pair is
// held until its timestamp leaves the window — at most 2 × window after it
// is accepted (a timestamp up to a window ahead) plus the second it is
// dropped in. A client within its quota never fills its share.
func (n *nonceCache) newShare(perSecond float64, burst int) *nonceShare {
	need := int(math.Ceil(perSecond*float64(2*n.window+1))) + burst
	return &nonceShare{max: need, secs: make([]int64, len(n.expires)), count: make([]int, len(n.expires))}
}

// held counts the client's pairs still in the window at second now.
func (s *nonceShare) held(now int64) int {
	total := 0
	for i, sec := range s.secs {
		if sec >= now {
			total += s.count[i]
		}
	}
	return total
}

func (s *nonceShare) add(expiry int64) {
	i := expiry % int64(len(s.secs))
	if s.secs[i] != expiry {
		s.secs[i], s.count[i] = expiry, 0
	}
	s.count[i]++
}

// nextExpiry is the first second after now at which one of the client's
// pairs leaves (now + 1 if it holds none).
func (s *nonceShare) nextExpiry(now int64) int64 {
	next := int64(math.MaxInt64)
	for i, sec := range s.secs {
		if sec >= now && s.count[i] > 0 {
			next = min(next, sec+1)
		}
	}
	if next == math.MaxInt64 {
		return now + 1
	}
	return next
}

// add records (clientID, nonce) of a request signed at ts, which the caller
// found within the window of now; false if the pair was there already. A
// client at its share is refused (429, until its first pair expires);
// share nil counts nothing (tests of the cache alone).
func (n *nonceCache) add(clientID, nonce string, ts int64, now time.Time, share *nonceShare) (bool, error) {
	var h maphash.Hash
	h.SetSeed(n.seed)
	h.WriteString(clientID)
	h.WriteByte(0)
	h.WriteString(nonce)
	key := h.Sum64()

	n.mu.Lock()
	defer n.mu.Unlock()
	n.detachExpired(now.Unix())
	n.forget(forgetPerAdd)
	if len(n.seen) >= n.max {
		n.forget(len(n.seen)) // full: make room before deciding
	}
	shareFull := share != nil && share.held(now.Unix()) >= share.max
	if len(n.seen) >= n.max || shareFull {
		if _, ok := n.seen[key]; ok {
			return false, nil
		}
		if shareFull {
			return false, nonceShareFull(share.nextExpiry(now.Unix()) - now.Unix())
		}
		return false, nonceCacheFull(n.nextExpiry(now.Unix()) - now.Unix())
	}
	before := len(n.seen)
	n.seen[key] = struct{}{} // one hash lookup: the length says whether it was there
	if len(n.seen) == before {
		return false, nil
	}
	expiry := ts + n.window
	slot := &n.expires[expiry%int64(len(n.expires))]
	*slot = append(*slot, key)
	if share != nil {
		share.add(expiry)
	}
	return true, nil
}

// nonceShareFull refuses a client holding its whole share of the replay
// cache, until its first pair expires.
func nonceShareFull(wait int64) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: int(max(1, wait)),
		Message: fmt.Sprintf("this client's recent nonces fill its share of the replay cache; retry after %d s", max(1, wait))}
}

// nonceCacheFull refuses a request when the cache is full (the clients'
// shares fit in it, so only an anonymous-free deployment whose clients
// changed rates under load gets here), until its first pair expires.
func nonceCacheFull(wait int64) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded", RetryAfter: int(max(1, wait)),
		Message: fmt.Sprintf("too many recent requests to remember their nonces; retry after %d s", max(1, wait))}
}

// nextExpiry is the first second after now at which a held pair leaves.
func (n *nonceCache) nextExpiry(now int64) int64 {
	for sec := now; sec < now+int64(len(n.expires)); sec++ {
		if len(n.expires[sec%int64(len(n.expires))]) > 0 {
			return sec + 1
		}
	}
	return now + 1
}

// detachExpired moves the lists of the pairs that expired before second now
// from the ring to n.expired. Every add does it before it inserts, so a
// list never holds a pair of a later turn of the ring.
func (n *nonceCache) detachExpired(now int64) {
	first := n.swept
	if now-first > int64(len(n.expires)) { // idle for longer than the ring: every list expired
		first = now - int64(len(n.expires))
	}
	for sec := first; sec < now; sec++ {
		slot := &n.expires[sec%int64(len(n.expires))]
		if len(*slot) > 0 {
			n.expired = append(n.expired, *slot)
			*slot = nil
		}
	}
	n.swept = max(n.swept, now)
}

// forget deletes up to limit expired pairs. A pair is only ever deleted
// from the list it was inserted with, and cannot be inserted again before
// that, so a late delete never forgets a fresh pair.
func (n *nonceCache) forget(limit int) {
	for limit > 0 && len(n.expired) > 0 {
		last := len(n.expired) - 1
		list := n.expired[last]
		k := min(limit, len(list))
		for _, key := range list[len(list)-k:] {
			delete(n.seen, key)
		}
		limit -= k
		if k == len(list) {
			n.expired[last] = nil
			n.expired = n.expired[:last]
		} else {
			n.expired[last] = list[:len(list)-k]
		}
	}
}

func (n *nonceCache) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.seen)
}
