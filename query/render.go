package query

// Every answer's bytes are made here: the view's and the cached entry's,
// rendered once, and what each request adds to them. Handlers build no JSON.
//
// The single-address answer's invariants, which its speed rests on:
//   - a view is immutable once made, and renders once what every answer at
//     its block repeats (the block, the withheld tokens, the answer for an
//     unknown address);
//   - an entry is immutable and pointer-free, and holds its address's
//     default-page body rendered and its EIP-55 form: a mixed-case request
//     is checked against that form, not hashed;
//   - nothing a request renders outlives it but the ETag header value,
//     which net/http reads after the handler returns.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/labstack/echo/v4"
)

// entry is one address's answer, rendered once and then cached: a single
// allocation without pointers, which the collector marks without reading
// it (with a million cached accounts, scanning entries of pointers took it
// seconds of CPU a cycle). Entries are never modified. Layout:
//
//	[0, 8)   a hash of the balances, for the ETag
//	[8]      flags: entryKnown, entryAddressed
//	[9, 13)  the length of the body
//	then the address in EIP-55 (addressLen bytes) when entryAddressed; the
//	body of the default page ("native":…,"tokens":[…],"next_cursor":…);
//	and the balances, for other pages: native (32 bytes big-endian), then
//	each token's contract (20) and amount (32).
type entry []byte

const (
	entryKnown     = 1 << iota // the snapshot has the account
	entryAddressed             // the address is stored (not in a view's unknown entry)
	entryHeader    = 13
	nativeLen      = 32
	tokenLen       = common.AddressLength + 32
)

func (e entry) tag() uint64 { return binary.LittleEndian.Uint64(e) }
func (e entry) known() bool { return e[8]&entryKnown != 0 }

// address is the EIP-55 address, or "" in a view's unknown entry.
func (e entry) address() string {
	if e[8]&entryAddressed == 0 {
		return ""
	}
	return unsafe.String(&e[entryHeader], addressLen)
}

func (e entry) bodyStart() int {
	if e[8]&entryAddressed == 0 {
		return entryHeader
	}
	return entryHeader + addressLen
}

// body is the default page's rendering; native (32 bytes big-endian) and
// the tokens follow it.
func (e entry) body() []byte {
	i := e.bodyStart()
	return e[i : i+int(binary.LittleEndian.Uint32(e[9:])) : len(e)]
}

func (e entry) native() []byte { b := e.body(); return b[len(b) : len(b)+nativeLen] }

// balances decodes the balances, for a page other than the default.
func (e entry) balances() storage.Balances {
	b := storage.Balances{Known: e.known()}
	native := e.native()
	b.Native.SetBytes32(native)
	rest := native[nativeLen:cap(native)]
	b.Tokens = make([]storage.TokenBalance, len(rest)/tokenLen)
	for j := range b.Tokens {
		t := rest[j*tokenLen:]
		b.Tokens[j].Contract = common.Address(t[:common.AddressLength])
		b.Tokens[j].Amount.SetBytes32(t[common.AddressLength:tokenLen])
	}
	return b
}

// newEntry renders a's balances b (an unknown address's when a is zero).
func newEntry(a common.Address, b storage.Balances) entry {
	body := appendBalances(nil, &b, defaultPage)
	addressed := a != (common.Address{})
	size := entryHeader + len(body) + nativeLen + tokenLen*len(b.Tokens)
	if addressed {
		size += addressLen
	}
	e := make(entry, entryHeader, size)
	if b.Known {
		e[8] |= entryKnown
	}
	if addressed {
		e[8] |= entryAddressed
		e = appendEIP55(e, a)
	}
	binary.LittleEndian.PutUint32(e[9:], uint32(len(body)))
	e = append(e, body...)
	balancesAt := len(e)
	nb := b.Native.Bytes32()
	e = append(e, nb[:]...)
	for _, t := range b.Tokens {
		tb := t.Amount.Bytes32()
		e = append(e, t.Contract[:]...)
		e = append(e, tb[:]...)
	}
	h := fnv.New64a()
	h.Write(e[balancesAt:]) // the ETag's hash is of the balances in binary
	binary.LittleEndian.PutUint64(e, h.Sum64())
	return e
}

