package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/balidx/balidx"
	"github.com/holiman/uint256"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
)

// maxGenesisFile bounds a genesis file read into memory.
const maxGenesisFile = 1 << 30

// genesisChanges returns the genesis allocation as changes from zero: from
// the genesis file when one is given (checked against the node's block 0),
// otherwise listed by the node with debug_accountRange.
//
// Token balances written into genesis storage are not seeded: nothing names
// their holders. They appear once a Transfer log names them.
func genesisChanges(ctx context.Context, node *Node, file string, block0 *NodeBlock) ([]balidx.Change, error) {
	alloc := map[common.Address]uint256.Int{}
	if file != "" {
		g, err := readGenesis(file)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoGenesis, err)
		}
		if h := g.ToBlock().Hash(); h != block0.Hash {
			return nil, fmt.Errorf("%w: genesis file %s describes block 0 %s, the node's block 0 is %s", ErrWrongChain, file, h, block0.Hash)
		}
		for a, acc := range g.Alloc {
			if acc.Balance == nil {
				continue
			}
			var bal uint256.Int
			if acc.Balance.Sign() < 0 || bal.SetFromBig(acc.Balance) {
				return nil, fmt.Errorf("%w: genesis balance of %s out of range", ErrBadAnswer, a.Hex())
			}
			alloc[a] = bal
		}
	} else {
		var err error
		if alloc, err = accountRange(ctx, node, block0.Hash); err != nil {
			return nil, err
		}
	}
	var changes []balidx.Change
	for a, bal := range alloc {
		if !bal.IsZero() {
			changes = append(changes, balidx.Change{Account: a, Asset: balidx.NativeAsset, Post: bal})
		}
	}
	balidx.SortChanges(changes) // deterministic parts, and sequential inserts into bbolt
	return changes, nil
}

func readGenesis(file string) (*core.Genesis, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("genesis file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxGenesisFile+1))
	if err != nil {
		return nil, fmt.Errorf("genesis file %s: %w", file, err)
	}
	if len(data) > maxGenesisFile {
		return nil, fmt.Errorf("genesis file %s is larger than %d bytes", file, maxGenesisFile)
	}
	var g core.Genesis
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("genesis file %s: %w", file, err)
	}
	return &g, nil
}

// accountRange lists every account of block 0 as a seed reads a state.
func accountRange(ctx context.Context, node *Node, block0 common.Hash) (map[common.Address]uint256.Int, error) {
	out := map[common.Address]uint256.Int{}
	pages := make(chan AccountPage)
	done := make(chan error, 1)
	r := StateReader{Node: node, Page: MaxAccountPage, Workers: DefaultSeedWorkers}
	go func() { done <- r.Read(ctx, block0, nil, pages) }()
	for p := range pages {
		for _, a := range p.Accounts {
			out[a.Address] = a.Balance
		}
	}
	err := <-done
	switch {
	case errors.Is(err, ErrNoPreimages), errors.Is(err, ErrNoDebugAPI), errors.Is(err, ErrBadAccountPage):
		return nil, fmt.Errorf("%w: %v (give the genesis file with --genesis, or start later with --start-block)", ErrNoGenesis, err)
	case err != nil:
		return nil, err // the node did not answer: tried again, as any block
	}
	return out, nil
}
