package balidx

import "errors"

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
	LastSeq  uint64
}

// ErrPoisonedLog: a message on the log cannot be read as the event format
// says (undecodable, another chain's, a part out of order). Skipping it
// would silently lose balances: a consumer stops on it.
var ErrPoisonedLog = errors.New("unreadable message on the log")
