package indexer

import (
	"context"
	"fmt"
	"sync"

	"github.com/balidx/balidx"
	"github.com/holiman/uint256"

	"github.com/ethereum/go-ethereum/common"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Holding is one balance the snapshot claims.
type Holding struct {
	Account, Asset common.Address // Asset: balidx.NativeAsset or a token
	Amount         uint256.Int
}

// Mismatch is a balance the chain disagrees with.
type Mismatch struct {
	Account string `json:"account"`
	Asset   string `json:"asset"` // "native" or the token contract
	Ours    string `json:"ours"`
	Chain   string `json:"chain"`
}

// AuditConfig bounds what an audit asks of the node.
type AuditConfig struct {
	Node *Node
	// Block is the hash the balances are claimed at (the trusted block).
	Block common.Hash
	// Concurrency: batches in flight at once; default 4.
	Concurrency int
	// BatchesPerSecond caps the request rate against the node; default 20.
	BatchesPerSecond float64
	// BatchSize: balances per JSON-RPC batch; default 100.
	BatchSize int
	// Progress, if set, is called after each batch with the balances checked.
	Progress func(checked int)
}

// Audit asks the node, at cfg.Block, for every holding (eth_getBalance or
// balanceOf) and returns those that differ.
func Audit(ctx context.Context, cfg AuditConfig, holdings []Holding) ([]Mismatch, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.BatchesPerSecond <= 0 {
		cfg.BatchesPerSecond = 20
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > maxBatch {
		cfg.BatchSize = maxBatch
	}
	limit := rate.NewLimiter(rate.Limit(cfg.BatchesPerSecond), 1)
	var (
		mu         sync.Mutex
		mismatches []Mismatch
		checked    int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	for lo := 0; lo < len(holdings); lo += cfg.BatchSize {
		batch := holdings[lo:min(lo+cfg.BatchSize, len(holdings))]
		if err := limit.Wait(gctx); err != nil {
			break // a batch failed, or ctx ended: said below
		}
		g.Go(func() error {
			found, err := auditBatch(gctx, cfg, batch)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			mismatches = append(mismatches, found...)
			checked += len(batch)
			if cfg.Progress != nil {
				cfg.Progress(checked)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return mismatches, nil
}

func auditBatch(ctx context.Context, cfg AuditConfig, batch []Holding) ([]Mismatch, error) {
	var natives []common.Address
	var nativeIdx []int
	var tokens []TokenQuery
	var tokenIdx []int
	for i, h := range batch {
		if h.Asset == balidx.NativeAsset {
			natives, nativeIdx = append(natives, h.Account), append(nativeIdx, i)
		} else {
			tokens, tokenIdx = append(tokens, TokenQuery{Token: h.Asset, Holder: h.Account}), append(tokenIdx, i)
		}
	}
	chain := make([]uint256.Int, len(batch))
	if len(natives) > 0 {
		bals, err := cfg.Node.Balances(ctx, natives, cfg.Block)
		if err != nil {
			return nil, err
		}
		for j, i := range nativeIdx {
			chain[i] = bals[j]
		}
	}
	if len(tokens) > 0 {
		bals, errs, err := cfg.Node.TokenBalances(ctx, tokens, cfg.Block)
		if err != nil {
			return nil, err
		}
		for j, i := range tokenIdx {
			if errs[j] != nil {
				return nil, fmt.Errorf("balanceOf(%s) on %s: %w", tokens[j].Holder.Hex(), tokens[j].Token.Hex(), errs[j])
			}
			chain[i] = bals[j]
		}
	}
	var out []Mismatch
	for i, h := range batch {
		if chain[i] != h.Amount {
			asset := "native"
			if h.Asset != balidx.NativeAsset {
				asset = h.Asset.Hex()
			}
			out = append(out, Mismatch{Account: h.Account.Hex(), Asset: asset, Ours: h.Amount.Dec(), Chain: chain[i].Dec()})
		}
	}
	return out, nil
}
