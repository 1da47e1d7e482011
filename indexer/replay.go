package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/events"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/holiman/uint256"
)

// ReplayConfig configures Replay. The indexer of the chain must be stopped:
// the publisher's precondition refuses to interleave with it anyway.
type ReplayConfig struct {
	Node   *Node
	Events *events.Log
	// From is the first block to re-derive. Every block before it must
	// still be on the chain as published.
	From uint64
	// Policy says which blocks of the chain are trusted now.
	Policy balidx.Policy
	// MaxRefresh: as Config.MaxRefresh, which it must equal.
	MaxRefresh int
	Log        *slog.Logger
}

// ReplayResult says what Replay found and did.
type ReplayResult struct {
	Published balidx.BlockRef  // the last block on the stream before the replay
	Fork      *balidx.BlockRef // the first published block the chain no longer has
	Target    balidx.BlockRef  // the block the correction takes snapshots to
	Changes   int              // balances corrected
	Corrected bool             // a correction was published
}

// Replay re-derives the blocks from cfg.From to the last published block
// from the node and compares them with what the stream says. If the chain
// still has every published block and every balance the stream implies
// equals the chain's, nothing is published. Otherwise (a reorg deeper than
// the trust policy, or a published balance that is wrong) it publishes one
// correction: a delta from the last published block P to the chain's block
// Q = min(P, trusted height now), whose pre amounts are what every snapshot
// at P holds and whose post amounts are the chain's at Q, for every balance
// touched on either side since From. Snapshots at P apply it and stand at
// Q; the indexer, started again, goes on from Q+1.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplayResult, error) {
	var res ReplayResult
	chainID, err := cfg.Node.ChainID(ctx)
	if err != nil {
		return res, err
	}
	pub, last, err := cfg.Events.Publisher(ctx, chainID)
	if err != nil {
		return res, err
	}
	if last == nil {
		return res, fmt.Errorf("the stream holds nothing of chain %d: nothing to replay", chainID)
	}
	if last.Part < last.Parts {
		return res, fmt.Errorf("block %d is only partly published: start the indexer to finish it, then replay", last.Number)
	}
	res.Published = balidx.BlockRef{Number: last.Number, Hash: last.Hash}
	if cfg.From > last.Number {
		return res, fmt.Errorf("--from %d is after the last published block %d", cfg.From, last.Number)
	}
	hist, err := readHistory(ctx, cfg.Events, chainID, cfg.From)
	if err != nil {
		return res, err
	}

	// Where does the chain leave what was published?
	if cfg.From > 0 && cfg.From-1 >= max(hist.firstBlock, hist.corrected) {
		h, err := cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(cfg.From-1))
		if err != nil {
			return res, err
		}
		if h == nil || h.Hash != hist.hashes[cfg.From-1] {
			return res, fmt.Errorf("the chain already differs at block %d, before --from %d: replay from an earlier block", cfg.From-1, cfg.From)
		}
	}
	// Blocks before the last correction were published on a branch the
	// correction left; the correction vouches for the chain up to it.
	for n := max(cfg.From, hist.corrected); n <= last.Number; n++ {
		h, err := cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(n))
		if err != nil {
			return res, err
		}
		if h == nil || h.Hash != hist.hashes[n] {
			res.Fork = &balidx.BlockRef{Number: n, Hash: hist.hashes[n]}
			break
		}
	}

	// The target: the published height, or the chain's trusted height if
	// the new branch is shorter.
	head, err := cfg.Node.HeaderByNumber(ctx, rpc.LatestBlockNumber)
	if err != nil || head == nil {
		return res, fmt.Errorf("latest block: %v", err)
	}
	ix := &Indexer{cfg: Config{Node: cfg.Node, Policy: cfg.Policy}}
	trusted, ok, err := ix.trusted(ctx, head)
	if err != nil {
		return res, err
	}
	if !ok || trusted < cfg.From {
		return res, fmt.Errorf("the chain trusts no block at or after --from %d yet", cfg.From)
	}
	target, err := cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(min(trusted, last.Number)))
	if err != nil || target == nil {
		return res, fmt.Errorf("target block: %v", err)
	}
	res.Target = balidx.BlockRef{Number: uint64(target.Number), Hash: target.Hash}

	// Every balance touched since From, on the stream or on the chain.
	keys := hist.touched
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxRefresh == 0 {
		cfg.MaxRefresh = DefaultMaxRefresh
	}
	d := deriver{node: cfg.Node, log: cfg.Log, book: hist.book, maxRefresh: cfg.MaxRefresh}
	for n := cfg.From; n <= uint64(target.Number); n++ {
		if n == 0 {
			continue // genesis: its accounts are on the stream already
		}
		h, err := cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(n))
		if err != nil {
			return res, err
		}
		changes, withheld, _, err := d.changes(ctx, h)
		if err != nil {
			return res, err
		}
		for _, c := range changes {
			keys[assetKey{c.Account, c.Asset}] = struct{}{}
		}
		for _, w := range withheld {
			hist.withheld[w.Asset] = true
		}
		d.book.record(changes, withheld)
	}
	for k := range keys {
		if hist.withheld[k.asset] {
			delete(keys, k) // not served: nothing to correct
		}
	}
	corrections, err := correctionsAt(ctx, cfg.Node, target.Hash, keys, hist.amounts)
	if err != nil {
		return res, err
	}
	res.Changes = len(corrections)
	if res.Fork == nil && len(corrections) == 0 {
		return res, nil // the stream and the chain agree: nothing to publish
	}
	block := target.Block()
	parts := events.Split(chainID, block, corrections, nil)
	for i := range parts {
		parts[i].From = &res.Published
	}
	if err := pub.Publish(ctx, parts); err != nil {
		return res, err
	}
	res.Corrected = true
	return res, nil
}

