package query

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/balidx/balidx/storage"
	"github.com/labstack/echo/v4"
)

// Error is an answer of API.md's error table: a status, a code and a message.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds; set on 429 and 503
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errors the handlers return. Messages never echo secrets or raw input.
var (
	errInvalidAddress   = &Error{Status: http.StatusBadRequest, Code: "invalid_address", Message: "address must be 0x followed by 40 hex digits; mixed case must be a valid EIP-55 checksum"}
	errNotIndexed       = &Error{Status: http.StatusNotFound, Code: "not_indexed", Message: "this address has never been seen and the snapshot does not cover the whole chain"}
	errNotFound         = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"}
	errMethod           = &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed on this route"}
	errTooLarge         = &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large", Message: "request body, batch or URL over its limit"}
	errUnavailable      = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "no snapshot loaded yet", RetryAfter: 5}
	errTransferEncoding = &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "Transfer-Encoding is not accepted: send a body with Content-Length"}
	errBodyNotTaken     = &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "this method takes no body"}
	errBehind           = &Error{Status: http.StatusServiceUnavailable, Code: "behind", Message: "this replica's trusted block is below min_block: retry, another replica may be ahead", RetryAfter: 1}
	errLagging          = &Error{Status: http.StatusServiceUnavailable, Code: "behind", Message: "this replica lags the stream by more than its bound (--max-lag): it is catching up", RetryAfter: 5}
	errStale            = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the trusted block is older than the operator's staleness bound", RetryAfter: 5}
)

// drainTimeout bounds what is read of an unread body after a refusal.
const drainTimeout = time.Second

// ErrNonceCacheTooSmall: the replay cache (--max-nonces) cannot hold the
// share every client of the clients file needs at its rate.
var ErrNonceCacheTooSmall = errors.New("replay cache too small for the clients' rates")

// Authentication failures, as API.md names them.
var (
	errMissingCredentials = &Error{Status: http.StatusUnauthorized, Code: "missing_credentials", Message: "sign the request: X-Client-ID, X-Timestamp, X-Nonce and X-Request-Signature are required"}
	errUnknownClient      = &Error{Status: http.StatusUnauthorized, Code: "unknown_client", Message: "no such client id"}
	errInvalidSignature   = &Error{Status: http.StatusUnauthorized, Code: "invalid_signature", Message: "the signature does not match the request"}
	errStaleRequest       = &Error{Status: http.StatusUnauthorized, Code: "stale_request", Message: "X-Timestamp is too far from the server's clock"}
	errReplayedRequest    = &Error{Status: http.StatusUnauthorized, Code: "replayed_request", Message: "this nonce was already used"}
)

// errOriginNotAllowed: a browser Origin outside the CORS allowlist.
var errOriginNotAllowed = &Error{Status: http.StatusForbidden, Code: "origin_not_allowed", Message: "this Origin is not in the CORS allowlist"}

// errBatchShape: a batch body that is not {"addresses": [...]}.
var errBatchShape = invalidRequest(`body must be {"addresses": ["0x…", …]}`)

// errOverloaded: the in-flight cap, or the caller's share of it, is full.
var errOverloaded = &Error{Status: http.StatusServiceUnavailable, Code: "overloaded", Message: "too many requests in flight", RetryAfter: 1}

func invalidRequest(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg}
}

// toAPIError maps every error a handler can meet to API.md's status and
// code; this is the only place that does. Anything unforeseen is a bug: 500.
func toAPIError(err error) *Error {
	var apiErr *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, storage.ErrNoSnapshot):
		return errUnavailable
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			return errNotFound
		case http.StatusMethodNotAllowed:
			return errMethod
		case http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong:
			return errTooLarge
		case http.StatusBadRequest:
			return invalidRequest("malformed request")
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error (a bug: it is logged)"}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers e. A refusal of the caller — its authentication,
// its quota, the load, its framing — also closes the connection: a
// throttled client does not keep an idle connection, and what follows a
// malformed request on its connection cannot be trusted.
func writeError(c echo.Context, e *Error) error {
	h := c.Response().Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	switch {
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusRequestEntityTooLarge, e.Status == http.StatusTooManyRequests,
		e.Status == http.StatusServiceUnavailable, e == errTransferEncoding, e == errBodyNotTaken:
		h.Set("Connection", "close")
		// Before it closes, net/http reads what is left of an unread body
		// (up to 256 KiB; beyond, it half-closes and lingers), so that the
		// client, still sending, reads the answer instead of a reset. A
		// body that never comes would hold the connection until the read
		// timeout: the drain gets a second.
		_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(drainTimeout))
	}
	if e.Status == http.StatusTooManyRequests && c.Path() == RPCRoute {
		// The JSON-RPC error wallet libraries retry on (viem, the Go client).
		var b rpcErrorBody
		b.Version, b.Error.Code, b.Error.Message = "2.0", rpcLimitExceeded, "limit exceeded"
		b.Error.Data.Code, b.Error.Data.Message = e.Code, e.Message
		return c.JSON(e.Status, b)
	}
	var b errorBody
	b.Error.Code, b.Error.Message = e.Code, e.Message
	return c.JSON(e.Status, b)
}

// rpcErrorBody is a JSON-RPC error answer of the whole request (id null),
// with the API's error in data.
type rpcErrorBody struct {
	Version string `json:"jsonrpc"`
	ID      *int   `json:"id"`
	Error   struct {
		Code    int       `json:"code"`
		Message string    `json:"message"`
		Data    errorData `json:"data"`
	} `json:"error"`
}

type errorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// appendEntryError renders one address's error in a batch answer.
func appendEntryError(b []byte, address string, e *Error) []byte {
	if len(address) > addressLen {
		address = address[:addressLen] + "…"
	}
	var one struct {
		Address string `json:"address"`
		errorBody
	}
	one.Address = address
	one.Error.Code, one.Error.Message = e.Code, e.Message
	j, _ := json.Marshal(one)
	return append(b, j...)
}
