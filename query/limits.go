package query

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// limiterTable holds one token bucket per key (a client IP), at most size of
// them: an attacker rotating keys evicts the least recently used buckets
// instead of growing memory. A key evicted and seen again starts with a full
// bucket; the global in-flight cap bounds what that can buy.
type limiterTable struct {
	name  string
	rate  rate.Limit
	burst int
	lru   *lru.Cache[string, *rate.Limiter]
}

func newLimiterTable(name string, perSecond float64, burst, size int) *limiterTable {
	c, err := lru.New[string, *rate.Limiter](size)
	if err != nil {
		panic(err) // size is a positive constant of ours
	}
	return &limiterTable{name: name, rate: rate.Limit(perSecond), burst: burst, lru: c}
}

func (t *limiterTable) get(key string) *rate.Limiter {
	if l, ok := t.lru.Get(key); ok {
		return l
	}
	l := rate.NewLimiter(t.rate, t.burst)
	if prev, ok, _ := t.lru.PeekOrAdd(key, l); ok {
		return prev
	}
	return l
}

// exhausted reports whether key's bucket exists and has no whole token,
// without creating one: a key never charged has its whole burst.
func (t *limiterTable) exhausted(key string, now time.Time) bool {
	l, ok := t.lru.Peek(key)
	return ok && l.TokensAt(now) < 1
}

// quota is one bucket a request is charged to, with its name for headers.
type quota struct {
	name    string
	limiter *rate.Limiter
}

// take charges one token at now. When the bucket is empty it returns the
// 429 to answer, with Retry-After and the RateLimit fields set on h (API.md
// asks for them on 429 and 503; a 200 stays lean).
func (q quota) take(now time.Time, h http.Header) *Error { return q.takeN(now, 1, h) }

// takeN charges n tokens at once (a JSON-RPC batch's calls), all or none.
func (q quota) takeN(now time.Time, n int, h http.Header) *Error {
	r := q.limiter.ReserveN(now, n)
	if !r.OK() {
		return q.refuse(math.MaxInt32, h, now)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return q.refuse(d, h, now)
	}
	return nil
}

func (q quota) refuse(wait time.Duration, h http.Header, now time.Time) *Error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	setRateLimitFields(h, q.name, q.limiter, now)
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: fmt.Sprintf("over the %s quota; retry after %d s", q.name, secs), RetryAfter: secs}
}

// setRateLimitFields writes the IETF RateLimit-Policy and RateLimit fields:
// the quota is the bucket (q = burst, w = seconds to refill it), r the whole
// tokens left, t the seconds until the next one.
func setRateLimitFields(h http.Header, name string, l *rate.Limiter, now time.Time) {
	burst, perSecond := l.Burst(), float64(l.Limit())
	window := 1
	if perSecond > 0 {
		window = max(1, int(math.Ceil(float64(burst)/perSecond)))
	}
	tokens := l.TokensAt(now)
	remaining := max(0, int(tokens))
	reset := 0
	if tokens < 1 && perSecond > 0 {
		reset = max(1, int(math.Ceil((1-tokens)/perSecond)))
	}
	h.Set("RateLimit-Policy", `"`+name+`";q=`+strconv.Itoa(burst)+`;w=`+strconv.Itoa(window))
	h.Set("RateLimit", `"`+name+`";r=`+strconv.Itoa(remaining)+`;t=`+strconv.Itoa(reset))
}

// inFlight caps the requests being served at once — in all, per signed
// client and per anonymous caller's IP — so that one caller cannot take
// every slot: past a cap, 503 overloaded instead of queueing without
// bound. A slot is taken only once the caller is authenticated.
type inFlight struct {
	n                atomic.Int64
	max              int64
	perIP, perClient int64
	seed             maphash.Seed
	byIP             [inFlightIPSlots]atomic.Int64 // anonymous callers' counts, by a hash of their IP
}

// inFlightIPSlots: anonymous IPs share these counters by hash; two IPs
// that collide share a share, which the cap's headroom absorbs.
const inFlightIPSlots = 4096

func newInFlight(total, perIP, perClient int) *inFlight {
	if total == 0 {
		total = DefaultMaxInFlight
	}
	if perIP == 0 {
		perIP = max(1, total/8)
	}
	if perClient == 0 {
		perClient = max(1, total/2)
	}
	return &inFlight{max: int64(total), perIP: int64(perIP), perClient: int64(perClient), seed: maphash.MakeSeed()}
}

// ofIP is the counter of an anonymous caller's IP.
func (f *inFlight) ofIP(ip string) *atomic.Int64 {
	return &f.byIP[maphash.String(f.seed, ip)%inFlightIPSlots]
}

// enter takes a slot, within the total and the caller's share (own counts
// the caller's requests in flight).
func (f *inFlight) enter(own *atomic.Int64, share int64) bool {
	if f.n.Add(1) > f.max {
		f.n.Add(-1)
		return false
	}
	if own.Add(1) > share {
		own.Add(-1)
		f.n.Add(-1)
		return false
	}
	return true
}

func (f *inFlight) leave(own *atomic.Int64) {
	own.Add(-1)
	f.n.Add(-1)
}
