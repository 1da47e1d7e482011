package query

import (
	"encoding/binary"
	"hash/fnv"
	"unsafe"

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
)

// entry is one address's answer as the cache holds it: a single allocation
// without pointers, which the collector marks without reading it (with a
// million cached accounts, scanning entries of pointers took it seconds of
// CPU a cycle). Entries are never modified. Layout:
//
//	[0, 8)   the block the balances were read at, little-endian
//	[8, 16)  a hash of the balances, for the ETag
//	[16]     flags: entryKnown, entryAddressed
//	[17, 21) the length of the body
//	then the address in EIP-55 (addressLen bytes) when entryAddressed; the
//	body of the default page ("native":…,"tokens":[…],"next_cursor":…);
//	and the balances, for other pages: native (32 bytes big-endian), then
//	each token's contract (20) and amount (32).
type entry []byte

const (
	entryKnown     = 1 << iota // the snapshot has the account
	entryAddressed             // the address is stored (not in a view's unknown entry)
	entryHeader    = 21
	nativeLen      = 32
	tokenLen       = common.AddressLength + 32
)

func (e entry) readAt() uint64 { return binary.LittleEndian.Uint64(e) }
func (e entry) tag() uint64    { return binary.LittleEndian.Uint64(e[8:]) }
func (e entry) known() bool    { return e[16]&entryKnown != 0 }

// address is the EIP-55 address, or "" in a view's unknown entry.
func (e entry) address() string {
	if e[16]&entryAddressed == 0 {
		return ""
	}
	return unsafe.String(&e[entryHeader], addressLen)
}

func (e entry) bodyStart() int {
	if e[16]&entryAddressed == 0 {
		return entryHeader
	}
	return entryHeader + addressLen
}

// body is the default page's rendering.
func (e entry) body() []byte {
	i := e.bodyStart()
	return e[i : i+int(binary.LittleEndian.Uint32(e[17:]))]
}

// balances decodes the balances, for a page other than the default.
func (e entry) balances() storage.Balances {
	i := e.bodyStart() + int(binary.LittleEndian.Uint32(e[17:]))
	b := storage.Balances{Known: e.known()}
	b.Native.SetBytes32(e[i : i+nativeLen])
	rest := e[i+nativeLen:]
	b.Tokens = make([]storage.TokenBalance, len(rest)/tokenLen)
	for j := range b.Tokens {
		t := rest[j*tokenLen:]
		b.Tokens[j].Contract = common.Address(t[:common.AddressLength])
		b.Tokens[j].Amount.SetBytes32(t[common.AddressLength:tokenLen])
	}
	return b
}

func newEntry(a common.Address, b storage.Balances, readAt uint64) entry {
	body := appendBalances(nil, &b, defaultPage)
	addressed := a != (common.Address{})
	size := entryHeader + len(body) + nativeLen + tokenLen*len(b.Tokens)
	if addressed {
		size += addressLen
	}
	e := make(entry, entryHeader, size)
	binary.LittleEndian.PutUint64(e, readAt)
	if b.Known {
		e[16] |= entryKnown
	}
	if addressed {
		e[16] |= entryAddressed
		e = appendEIP55(e, a)
	}
	binary.LittleEndian.PutUint32(e[17:], uint32(len(body)))
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
	binary.LittleEndian.PutUint64(e[8:], h.Sum64())
	return e
}

// cost is what an entry holds in the cache: its bytes and the cache's own
// item for it.
func (e entry) cost() int64 { return int64(cap(e)) + cacheItemBytes }

// cacheItemBytes is ristretto's stored item (key hashes, value, expiry)
// and its share of the policy's bookkeeping, per entry.
const cacheItemBytes = 96
