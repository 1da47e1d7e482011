package query

import (
	"slices"

	"github.com/balidx/balidx/storage"
)

// Which tokens' absences are zeros (docs/API.md "Coverage"). An answer
// lists the tokens an address holds; a token it does not list is a zero
// only when the token's coverage is full — a seed read its holders, or its
// first block named all of them — and unknown otherwise. Every answer says which tokens are full, after the
// withheld tokens, filtered as its page is:
//
//	"coverage":{"full_tokens":["0x…",…]}

// appendCoverage renders ,"coverage":{…} for page p.
func appendCoverage(b []byte, full []storage.FullToken, p page) []byte {
	b = append(b, `,"coverage":{"full_tokens":[`...)
	n := 0
	for _, t := range full {
		if len(p.only) > 0 && !slices.Contains(p.only, t.Contract) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, t.Contract.Hex()...)
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
