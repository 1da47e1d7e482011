package storage

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/balidx/balidx"

	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

func hashOf(n uint64) common.Hash {
	var h common.Hash
	h[0] = 0xb1
	binary.BigEndian.PutUint64(h[24:], n)
	return h
}

func benchAccount(i int) common.Address {
	var a common.Address
	a[0], a[1], a[2], a[3] = 0xbe, byte(i>>16), byte(i>>8), byte(i)
	return a
}

// BenchmarkApply measures applying blocks of 1000 changes (native balances
// of random accounts among 100,000), fsync on: live, one block per
// transaction as the applier does at the head, and catch-up, batches of 50
// blocks in one transaction as it does behind the head.
func BenchmarkApply(b *testing.B) {
	b.Run("live", func(b *testing.B) { benchmarkApply(b, 1) })
	b.Run("catch-up", func(b *testing.B) { benchmarkApply(b, 50) })
}

func benchmarkApply(b *testing.B, blocksPerBatch int) {
	const accounts, perBlock = 100_000, 1000
	s := mustStore(b, 1)
	cur := make([]uint256.Int, accounts)
	genesis := make([]balidx.Change, accounts)
	for i := range genesis {
		cur[i] = *uint256.NewInt(1_000_000)
		genesis[i] = balidx.Change{Account: benchAccount(i), Asset: balidx.NativeAsset, Post: cur[i]}
	}
	if _, err := s.Apply([]balidx.Delta{{ChainID: 1, Block: balidx.Block{Number: 0, Hash: hashOf(0)}, Changes: genesis, LastSeq: 1}}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	number, seq := uint64(0), uint64(1)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		batch := make([]balidx.Delta, blocksPerBatch)
		for k := range batch {
			number++
			seq++
			touched := map[int]bool{}
			changes := make([]balidx.Change, 0, perBlock)
			for len(changes) < perBlock {
				i := rng.IntN(accounts)
				if touched[i] {
					continue
				}
				touched[i] = true
				post := *uint256.NewInt(rng.Uint64N(1 << 40))
				changes = append(changes, balidx.Change{Account: benchAccount(i), Asset: balidx.NativeAsset, Pre: cur[i], Post: post})
				cur[i] = post
			}
			balidx.SortChanges(changes) // as published
			batch[k] = balidx.Delta{ChainID: 1, Block: balidx.Block{Number: number, Hash: hashOf(number), ParentHash: hashOf(number - 1)}, Changes: changes, LastSeq: seq}
		}
		b.StartTimer()
		if _, err := s.Apply(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*blocksPerBatch*perBlock)/b.Elapsed().Seconds(), "changes/s")
}
