package balidx

import (
	"errors"

	"github.com/ethereum/go-ethereum/common/hexutil"
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
	Seed    *SeedPage
	LastSeq uint64
}

// SeedPage places one page of a seed: its number (1, 2, …), the state key
// the next page starts from (empty on the last), and whether it is the
// last, with which the seeded block becomes trusted.
type SeedPage struct {
	Page uint64        `json:"page"`
	Next hexutil.Bytes `json:"next,omitempty"`
	Last bool          `json:"last,omitempty"`
}

// ErrPoisonedLog: a message on the log cannot be read as the event format
// says (undecodable, another chain's, a part out of order). Skipping it
// would silently lose balances: a consumer stops on it.
var ErrPoisonedLog = errors.New("unreadable message on the log")
