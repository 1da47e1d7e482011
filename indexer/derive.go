package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"

	"github.com/balidx/balidx/events"
	"github.com/ethereum/go-ethereum/common"
)

// systemAddress emits EIP-7708 Transfer logs for plain ETH transfers since
// Amsterdam; those logs are native-coin movements, not a token.
var systemAddress = common.HexToAddress("0xfffffffffffffffffffffffffffffffffffffffe")

// gwei converts withdrawal amounts (in gwei) to wei.
var gwei = big.NewInt(1_000_000_000)

// deriver computes the balance changes of one block from the node.
type deriver struct {
	node *Node
	log  *slog.Logger
}

// amounts is one account's balance of one asset before and after a block.
type amounts struct{ pre, post *big.Int }

// changes returns every balance that block h changed, sorted by account then
// asset, so that the same block always derives the same parts.
func (d *deriver) changes(ctx context.Context, h *Header) ([]events.Change, error) {
	native, err := d.native(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("block %d native balances: %w", h.Number, err)
	}
	tokens, err := d.tokens(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("block %d token balances: %w", h.Number, err)
	}
	out := make([]events.Change, 0, len(native)+len(tokens))
	add := func(account, asset common.Address, a *amounts) error {
		if a.pre.Cmp(a.post) == 0 {
			return nil
		}
		c := events.Change{Account: account, Asset: asset}
		if c.Pre.SetFromBig(a.pre) || c.Post.SetFromBig(a.post) || a.pre.Sign() < 0 || a.post.Sign() < 0 {
			return fmt.Errorf("%w: block %d: amount of %s out of uint256 range", ErrBadAnswer, h.Number, account.Hex())
		}
		out = append(out, c)
		return nil
	}
	for account, a := range native {
		if err := add(account, events.NativeAsset, a); err != nil {
			return nil, err
		}
	}
	for k, a := range tokens {
		if err := add(k.Holder, k.Token, a); err != nil {
			return nil, err
		}
	}
	events.SortChanges(out)
	return out, nil
}

// native follows every account's balance through the block's transactions
// (prestateTracer in diffMode, internal calls and fees included), then
// applies the withdrawals, which are not transactions and not traced.
func (d *deriver) native(ctx context.Context, h *Header) (map[common.Address]*amounts, error) {
	diffs, err := d.node.TraceBlock(ctx, h.Hash)
	if err != nil {
		return nil, err
	}
	if len(diffs) != len(h.Txs) {
		return nil, fmt.Errorf("%w: trace has %d results for %d transactions", ErrBadAnswer, len(diffs), len(h.Txs))
	}
	acc := make(map[common.Address]*amounts)
	for i, tx := range diffs {
		if tx.Error != "" {
			return nil, fmt.Errorf("%w: tracing transaction %d (%s): %s", ErrBadAnswer, i, tx.TxHash, tx.Error)
		}
		if err := applyDiff(acc, tx); err != nil {
			return nil, fmt.Errorf("transaction %d (%s): %w", i, tx.TxHash, err)
		}
	}
	if len(h.Withdrawals) == 0 {
		return acc, nil
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
			return nil, err
		}
		for i, a := range missing {
			acc[a] = &amounts{pre: bals[i], post: new(big.Int).Set(bals[i])}
		}
	}
	for _, w := range h.Withdrawals {
		a := acc[w.Address]
		a.post.Add(a.post, new(big.Int).Mul(new(big.Int).SetUint64(w.Amount), gwei))
	}
	return acc, nil
}

// applyDiff folds one transaction's diff into acc. In diffMode an account
// absent from pre did not exist before the transaction; one in pre but not
// in post was deleted; one in post without a balance kept its balance.
func applyDiff(acc map[common.Address]*amounts, tx txDiff) error {
	touched := func(addr common.Address) error {
		before := new(big.Int)
		if s, ok := tx.Result.Pre[addr]; ok {
			if s.Balance == nil {
				return fmt.Errorf("%w: pre state of %s has no balance", ErrBadAnswer, addr.Hex())
			}
			before = s.Balance.ToInt()
		}
		after := new(big.Int)
		if s, ok := tx.Result.Post[addr]; ok {
			after = before
			if s.Balance != nil {
				after = s.Balance.ToInt()
			}
		}
		a, seen := acc[addr]
		if !seen {
			acc[addr] = &amounts{pre: before, post: after}
			return nil
		}
		if a.post.Cmp(before) != 0 {
			return fmt.Errorf("%w: %s starts with %s, the previous transaction left %s", ErrBadAnswer, addr.Hex(), before, a.post)
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

// tokens returns the balances of every holder named in the block's
// ERC-20 Transfer logs, read with balanceOf at the block and at its parent.
// Reading instead of summing log amounts keeps fee-on-transfer tokens exact.
func (d *deriver) tokens(ctx context.Context, h *Header) (map[TokenQuery]*amounts, error) {
	logs, err := d.node.TransferLogs(ctx, h.Hash)
	if err != nil {
		return nil, err
	}
	seen := make(map[TokenQuery]bool)
	var qs []TokenQuery
	for _, l := range logs {
		// ERC-20 Transfer has two indexed addresses and the value as data;
		// ERC-721's has the token id indexed too and is skipped.
		if l.Address == systemAddress || len(l.Topics) != 3 || len(l.Data) != 32 {
			continue
		}
		for _, t := range l.Topics[1:] {
			holder := common.BytesToAddress(t[:])
			q := TokenQuery{Token: l.Address, Holder: holder}
			if holder == (common.Address{}) || seen[q] {
				continue
			}
			seen[q] = true
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return nil, nil
	}
	post, postErrs, err := d.node.TokenBalances(ctx, qs, h.Hash)
	if err != nil {
		return nil, err
	}
	pre, preErrs, err := d.node.TokenBalances(ctx, qs, h.ParentHash)
	if err != nil {
		return nil, err
	}
	unreadable := make(map[common.Address]error)
	for i, q := range qs {
		switch {
		case postErrs[i] != nil:
			unreadable[q.Token] = postErrs[i]
		case preErrs[i] != nil && !errors.Is(preErrs[i], errNoCode):
			unreadable[q.Token] = preErrs[i]
		}
	}
	out := make(map[TokenQuery]*amounts, len(qs))
	for i, q := range qs {
		if _, bad := unreadable[q.Token]; bad {
			continue
		}
		p := pre[i]
		if p == nil { // the contract did not exist before this block
			p = new(big.Int)
		}
		out[q] = &amounts{pre: p, post: post[i]}
	}
	for token, err := range unreadable {
		d.log.Warn("token not indexed: balanceOf is not readable", "block", uint64(h.Number), "token", token.Hex(), "err", err)
	}
	return out, nil
}
