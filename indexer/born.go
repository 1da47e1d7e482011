package indexer

import (
	"context"

	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

// A token first seen at block h is fully covered from h on — every holder
// of it known, so an absent one holds 0 — when nobody held any of it
// before h (no contract at h's parent, or a total supply of 0 there) and
// the holders the block named hold all of its supply at h. From then on
// the indexer names every holder whose balance changes (its logs, its
// storage writes): none is ever missed. A token that had holders before
// its first Transfer log (a mint without one) fails the first test; a
// holder the block did not name (a fee sent without a log to a holder
// balidx cannot attribute) fails the second: such a token stays partial.

// bornFull returns the tokens of born (none of whose holders was published
// before h; not withheld) that are fully covered from h on; out holds the
// amounts the block read. The test is sound for any such token, so that a
// block derived again (a retry, a restart) derives the same.
func (d *deriver) bornFull(ctx context.Context, h *NodeBlock, born []common.Address, out map[TokenQuery]*amounts) ([]common.Address, error) {
	var full []common.Address
	for _, t := range born {
		held, err := d.node.HasCode(ctx, t, h.ParentHash)
		if err != nil {
			return nil, err
		}
		if held {
			before, err := d.node.TotalSupply(ctx, t, h.ParentHash)
			if err != nil {
				return nil, err
			}
			if before == nil || !before.IsZero() {
				continue
			}
		}
		after, err := d.node.TotalSupply(ctx, t, h.Hash)
		if err != nil {
			return nil, err
		}
		var sum uint256.Int
		for q, a := range out {
			if q.Token == t {
				if _, overflow := sum.AddOverflow(&sum, &a.post); overflow {
					after = nil
				}
			}
		}
		if after != nil && sum == *after {
			full = append(full, t)
		}
	}
	return full, nil
}
