package query

import (
	"slices"

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
)

// Which tokens' absences are zeros (docs/API.md "Coverage"). An answer
// lists the tokens an address holds; a token it does not list is a zero
// only when the token's coverage is full — a seed read its holders — and
// unknown otherwise. Every answer says which tokens are full, after the
// withheld tokens, filtered as its page is:
//
//	"coverage":{"full_tokens":["0x…",…]}

// appendCoverage renders ,"coverage":{…} for page p.
func appendCoverage(b []byte, full []common.Address, p page) []byte {
	b = append(b, `,"coverage":{"full_tokens":[`...)
	n := 0
	for _, t := range full {
		if len(p.only) > 0 && !slices.Contains(p.only, t) {
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

// seededTokens is the list of seeded tokens for a view of m: prev's when
// it holds as many (a seed ends before the first trusted block, so the
// list never changes after), else read from the store.
func seededTokens(store *storage.Store, m storage.Meta, prev *view) ([]common.Address, error) {
	if m.SeededTokens == 0 {
		return nil, nil
	}
	if prev != nil && uint64(len(prev.fullTokens)) == m.SeededTokens {
		return prev.fullTokens, nil
	}
	_, seeded, err := store.SeededTokens()
	return seeded, err
}
