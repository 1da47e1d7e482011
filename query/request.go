package query

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ethereum/go-ethereum/common"
	"github.com/labstack/echo/v4"
)

// The state of one request, in one place. observe wraps every request's
// echo.Context in a pooled *request before anything else sees it; the
// guard and the handlers record on it what observe then counts and logs
// (how the caller was authenticated, the snapshot reads), and the lookup
// borrows its memory for the cache key. Nothing of it outlives the request:
// observe clears it and puts it back in the pool when the request ends.

// request is the per-request state the guard and the handlers leave for
// observe: how the caller was authenticated and how many snapshot reads the
// answer cost. It travels as the echo.Context itself (pooled), not in
// echo's per-request map.
type request struct {
	echo.Context
	auth  authResult
	reads int
	key   common.Address // backs the cache key of this request's lookup
	// charged is the quota the guard charged the request to, and demand
	// the signed client's count of requests (share.go; nil: anonymous):
	// a JSON-RPC batch spends one request of each per call.
	charged quota
	demand  *atomic.Int64
	ip      string // RealIP's, once asked
}

// RealIP is the client's address as echo extracts it, worked out once a
// request: the guard and the access log both ask.
func (r *request) RealIP() string {
	if r.ip == "" {
		r.ip = r.Context.RealIP()
	}
	return r.ip
}

var requests = sync.Pool{New: func() any { return new(request) }}

// requestOf is c's request state: c itself behind observe; a fresh one,
// which nothing reads after, for a handler called without it (tests).
func requestOf(c echo.Context) *request {
	if r, ok := c.(*request); ok {
		return r
	}
	return &request{Context: c}
}

// burst is the most requests the caller's quota grants at once (0: the
// request was charged to none).
func (r *request) burst() int {
	if r.charged.limiter == nil {
		return 0
	}
	return r.charged.limiter.Burst()
}

// spend charges n more requests to the caller's quota, all or none (n ≤ 0:
// nothing).
func (r *request) spend(now time.Time, n int, h http.Header) *Error {
	if n <= 0 || r.charged.limiter == nil {
		return nil
	}
	if r.demand != nil {
		r.demand.Add(int64(n))
	}
	return r.charged.takeN(now, n, h)
}

// cacheKey is a's bytes as a string without an allocation: it lives in the
// pooled request state and is only read during this request (the cache
// hashes it and keeps nothing of it).
func (r *request) cacheKey(a common.Address) string {
	r.key = a
	return unsafe.String(&r.key[0], len(r.key))
}
