package query

import (
	"strconv"
	"sync"
	"testing"

	"github.com/balidx/balidx"

	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

// While blocks are applied, every answer must be exactly true at the block
// it names, whether it came from the Bloom filter, the cache or bbolt:
// block n sets holder's balance to 10·n.
func TestAnswersAreTrueAtTheirBlock(t *testing.T) {
	s, snap := mustServer(t, 0, Config{})
	store := snap.store
	const last = 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := do(t, s, "GET", "/v1/balances/"+holder.Hex(), "")
				n := uint64(a.body["block"].(map[string]any)["number"].(float64))
				want := "1000"
				if n >= 2 {
					want = strconv.FormatUint(10*n, 10)
				}
				if a.body["native"] != want {
					errs <- "block " + strconv.FormatUint(n, 10) + ": native " + a.body["native"].(string) + ", want " + want
					return
				}
			}
		}()
	}
	pre := *uint256.NewInt(1000)
	for n := uint64(2); n <= last; n++ {
		post := *uint256.NewInt(10 * n)
		res, err := store.Apply([]balidx.Delta{{ChainID: 1, LastSeq: n + 1,
			Block:   balidx.Block{Number: n, Hash: common.Hash{byte(n + 1), 1}, ParentHash: parentOf(n)},
			Changes: []balidx.Change{{Account: holder, Asset: balidx.NativeAsset, Pre: pre, Post: post}}}})
		if err != nil {
			t.Fatal(err)
		}
		snap.OnApplied(res)
		pre = post
	}
	close(stop)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
}

func parentOf(n uint64) common.Hash {
	if n == 2 {
		return common.Hash{2} // block 1 of mustServer
	}
	return common.Hash{byte(n), 1}
}
