package main

import (
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
)

// The rate of a token seed (make bench-seed): BALIDX_SEED_HOLDERS holders
// of one token on a geth --dev, each given some by a Transfer of its own,
// then the whole seed of the token at the last block — its logs scanned,
// every holder's balanceOf read, published, applied, served — timed twice in
// the same run: balances read through Multicall3's aggregate3 (256 a call),
// then in JSON-RPC batches of 100 eth_call, the baseline.
func TestSeedHoldersRate(t *testing.T) {
	gethBin, n := os.Getenv("BALIDX_GETH"), os.Getenv("BALIDX_SEED_HOLDERS")
	if gethBin == "" || n == "" {
		t.Skip("BALIDX_GETH and BALIDX_SEED_HOLDERS are not set: `make bench-seed` runs this measure")
	}
	holders, err := strconv.Atoi(n)
	if err != nil || holders < 1000 {
		t.Fatalf("BALIDX_SEED_HOLDERS=%q: want a number ≥ 1000", n)
	}
	g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir(), onDemand: true}
	g.start(t)
	t.Cleanup(func() { g.stop(t) })
	rc, eth, dev := dialGeth(t, g.url())
	sender := newDevSender(t, rc, eth, dev)
	token := sender.mined(t, sender.call(t, nil, nil, devchain.TokenDeployment("Many Holders", 0))).ContractAddress
	multicall := sender.mined(t, sender.call(t, nil, nil, devchain.MulticallDeployment())).ContractAddress
	if r := sender.mined(t, sender.call(t, &token, nil, devchain.TokenCall("mint", multicall, new(big.Int).Lsh(big.NewInt(1), 200)))); r.Status != 1 {
		t.Fatal("the mint reverted")
	}
	start := time.Now()
	var last common.Hash
	const perTx = 40 // ~30k gas a transfer to a new holder (100 a transaction reverted on geth --dev)
	for lo := 0; lo < holders; lo += perTx {
		var calls []devchain.Call3
		for i := lo; i < min(lo+perTx, holders); i++ {
			h := common.BytesToAddress(crypto.Keccak256(big.NewInt(int64(i)).Bytes())[:20])
			calls = append(calls, devchain.Call3{Target: token, CallData: devchain.TokenCall("transfer", h, big.NewInt(int64(i+1)))})
		}
		last = sender.send(t, map[string]any{"to": multicall, "data": hexutil.Bytes(devchain.Aggregate3(calls)), "gas": hexutil.Uint64(5_000_000)})
	}
	r := sender.mined(t, last)
	if r.Status != 1 {
		t.Fatalf("the last transfers reverted (gas used %d)", r.GasUsed)
	}
	seedAt := r.BlockNumber.Uint64()
	sender.mined(t, sender.call(t, &dev, big.NewInt(0), nil)) // trusts seedAt
	t.Logf("%d holders given tokens in %s, up to block %d", holders, time.Since(start).Round(time.Millisecond), seedAt)
	list := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(list, []byte(token.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rate := map[string]float64{}
	for _, way := range []struct{ name, multicall string }{{"Multicall3 aggregate3", multicall.Hex()}, {"JSON-RPC batches", "0x000000000000000000000000000000000000dEaD"}} {
		began := time.Now()
		b := startBalidx(t, "run", "--rpc", g.url(), "--data", t.TempDir(), "--confirmations", "1",
			"--start-block", strconv.FormatUint(seedAt, 10), "--seed", "--seed-tokens", list, "--multicall3", way.multicall)
		var st query.Status
		poll.Until(t, 30*time.Minute, func() error {
			b.checkRunning(t)
			if err := getJSON("http://"+b.http+"/v1/status", &st); err != nil {
				return err
			}
			return nil
		})
		took := time.Since(began)
		if st.Snapshot.TokenBalances != uint64(holders)+1 || len(st.Coverage.FullTokens) != 1 { // the Multicall holds the rest
			t.Fatalf("%s: %d token balances, full tokens %v: want %d and the token full", way.name, st.Snapshot.TokenBalances, st.Coverage.FullTokens, holders+1)
		}
		rate[way.name] = float64(holders) / took.Seconds()
		t.Logf("%s: %d holders seeded, start to served, in %s: %.0f holders a second", way.name, holders, took.Round(time.Millisecond), rate[way.name])
		b.stop(t)
	}
	t.Logf("Multicall3 ÷ JSON-RPC batches: %.2f", rate["Multicall3 aggregate3"]/rate["JSON-RPC batches"])
}