// assetKey is one balance: an account's holding of an asset.
type assetKey struct{ account, asset common.Address }

// history is what the stream says.
type history struct {
	firstBlock uint64                   // the first block on the stream
	corrected  uint64                   // the block of the last correction: earlier hashes may be of a left branch
	hashes     map[uint64]common.Hash   // published hash by number, corrections applied
	amounts    map[assetKey]uint256.Int // every balance after the last message
	touched    map[assetKey]struct{}    // balances changed in blocks ≥ from
	withheld   map[common.Address]bool  // tokens withheld: not corrected, as not served
	book       *tokenBook               // what the blocks before from say of tokens
}

// readHistory reads the chain's whole subject of the stream; its book
// holds what the blocks before from say of tokens.
func readHistory(ctx context.Context, l *events.Log, chainID, from uint64) (*history, error) {
	h := &history{hashes: map[uint64]common.Hash{}, amounts: map[assetKey]uint256.Int{}, touched: map[assetKey]struct{}{}, withheld: map[common.Address]bool{}}
	books := bookLoader{book: newTokenBook()}
	first := true
	err := l.Each(ctx, chainID, func(d *events.BlockDelta) error {
		if first {
			h.firstBlock, first = d.Number, false
		}
		if d.From != nil { // a correction: the blocks after it are no longer published
			for n := range h.hashes {
				if n > d.Number {
					delete(h.hashes, n)
				}
			}
			h.corrected = d.Number
		}
		h.hashes[d.Number] = d.Hash
		for _, c := range d.Changes {
			k := assetKey{c.Account, c.Asset}
			h.amounts[k] = c.Post
			if d.Number >= from {
				h.touched[k] = struct{}{}
			}
		}
		for _, w := range d.Withheld {
			h.withheld[w.Asset] = true
		}
		if d.Number < from {
			books.add(d)
		}
		return nil
	})
	h.book = books.book
	return h, err
}

// bookLoader records whole blocks into a book as their parts are read: a
// block whose last parts are not on the stream yet is derived again, and
// must be derived from the book as it stood before it.
type bookLoader struct {
	book     *tokenBook
	changes  []balidx.Change
	withheld []balidx.Withheld
}

func (l *bookLoader) add(d *events.BlockDelta) {
	if d.Part == 1 {
		l.changes, l.withheld = l.changes[:0], d.Withheld
	}
	l.changes = append(l.changes, d.Changes...)
	if d.Part == d.Parts {
		l.book.record(l.changes, l.withheld)
	}
}

// loadTokenBook reads what the stream says of tokens: every holder
// published, every token withheld.
func loadTokenBook(ctx context.Context, log *events.Log, chainID uint64) (*tokenBook, error) {
	l := bookLoader{book: newTokenBook()}
	err := log.Each(ctx, chainID, func(d *events.BlockDelta) error {
		l.add(d)
		return nil
	})
	return l.book, err
}

// correctionsAt reads every key's amount on the chain at block at and
// returns a change (pre: the stream's, post: the chain's) where they differ.
func correctionsAt(ctx context.Context, node *Node, at common.Hash, keys map[assetKey]struct{}, stream map[assetKey]uint256.Int) ([]balidx.Change, error) {
	var natives []common.Address
	var tokens []TokenQuery
	for k := range keys {
		if k.asset == balidx.NativeAsset {
			natives = append(natives, k.account)
		} else {
			tokens = append(tokens, TokenQuery{Token: k.asset, Holder: k.account})
		}
	}
	chain := map[assetKey]uint256.Int{}
	if len(natives) > 0 {
		bals, err := node.Balances(ctx, natives, at)
		if err != nil {
			return nil, err
		}
		for i, a := range natives {
			chain[assetKey{a, balidx.NativeAsset}] = bals[i]
		}
	}
	if len(tokens) > 0 {
		bals, errs, err := node.TokenBalances(ctx, tokens, at)
		if err != nil {
			return nil, err
		}
		for i, q := range tokens {
			switch {
			case errors.Is(errs[i], errNoCode):
				chain[assetKey{q.Holder, q.Token}] = uint256.Int{} // the contract does not exist on this branch
			case errs[i] != nil:
				return nil, fmt.Errorf("balanceOf(%s) on %s: %w", q.Holder.Hex(), q.Token.Hex(), errs[i])
			default:
				chain[assetKey{q.Holder, q.Token}] = bals[i]
			}
		}
	}
	var out []balidx.Change
	for k, v := range chain {
		if c := (balidx.Change{Account: k.account, Asset: k.asset, Pre: stream[k], Post: v}); c.Pre != c.Post {
			out = append(out, c)
		}
	}
	balidx.SortChanges(out)
	return out, nil
}
