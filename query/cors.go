package query

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// cors answers browsers from an exact allowlist of origins. A request
// without Origin (not a browser) passes; an Origin outside the list, "null"
// included, is refused with 403. There is no wildcard.
type cors struct {
	allowed map[string]bool
}

func newCORS(origins []string) *cors {
	c := &cors{allowed: map[string]bool{}}
	for _, o := range origins {
		c.allowed[o] = true
	}
	return c
}

// varyOrigin is shared by every answer; its capacity is its length, so an
// append never writes into it.
var varyOrigin = []string{"Origin"}

const (
	corsAllowHeaders  = "X-Client-ID, X-Timestamp, X-Nonce, X-Request-Signature, Content-Type, If-None-Match"
	corsExposeHeaders = "ETag, Retry-After, RateLimit, RateLimit-Policy, X-Balidx-Block, X-Balidx-Block-Hash"
)

// check sets the CORS fields. done is true when it answered a preflight.
func (c *cors) check(ctx echo.Context) (done bool, err error) {
	req := ctx.Request()
	origin := header(req.Header, "Origin")
	h := ctx.Response().Header()
	if len(h["Vary"]) == 0 {
		h["Vary"] = varyOrigin
	} else {
		h.Add("Vary", "Origin")
	}
	if origin == "" {
		return false, nil
	}
	if origin == "null" || !c.allowed[origin] {
		return false, errOriginNotAllowed
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		return true, ctx.NoContent(http.StatusNoContent)
	}
	return false, nil
}

// ParseOrigins splits a comma-separated allowlist and checks each entry is
// an exact scheme://host[:port] origin.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" || o == "null" || !(strings.HasPrefix(o, "https://") || strings.HasPrefix(o, "http://")) || strings.Count(o, "/") != 2 {
			return nil, fmt.Errorf("CORS origin %q: want scheme://host[:port], no wildcard, no path", o)
		}
		out = append(out, o)
	}
	return out, nil
}
