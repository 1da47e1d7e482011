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
// instead of hashing). The digits go through a table, without a branch a
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
