package query

import (
	"errors"
	"net/http"
	"strconv"

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
	errInvalidAddress = &Error{Status: http.StatusBadRequest, Code: "invalid_address", Message: "address must be 0x followed by 40 hex digits; mixed case must be a valid EIP-55 checksum"}
	errNotIndexed     = &Error{Status: http.StatusNotFound, Code: "not_indexed", Message: "this address has never been seen and the snapshot does not cover the whole chain"}
	errNotFound       = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"}
	errMethod         = &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed on this route"}
	errTooLarge       = &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large", Message: "request body, batch or URL over its limit"}
	errUnavailable    = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "no snapshot loaded yet", RetryAfter: 5}
	errStale          = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the trusted block is older than the operator's staleness bound", RetryAfter: 5}
)

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

func writeError(c echo.Context, e *Error) error {
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	var b errorBody
	b.Error.Code, b.Error.Message = e.Code, e.Message
	return c.JSON(e.Status, b)
}
