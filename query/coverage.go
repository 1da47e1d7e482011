package query

import (
	"bytes"
	"slices"

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
)

// Which tokens' absences are zeros (docs/API.md "Coverage"). An answer
// lists the tokens an address holds; a token it does not list is a zero
// only when the token's coverage is full — a seed read its holders, or its
// first block named all of them — and unknown otherwise. An answer
// filtered by token says which of the tokens asked for are full; an
// unfiltered one vouches for no absent token (its list is empty), so that
// no answer grows with the number of tokens on the chain:
//
//	"coverage":{"full_tokens":["0x…",…]}

// appendCoverage renders ,"coverage":{…} for page p; full is in contract
// order.
func appendCoverage(b []byte, full []storage.FullToken, p page) []byte {
	b = append(b, `,"coverage":{"full_tokens":[`...)
	n := 0
	for i, t := range p.only {
		_, found := slices.BinarySearchFunc(full, t, func(f storage.FullToken, t common.Address) int { return bytes.Compare(f.Contract[:], t[:]) })
		if !found || slices.Index(p.only, t) < i { // not full, or asked for twice
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, t.Hex()...)
		b = append(b, '"')
		n++
	}
	return append(b, "]}"...)
}
