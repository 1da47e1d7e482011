package query

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unsafe"

	"github.com/balidx/balidx/storage"
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

func (p page) isDefault() bool { return len(p.only) == 0 && !p.cursor && p.limit == defaultPage.limit }

// appendAnswer renders the answer for address a at view v: its EIP-55
// form (address, or rendered here when the entry holds none), the chain and
// block, the balances of page p — the entry's pre-rendered body for the
// default page — and the withheld tokens.
func appendAnswer(b []byte, a common.Address, address string, e entry, v *view, p page) []byte {
	b = append(b, `{"address":"`...)
	if address != "" {
		b = append(b, address...)
	} else {
		b = appendEIP55(b, a)
	}
	b = append(b, `",`...)
	b = appendHeader(b, v.meta.ChainID, v.block)
	b = append(b, ',')
	if p.isDefault() {
		b = append(b, e.body()...)
		b = append(b, v.withheldJSON...)
	} else {
		bal := e.balances()
		b = appendBalances(b, &bal, p)
		b = appendWithheld(b, v.withheld, p)
	}
	return append(b, '}')
}

// appendBatch renders a batch answer: one entry per address asked for, in
// order (an error for an invalid or unindexed one), then the withheld tokens.
func appendBatch(b []byte, req []string, res *batchResult, p page) []byte {
	b = append(b, '{')
	b = appendHeader(b, res.view.meta.ChainID, res.view.block)
	b = append(b, `,"balances":[`...)
	for i, raw := range req {
		if i > 0 {
			b = append(b, ',')
		}
		switch r := res.entries[i]; {
		case !r.valid:
			b = appendEntryError(b, raw, errInvalidAddress)
		case !r.balances.Known && !res.view.meta.CoverageFull:
			b = appendEntryError(b, r.address.Hex(), errNotIndexed)
		default:
			b = append(b, `{"address":"`...)
			b = append(b, r.address.Hex()...)
			b = append(b, `",`...)
			b = appendBalances(b, &r.balances, p)
			b = append(b, '}')
		}
	}
	b = append(b, ']')
	b = appendWithheld(b, res.view.withheld, p)
	return append(b, '}')
}

// appendBalances renders "native":…,"tokens":[…],"next_cursor":…
func appendBalances(b []byte, bal *storage.Balances, p page) []byte {
	b = append(b, `"native":"`...)
	b = append(b, bal.Native.Dec()...)
	b = append(b, `","tokens":[`...)
	n, next := 0, ""
	var last common.Address
	for i := range bal.Tokens {
		t := &bal.Tokens[i]
		if p.cursor && bytes.Compare(t.Contract[:], p.after[:]) <= 0 {
			continue
		}
		if len(p.only) > 0 && !containsAddr(p.only, t.Contract) {
			continue
		}
		if n == p.limit {
			next = last.Hex() // more remain after the last one listed
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"contract":"`...)
		b = append(b, t.Contract.Hex()...)
		b = append(b, `","amount":"`...)
		b = append(b, t.Amount.Dec()...)
		b = append(b, `"}`...)
		last = t.Contract
		n++
	}
	b = append(b, `],"next_cursor":"`...)
	b = append(b, next...)
	return append(b, '"')
}

// appendWithheld renders ,"withheld":[…]: every token (of the page's
// filter) whose amounts the service does not serve, for any account —
// nothing when none is.
func appendWithheld(b []byte, ws []storage.WithheldToken, p page) []byte {
	n := 0
	for i := range ws {
		w := &ws[i]
		if len(p.only) > 0 && !containsAddr(p.only, w.Contract) {
			continue
		}
		if n == 0 {
			b = append(b, `,"withheld":[`...)
		} else {
			b = append(b, ',')
		}
		b = append(b, `{"contract":"`...)
		b = append(b, w.Contract.Hex()...)
		b = append(b, `","reason":"`...)
		b = append(b, w.Reason...)
		b = append(b, `","since_block":`...)
		b = strconv.AppendUint(b, w.Since, 10)
		b = append(b, '}')
		n++
	}
	if n > 0 {
		b = append(b, ']')
	}
	return b
}

func containsAddr(list []common.Address, a common.Address) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// appendHeader renders "chain_id":…,"block":{…}
func appendHeader(b []byte, chainID uint64, bi *blockInfo) []byte {
	b = append(b, `"chain_id":`...)
	b = strconv.AppendUint(b, chainID, 10)
	b = append(b, `,"block":`...)
	return append(b, bi.json...)
}

// etagValue is an answer's ETag header value: allocated for the request,
// as net/http writes the header after the handler has returned.
type etagValue struct {
	header [1]string
	text   [maxETagLen]byte
}

// etagHeader is the ETag of balances hashed to tag, answered at block number.
func etagHeader(number, tag uint64) []string {
	v := new(etagValue)
	v.header[0] = unsafe.String(&v.text[0], len(appendETag(v.text[:0], number, tag)))
	return v.header[:] // its capacity is its length: an append never writes into it
}

// appendETag appends the ETag of balances hashed to tag, answered at block
// number: it changes when either does.
func appendETag(b []byte, number, tag uint64) []byte {
	b = append(b, '"')
	b = strconv.AppendUint(b, number, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, tag, 36)
	return append(b, '"')
}

// maxETagLen is the longest ETag: two uint64 in base 36 (13 digits each),
// a dash and the quotes.
const maxETagLen = 2*13 + 3

// appendEntryError renders one address's error in a batch answer.
func appendEntryError(b []byte, address string, e *Error) []byte {
	if len(address) > addressLen {
		address = address[:addressLen] + "…"
	}
	var one struct {
		Address string `json:"address"`
		Error   struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	one.Address = address
	one.Error.Code, one.Error.Message = e.Code, e.Message
	j, _ := json.Marshal(one)
	return append(b, j...)
}
