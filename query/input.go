package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ethereum/go-ethereum/common"
)

// page selects which tokens an answer lists.
type page struct {
	only   []common.Address // token filter; empty: all
	after  common.Address   // cursor: list contracts after this one
	cursor bool
	limit  int
}

var defaultPage = page{limit: 100}

// params are a balance route's query parameters, parsed.
type params struct {
	page          page
	walletAddress string // the wallet route's address parameter
	minBlock      uint64 // min_block: 0 when not given
}

// balanceQuery is a single-address request, parsed.
type balanceQuery struct {
	address common.Address
	raw     string // the address as sent
	mixed   bool   // raw is in mixed case: it must be address's EIP-55 form, checked against the answer's
	params
}

// parseBalanceQuery parses a single-address route: the address is
// pathAddress, or the query's address parameter when wallet is set (the
// wallet route). The checksum of a mixed-case address is left to the
// answer, which holds the EIP-55 form.
func parseBalanceQuery(rawQuery, pathAddress string, wallet bool) (balanceQuery, error) {
	ps, err := parseQuery(rawQuery, wallet)
	if err != nil {
		return balanceQuery{}, err
	}
	address := pathAddress
	if wallet {
		address = ps.walletAddress
	}
	a, mixed, ok := parseHex(address)
	if !ok {
		return balanceQuery{}, errInvalidAddress
	}
	return balanceQuery{address: a, raw: address, mixed: mixed, params: ps}, nil
}

// parseQuery reads a balance route's query string strictly: token
// (repeatable), limit, cursor and min_block — and address, once, where
// withAddress — and nothing else; an unknown or repeated parameter, or a
// malformed query, is refused naming it, rather than ignored (a caller
// asking for something this node does not do must not get an answer that
// looks like it did).
func parseQuery(raw string, withAddress bool) (params, error) {
	ps := params{page: defaultPage}
	if raw == "" { // the common case, without parsing a map
		return ps, nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return ps, invalidRequest("malformed query string")
	}
	for k, vs := range q {
		switch {
		case k == "token":
		case k == "limit" || k == "cursor" || k == "min_block" || (k == "address" && withAddress):
			if len(vs) > 1 {
				return ps, invalidRequest(fmt.Sprintf("parameter %s given %d times", quoteParam(k), len(vs)))
			}
		default:
			return ps, invalidRequest(fmt.Sprintf("unknown parameter %s", quoteParam(k)))
		}
	}
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit {
			return ps, invalidRequest(fmt.Sprintf("limit must be 1..%d", MaxPageLimit))
		}
		ps.page.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		a, _, ok := parseAddress(v)
		if !ok {
			return ps, invalidRequest("cursor must be a next_cursor of an earlier answer")
		}
		ps.page.after, ps.page.cursor = a, true
	}
	if v := q.Get("min_block"); v != "" || q.Has("min_block") {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return ps, invalidRequest("min_block must be a block number (base 10)")
		}
		ps.minBlock = n
	}
	tokens := q["token"]
	if len(tokens) > MaxTokenFilter {
		return ps, invalidRequest(fmt.Sprintf("at most %d token parameters", MaxTokenFilter))
	}
	for _, t := range tokens {
		a, _, ok := parseAddress(t)
		if !ok {
			return ps, invalidRequest("token must be a contract address")
		}
		ps.page.only = append(ps.page.only, a)
	}
	ps.walletAddress = q.Get("address")
	return ps, nil
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

// addressLen is the only length an address may have: 0x + 40 hex digits.
const addressLen = 42

// parseAddress applies API.md's rules, cheapest check first: the length
// (so an oversized input is refused before anything reads it), the prefix,
// the hex digits, then the EIP-55 checksum when the case is mixed.
// checksummed reports that s itself is the EIP-55 form.
func parseAddress(s string) (a common.Address, checksummed, ok bool) {
	a, mixed, ok := parseHex(s)
	if !ok || !mixed {
		return a, false, ok
	}
	if a.Hex()[2:] != s[2:] { // allocates: off the single-address path, which checks against the cached form
		return a, false, false
	}
	return a, s[1] == 'x', true
}

// parseHex is parseAddress without the checksum, which the caller must
// check when mixed is true (the single-address path compares with the
// answer's EIP-55 form, cached with it, instead of hashing). The digits go through a table, without a branch a
// digit: a branch per digit mispredicts on random hex.
func parseHex(s string) (a common.Address, mixed, ok bool) {
	if len(s) != addressLen || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return a, false, false
	}
	var flags byte
	for i := range a {
		hi, lo := hexDigits[s[2+2*i]], hexDigits[s[3+2*i]]
		flags |= hi | lo
		a[i] = hi<<4 | lo&0xf
	}
	return a, flags&(hexLower|hexUpper) == hexLower|hexUpper, flags&hexInvalid == 0
}

// hexDigits maps a character to its value as a hex digit (low 4 bits)
// with flags saying which case it was, or hexInvalid.
var hexDigits = func() (t [256]byte) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = byte(c - '0')
		case c >= 'a' && c <= 'f':
			t[c] = byte(c-'a'+10) | hexLower
		case c >= 'A' && c <= 'F':
			t[c] = byte(c-'A'+10) | hexUpper
		default:
			t[c] = hexInvalid
		}
	}
	return t
}()

const (
	hexLower   = 0x10
	hexUpper   = 0x20
	hexInvalid = 0x80
)
