package balidx

import (
	"errors"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/holiman/uint256"
)

// Delta is what one trusted block changed, whole: every balance change
// (all the block's parts), the tokens withheld from it on, and, on a
// correction published by replay, the block it corrects from. LastSeq is
// the log's sequence of the block's last message: where a consumer that
// has applied it stands.
type Delta struct {
	ChainID uint64
	Block
	// From is set on a correction: it applies only to a snapshot whose
	// trusted block is exactly From.
	From     *BlockRef
	Changes  []Change
	Withheld []Withheld
	// Seed is set on a page of a seeded start: the state at Block, read
	// from the node, published before Block+1 (events/FORMAT.md "Seeds").
	Seed *SeedPage
	// FullTokens are the tokens fully covered from this block on: first
	// seen here, all their holders named by it (events/FORMAT.md).
	FullTokens []common.Address
	LastSeq    uint64
}

// SeedPage places one page of a seed. A seed is the native coin's
// accounts, in state key order, then each token of its list in order.
// Page numbers run 1, 2, … across the whole seed; Last marks its last page,
// with which the seeded block becomes trusted.
//   - A page of accounts (Token nil) carries Next, the state key the next
//     page of accounts starts from, empty on the last of them.
//   - A page of a token carries Token and LogsFrom: the token's Transfer
//     logs before block LogsFrom are taken (its holders in them read at the
//     block), and the scan goes on from there; LogsFrom is the block + 1 on
//     the token's last page, which carries TotalSupply, the token's
//     totalSupply() at the block (nil: unreadable). The token's coverage is
//     full when the amounts seeded add up to it: no holder was missed.
//
// Tokens is the Keccak-256 of the seed's token list (zero: no tokens), on
// every page, so that a seed is resumed only with the list it began with.
type SeedPage struct {
	Page     uint64          `json:"page"`
	Next     hexutil.Bytes   `json:"next,omitempty"`
	Token    *common.Address `json:"token,omitempty"`
	LogsFrom uint64          `json:"logs_from,omitempty"`
	// TotalSupply is a pointer so that its absence is not read as 0.
	TotalSupply *uint256.Int `json:"total_supply,omitempty"`
	Tokens      common.Hash  `json:"tokens,omitzero"`
	Last        bool         `json:"last,omitempty"`
}

// TokenDone says whether p is the last page of its token, for a seed of
// block number: the token's holders at the block are all seeded.
func (p *SeedPage) TokenDone(number uint64) bool {
	return p.Token != nil && p.LogsFrom == number+1
}

// ErrPoisonedLog: a message on the log cannot be read as the event format
// says (undecodable, another chain's, a part out of order). Skipping it
// would silently lose balances: a consumer stops on it.
var ErrPoisonedLog = errors.New("unreadable message on the log")
