package query

import (
	"encoding/hex"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

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
	var buf [addressLen]byte
	if string(appendEIP55(buf[:0], a)[2:]) != s[2:] {
		return a, false, false
	}
	return a, s[1] == 'x', true
}

// parseHex is parseAddress without the checksum, which the caller must
// check when mixed is true (the hot path compares with a cached EIP-55 form
// instead of hashing).
func parseHex(s string) (a common.Address, mixed, ok bool) {
	if len(s) != addressLen || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return a, false, false
	}
	lower, upper := false, false
	for i := 2; i < addressLen; i++ {
		c := s[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v, lower = c-'a'+10, true
		case c >= 'A' && c <= 'F':
			v, upper = c-'A'+10, true
		default:
			return a, false, false
		}
		if i%2 == 0 {
			a[(i-2)/2] = v << 4
		} else {
			a[(i-2)/2] |= v
		}
	}
	return a, lower && upper, true
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
