package query

import (
	"bytes"
	"slices"
	"strconv"

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
)

// view is the trusted block answers are given at, with what every answer
// at it repeats rendered once.
type view struct {
	meta      storage.Meta
	blockJSON []byte // {"number":…,"hash":"0x…","timestamp":…}
	unknown   entry  // the answer for an address never seen (Bloom negative)
	// withheld lists the tokens not served at this block (in a view made
	// for one read, a list read later: a token once withheld stays so);
	// fullTokens are the tokens whose absences are zeros (coverage.go).
	// tailJSON renders both for answers of the default page.
	withheld                []storage.WithheldToken
	fullTokens              []storage.FullToken
	tailJSON                []byte
	blockHeader, hashHeader []string // X-Balidx-Block, -Hash (never mutated)
}

func newView(m storage.Meta, withheld []storage.WithheldToken, full []storage.FullToken) *view {
	b := make([]byte, 0, 128)
	b = append(b, `{"number":`...)
	b = strconv.AppendUint(b, m.Trusted.Number, 10)
	b = append(b, `,"hash":"`...)
	b = append(b, m.Trusted.Hash.Hex()...)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendUint(b, m.Trusted.Timestamp, 10)
	b = append(b, '}')
	v := &view{
		meta: m, blockJSON: b, unknown: newEntry(common.Address{}, storage.Balances{}),
		withheld: withheld, fullTokens: full,
		blockHeader: []string{strconv.FormatUint(m.Trusted.Number, 10)}, hashHeader: []string{m.Trusted.Hash.Hex()},
	}
	v.tailJSON = appendCoverage(appendWithheld(nil, withheld, defaultPage), full, defaultPage)
	return v
}

// tokenLists are the withheld and the fully covered tokens for a view of
// m after prev (nil: none yet): prev's lists, with the tokens the commit
// withheld (newly), in contract order; read from the store only when they
// cannot be had so — the first view, a view made for one read, a token
// made full (rare: each list only grows). A list read later is never less
// honest: a token once withheld, or full, stays so.
func (s *Snapshot) tokenLists(m storage.Meta, prev *view, newly []storage.WithheldToken) ([]storage.WithheldToken, []storage.FullToken, error) {
	var withheld []storage.WithheldToken
	var full []storage.FullToken
	var err error
	switch {
	case prev != nil && uint64(len(prev.withheld)+len(newly)) == m.Withheld:
		withheld = prev.withheld
		if len(newly) > 0 {
			withheld = slices.Concat(withheld, newly)
			slices.SortFunc(withheld, func(x, y storage.WithheldToken) int { return bytes.Compare(x.Contract[:], y.Contract[:]) })
		}
	case m.Withheld > 0:
		if _, withheld, err = s.store.Withheld(); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case prev != nil && uint64(len(prev.fullTokens)) == m.FullTokens:
		full = prev.fullTokens
	case m.FullTokens > 0:
		_, full, err = s.store.FullTokens()
	}
	return withheld, full, err
}
