package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// parseQuery reads a balance route's query string strictly: token
// (repeatable), limit and cursor — and address, once, where withAddress —
// and nothing else; an unknown or repeated parameter, or a malformed
// query, is refused naming it, rather than ignored (a caller asking for
// something this node does not do must not get an answer that looks like
// it did).
func parseQuery(raw string, withAddress bool) (page, string, error) {
	if raw == "" { // the common case, without parsing a map
		return defaultPage, "", nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return defaultPage, "", invalidRequest("malformed query string")
	}
	for k, vs := range q {
		switch {
		case k == "token":
		case k == "limit" || k == "cursor" || (k == "address" && withAddress):
			if len(vs) > 1 {
				return defaultPage, "", invalidRequest(fmt.Sprintf("parameter %s given %d times", quoteParam(k), len(vs)))
			}
		default:
			return defaultPage, "", invalidRequest(fmt.Sprintf("unknown parameter %s", quoteParam(k)))
		}
	}
	p := defaultPage
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, "", invalidRequest(fmt.Sprintf("limit must be 1..%d", MaxPageLimit))
		}
		p.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		a, _, ok := parseAddress(v)
		if !ok {
			return p, "", invalidRequest("cursor must be a next_cursor of an earlier answer")
		}
		p.after, p.cursor = a, true
	}
	tokens := q["token"]
	if len(tokens) > MaxTokenFilter {
		return p, "", invalidRequest(fmt.Sprintf("at most %d token parameters", MaxTokenFilter))
	}
	for _, t := range tokens {
		a, _, ok := parseAddress(t)
		if !ok {
			return p, "", invalidRequest("token must be a contract address")
		}
		p.only = append(p.only, a)
	}
	return p, q.Get("address"), nil
}

// quoteParam names a parameter in a message: quoted, at most 32 bytes.
func quoteParam(k string) string {
	if len(k) > 32 {
		k = k[:32] + "…"
	}
	return strconv.Quote(k)
}

// parseBatch reads {"addresses": [...]}: that one key, spelt so, once;
// at most MaxBatchAddresses strings; nothing after the object. JSON
// decoding into a struct would take "ADDRESSES", a duplicate key (the last
// wins) and ignore nothing less: the body is walked token by token instead.
func parseBatch(body []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errBatchShape
	}
	var addrs []string
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errBatchShape
		}
		key, _ := tok.(string)
		if key != "addresses" {
			return nil, invalidRequest(fmt.Sprintf("unknown key %s: the body is {\"addresses\": [\"0x…\", …]}", quoteParam(key)))
		}
		if seen {
			return nil, invalidRequest(`key "addresses" given twice`)
		}
		seen = true
		if err := dec.Decode(&addrs); err != nil {
			return nil, errBatchShape
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, errBatchShape
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalidRequest("body must hold one JSON object")
	}
	if len(addrs) == 0 {
		return nil, invalidRequest("addresses is empty")
	}
	if len(addrs) > MaxBatchAddresses {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large", Message: fmt.Sprintf("at most %d addresses per batch", MaxBatchAddresses)}
	}
	return addrs, nil
}

// etagMatches is If-None-Match's weak comparison (RFC 9110 §13.1.2): "*",
// or a list of entity tags one of which is etag, with or without W/.
func etagMatches(inm, etag string) bool {
	if inm == etag {
		return true // the usual case: one tag, as sent back
	}
	for len(inm) > 0 {
		var tag string
		tag, inm, _ = strings.Cut(inm, ",")
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
