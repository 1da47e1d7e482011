package indexer

// Trust: which block is trusted (the policy's confirmations or the node's
// safe/finalized tag), and what happens when the chain no longer has what
// was published (a parent-hash mismatch, confirmed, is a trust violation).

import (
	"context"
	"fmt"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"
)

// tagged is the node's block of the trust tag (safe or finalized).
func tagged(ctx context.Context, node *Node, tag string) (*NodeBlock, error) {
	num := rpc.SafeBlockNumber
	if tag == "finalized" {
		num = rpc.FinalizedBlockNumber
	}
	h, err := node.HeaderByNumber(ctx, num)
	if err != nil || h == nil {
		return nil, fmt.Errorf("%w: %q (%v); a node without a consensus client has none: use --confirmations N", ErrNoTag, tag, err)
	}
	return h, nil
}

// trusted returns the highest trusted block number, or ok=false if none is.
func (ix *Indexer) trusted(ctx context.Context, head *NodeBlock) (uint64, bool, error) {
	if ix.cfg.Policy.Tag != "" {
		h, err := tagged(ctx, ix.cfg.Node, ix.cfg.Policy.Tag)
		if err != nil {
			return 0, false, err
		}
		return uint64(h.Number), true, nil
	}
	n := ix.cfg.Policy.Confirmations
	if uint64(head.Number) < n {
		return 0, false, nil
	}
	return uint64(head.Number) - n, true, nil
}

// confirmMismatch looks again before calling a parent-hash mismatch a trust
// violation: a node that is syncing, or that answered from two different
// views of a changing chain, is not a reorg. It returns the header to go on
// with when the mismatch was not real.
func (ix *Indexer) confirmMismatch(ctx context.Context, h *NodeBlock, cur *cursor) (*NodeBlock, bool, error) {
	syncing, err := ix.cfg.Node.Syncing(ctx)
	if err != nil {
		return nil, false, err
	}
	if syncing {
		return nil, false, fmt.Errorf("block %d does not build on the published block but the node is syncing: waiting", cur.next)
	}
	again, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(cur.next))
	if err != nil {
		return nil, false, err
	}
	if again != nil && again.ParentHash == cur.parentHash {
		return again, false, nil // the first answer was from a chain the node has left since
	}
	// The published block is replaced only if the node's own block n−1 is
	// another one; a node that still has it answered inconsistently (a
	// lagging backend behind a load balancer): wait, do not cry reorg.
	prev, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(cur.next-1))
	if err != nil {
		return nil, false, err
	}
	if prev != nil && prev.Hash == cur.parentHash {
		return nil, false, fmt.Errorf("%w: the node has the published block %d but returns a block %d built on %s", ErrBadAnswer, cur.next-1, cur.next, h.ParentHash)
	}
	stop, err := ix.violation(ctx, h, cur.parentHash, "the published parent")
	return nil, stop, err
}

func (ix *Indexer) violation(ctx context.Context, h *NodeBlock, published common.Hash, what string) (bool, error) {
	v := &balidx.TrustViolation{
		Number: uint64(h.Number), Hash: h.Hash.Hex(), ParentHash: h.ParentHash.Hex(),
		PublishedHash: published.Hex(), DetectedAt: ix.cfg.Now().UTC(),
	}
	if fin, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.FinalizedBlockNumber); err == nil && fin != nil {
		ix.cfg.Log.Error("finalized block at the time of the violation", "number", uint64(fin.Number), "hash", fin.Hash)
	}
	ix.cfg.Log.Error("TRUST VIOLATION: the chain no longer continues what was published; publishing stopped (repair with balidx replay)",
		"block", v.Number, "hash", v.Hash, "parent", v.ParentHash, "published", published, "against", what)
	ix.metrics.violation.Set(1)
	ix.mu.Lock()
	ix.status.TrustViolation = v
	ix.mu.Unlock()
	return true, ix.cfg.Board.Put(ctx, ix.Status())
}
