package indexer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/balidx/balidx"
	"github.com/holiman/uint256"

	"github.com/ethereum/go-ethereum/common"
)

// systemAddress emits EIP-7708 Transfer logs for plain ETH transfers since
// Amsterdam; those logs are native-coin movements, not a token.
var systemAddress = common.HexToAddress("0xfffffffffffffffffffffffffffffffffffffffe")

// gwei converts withdrawal amounts (in gwei) to wei.
var gwei = uint256.NewInt(1_000_000_000)

// deriver computes the balance changes of one block from the node.
type deriver struct {
	node *Node
	log  *slog.Logger
	book *tokenBook
	// maxRefresh bounds the holders of one token re-read at one block.
	maxRefresh int
	stats      tokenStats
}

// amounts is one account's balance of one asset before and after a block.
type amounts struct{ pre, post uint256.Int }

// changes returns every balance that block h changed, sorted by account then
// asset, so that the same block always derives the same parts, the tokens
// withheld from this block on, and the tokens fully covered from it on
// (born.go).
func (d *deriver) changes(ctx context.Context, h *NodeBlock) ([]balidx.Change, []balidx.Withheld, []common.Address, error) {
	native, changed, err := d.native(ctx, h)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("block %d native balances: %w", h.Number, err)
	}
	tokens, withheld, full, err := d.tokens(ctx, h, changed)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("block %d token balances: %w", h.Number, err)
	}
	out := make([]balidx.Change, 0, len(native)+len(tokens))
	add := func(account, asset common.Address, a *amounts) {
		if a.pre != a.post {
			out = append(out, balidx.Change{Account: account, Asset: asset, Pre: a.pre, Post: a.post})
		}
	}
	for account, a := range native {
		add(account, balidx.NativeAsset, a)
	}
	for k, a := range tokens {
		add(k.Holder, k.Token, a)
	}
	balidx.SortChanges(out)
	return out, withheld, full, nil
}

// native follows every account's balance through the block's transactions
// (prestateTracer in diffMode, internal calls and fees included), then
// applies the withdrawals, which are not transactions and not traced. It
// also returns every storage slot the block changed, by account.
func (d *deriver) native(ctx context.Context, h *NodeBlock) (map[common.Address]*amounts, map[common.Address]map[common.Hash]struct{}, error) {
	diffs, err := d.node.TraceBlock(ctx, h.Hash)
	if err != nil {
		return nil, nil, err
	}
	if len(diffs) != len(h.Txs) {
		return nil, nil, fmt.Errorf("%w: trace has %d results for %d transactions", ErrBadAnswer, len(diffs), len(h.Txs))
	}
	acc := make(map[common.Address]*amounts)
	changed := make(map[common.Address]map[common.Hash]struct{})
	for i, tx := range diffs {
		if tx.Error != "" {
			return nil, nil, fmt.Errorf("%w: tracing transaction %d (%s): %s", ErrBadAnswer, i, tx.TxHash, tx.Error)
		}
		if err := applyDiff(acc, tx); err != nil {
			return nil, nil, fmt.Errorf("transaction %d (%s): %w", i, tx.TxHash, err)
		}
		changedSlots(changed, tx)
	}
	if len(h.Withdrawals) == 0 {
		return acc, changed, nil
	}
	// Accounts touched only by withdrawals: their balance before the block.
	var missing []common.Address
	for _, w := range h.Withdrawals {
		if _, ok := acc[w.Address]; !ok && !slices.Contains(missing, w.Address) {
			missing = append(missing, w.Address)
		}
	}
	if len(missing) > 0 {
		bals, err := d.node.Balances(ctx, missing, h.ParentHash)
		if err != nil {
			return nil, nil, err
		}
		for i, a := range missing {
			acc[a] = &amounts{pre: bals[i], post: bals[i]}
		}
	}
	for _, w := range h.Withdrawals {
		a := acc[w.Address]
		var wei uint256.Int
		wei.Mul(uint256.NewInt(w.Amount), gwei) // a uint64 of gwei fits
		if _, overflow := a.post.AddOverflow(&a.post, &wei); overflow {
			return nil, nil, fmt.Errorf("%w: withdrawal to %s takes its balance past 2^256", ErrBadAnswer, w.Address.Hex())
		}
	}
	return acc, changed, nil
}

// changedSlots adds the storage slots tx changed to changed: in diffMode a
// slot is in pre (its old value) or in post (its new one), or both.
func changedSlots(changed map[common.Address]map[common.Hash]struct{}, tx txDiff) {
	for _, states := range []map[common.Address]accountState{tx.Result.Pre, tx.Result.Post} {
		for addr, s := range states {
			if len(s.Storage) == 0 {
				continue
			}
			slots := changed[addr]
			if slots == nil {
				slots = make(map[common.Hash]struct{}, len(s.Storage))
				changed[addr] = slots
			}
			for slot := range s.Storage {
				slots[slot] = struct{}{}
			}
		}
	}
}

// applyDiff folds one transaction's diff into acc. In diffMode an account
// absent from pre did not exist before the transaction; one in pre but not
// in post was deleted; one in post without a balance kept its balance.
func applyDiff(acc map[common.Address]*amounts, tx txDiff) error {
	touched := func(addr common.Address) error {
		var before, after uint256.Int
		if s, ok := tx.Result.Pre[addr]; ok {
			if s.Balance == nil {
				return fmt.Errorf("%w: pre state of %s has no balance", ErrBadAnswer, addr.Hex())
			}
			before = uint256.Int(*s.Balance)
		}
		if s, ok := tx.Result.Post[addr]; ok {
			after = before
			if s.Balance != nil {
				after = uint256.Int(*s.Balance)
			}
		}
		a, seen := acc[addr]
		if !seen {
			acc[addr] = &amounts{pre: before, post: after}
			return nil
		}
		if a.post != before {
			return fmt.Errorf("%w: %s starts with %s, the previous transaction left %s", ErrBadAnswer, addr.Hex(), before.Dec(), a.post.Dec())
		}
		a.post = after
		return nil
	}
	for addr := range tx.Result.Pre {
		if err := touched(addr); err != nil {
			return err
		}
	}
	for addr := range tx.Result.Post {
		if _, inPre := tx.Result.Pre[addr]; !inPre {
			if err := touched(addr); err != nil {
				return err
			}
		}
	}
	return nil
}
