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

// fullTokens is the list of fully covered tokens for a view of m: prev's
// when it holds as many (a token, once full, stays so: the list only
// grows), else read from the store.
func fullTokens(store *storage.Store, m storage.Meta, prev *view) ([]storage.FullToken, error) {
	if m.FullTokens == 0 {
		return nil, nil
	}
	if prev != nil && uint64(len(prev.fullTokens)) == m.FullTokens {
		return prev.fullTokens, nil
	}
	_, full, err := store.FullTokens()
	return full, err
}