// answerBufs are the single-address answers' render buffers.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeAnswer answers q with e, true at v: 400 when a mixed-case address is
// not the EIP-55 form, 404 not_indexed for an address never seen when the
// snapshot does not cover the whole chain, 304 when If-None-Match names
// this answer, else the answer with its ETag.
func writeAnswer(c echo.Context, q balanceQuery, e entry, v *view) error {
	address := e.address() // the EIP-55 form; "" in an unknown address's entry, rendered here
	if q.mixed {
		var buf [addressLen]byte
		want := address
		if want == "" {
			want = unsafe.String(&buf[0], len(appendEIP55(buf[:0], q.address)))
		}
		if q.raw[2:] != want[2:] {
			return errInvalidAddress
		}
	}
	if !e.known() && !v.meta.CoverageFull {
		return errNotIndexed
	}
	etag := etagHeader(v.meta.Trusted.Number, e.tag())
	w := c.Response()
	h := w.Header()
	h["Etag"], h["Cache-Control"] = etag, noCache
	if inm := c.Request().Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm[0], etag[0]) {
		return c.NoContent(http.StatusNotModified)
	}
	bp := answerBufs.Get().(*[]byte)
	b := appendAnswer((*bp)[:0], q.address, address, e, v, q.page)
	h["Content-Type"] = jsonType
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b)
	*bp = b
	answerBufs.Put(bp)
	return err
}

// Header values shared by every answer (never mutated).
var noCache, jsonType = []string{"no-cache"}, []string{"application/json"}

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
	b = appendHeader(b, v)
	b = append(b, ',')
	if len(p.only) == 0 && !p.cursor && p.limit == defaultPage.limit {
		b = append(b, e.body()...)
		b = append(b, v.tailJSON...)
	} else {
		bal := e.balances()
		b = appendBalances(b, &bal, p)
		b = appendWithheld(b, v.withheld, p)
		b = appendCoverage(b, v.fullTokens, p)
	}
	return append(b, '}')
}

// appendBatch renders a batch answer: one entry per address asked for, in
// order (an error for an invalid or unindexed one), then the withheld tokens.
func appendBatch(b []byte, req []string, res *batchResult, p page) []byte {
	b = append(b, '{')
	b = appendHeader(b, res.view)
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
	b = appendCoverage(b, res.view.fullTokens, p)
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
		if len(p.only) > 0 && !slices.Contains(p.only, t.Contract) {
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
		if len(p.only) > 0 && !slices.Contains(p.only, w.Contract) {
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

// appendHeader renders "chain_id":…,"block":{…}
func appendHeader(b []byte, v *view) []byte {
	b = append(b, `"chain_id":`...)
	b = strconv.AppendUint(b, v.meta.ChainID, 10)
	b = append(b, `,"block":`...)
	return append(b, v.blockJSON...)
}

// etagValue is an answer's ETag header value: allocated for the request,
// as net/http writes the header after the handler has returned.
type etagValue struct {
	header [1]string
	text   [maxETagLen]byte
}

// etagHeader is the ETag of balances hashed to tag, answered at block
// number: it changes when either does.
func etagHeader(number, tag uint64) []string {
	v := new(etagValue)
	b := append(v.text[:0], '"')
	b = strconv.AppendUint(b, number, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, tag, 36)
	b = append(b, '"')
	v.header[0] = unsafe.String(&v.text[0], len(b))
	return v.header[:] // its capacity is its length: an append never writes into it
}

// maxETagLen is the longest ETag: two uint64 in base 36 (13 digits each),
// a dash and the quotes.
const maxETagLen = 2*13 + 3

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

// checksummer is the state appendEIP55 reuses: a hash passed through an
// interface would make its buffers escape.
type checksummer struct {
	k     crypto.KeccakState
	lower [2 * common.AddressLength]byte
	hash  [32]byte
}

var checksummers = sync.Pool{New: func() any { return &checksummer{k: crypto.NewKeccakState()} }}

// appendEIP55 appends a's mixed-case checksum form (EIP-55), as a.Hex()
// renders it but without allocating.
func appendEIP55(b []byte, a common.Address) []byte {
	cs := checksummers.Get().(*checksummer)
	defer checksummers.Put(cs)
	hex.Encode(cs.lower[:], a[:])
	cs.k.Reset()
	cs.k.Write(cs.lower[:])
	cs.k.Read(cs.hash[:])
	b = append(b, "0x"...)
	for i, c := range cs.lower {
		nibble := cs.hash[i/2] >> 4
		if i%2 == 1 {
			nibble = cs.hash[i/2] & 0xf
		}
		if c > '9' && nibble > 7 {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
