package query

import (
	"sync"
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
}

var requests = sync.Pool{New: func() any { return new(request) }}

func setAuth(c echo.Context, res authResult) {
	if r, ok := c.(*request); ok {
		r.auth = res
	}
}

func countReads(c echo.Context, n int) {
	if r, ok := c.(*request); ok {
		r.reads += n
	}
}

// cacheKey is a's bytes as a string without an allocation: it lives in the
// pooled per-request state and is only read during this request.
func cacheKey(c echo.Context, a common.Address) string {
	r, ok := c.(*request)
	if !ok {
		return string(a[:])
	}
	r.key = a
	return unsafe.String(&r.key[0], len(r.key))
}
