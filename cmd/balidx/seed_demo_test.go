package main

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum/common"
)

// On the simulated chain, every demo token seeded at block N: the coverage
// each token is given is honest. The plain and the fee-on-transfer tokens'
// holders all appear in Transfer logs: their coverage is full, and every
// holder's amount, an absent one as 0, is the chain's. The collector
// token's fees reach the collector without a log: the seeded amounts fall
// short of its total supply, so its coverage stays partial. The
// interest-bearing token is withheld by its seed. Whatever is served is the
// chain's amount.
func TestSeedOnTheSimulatedChain(t *testing.T) {
	ctx := context.Background()
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 5, Seed: 17, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	steps(t, demo, 40)
	seedAt, err := demo.Chain.Client.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	for _, tok := range demo.Tokens() {
		fmt.Fprintln(&list, tok.Hex())
	}
	file := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(file, []byte(list.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBalidx(t, "run", "--rpc", demo.Chain.WSEndpoint(), "--data", t.TempDir(), "--confirmations", "2",
		"--start-block", strconv.FormatUint(seedAt, 10), "--seed", "--seed-tokens", file, "--seed-log-span", "5")
	defer b.stop(t)
	steps(t, demo, 6)
	st := b.waitCaughtUp(t, demo, 2)

	collector := demo.Odd[devchain.CollectorToken]
	fees, err := demo.BalanceOf(ctx, collector, demo.Collector, new(big.Int).SetUint64(seedAt))
	if err != nil {
		t.Fatal(err)
	}
	if fees.Sign() == 0 {
		t.Fatal("the collector holds no fee at the seed's block: the test shows nothing")
	}
	full := fullTokenSet(st)
	if !full[demo.Token] || !full[demo.FeeToken] || full[collector] {
		t.Fatalf("full tokens %v: want the plain and the fee token, not the collector token", st.Coverage.FullTokens)
	}
	if len(st.WithheldTokens) != 1 || st.WithheldTokens[0].Contract != demo.Odd[devchain.InterestToken].Hex() || st.WithheldTokens[0].Reason != balidx.TimeDependent {
		t.Fatalf("withheld %+v: want the interest-bearing token", st.WithheldTokens)
	}
	checkServedAgainstChain(t, demo, b.http, st, full)
}

// checkServedAgainstChain compares every demo holder's served token amounts
// with the chain at the answer's block: a listed amount must be the
// chain's; an absent one must be 0 when the token's coverage is full.
func checkServedAgainstChain(t *testing.T, demo *devchain.Demo, addr string, st query.Status, full map[common.Address]bool) {
	t.Helper()
	holders := demo.Holders()
	var req struct {
		Addresses []string `json:"addresses"`
	}
	for _, h := range holders {
		req.Addresses = append(req.Addresses, h.Hex())
	}
	var ans batchAnswer
	if err := postJSON("http://"+addr+"/v1/balances", req, &ans); err != nil {
		t.Fatal(err)
	}
	at := new(big.Int).SetUint64(ans.Block.Number)
	var exact, zeros, unknown int
	for i, h := range holders {
		served := map[common.Address]string{}
		for _, tok := range ans.Balances[i].Tokens {
			served[common.HexToAddress(tok.Contract)] = tok.Amount
		}
		for _, tok := range demo.Tokens() {
			if slices.ContainsFunc(st.WithheldTokens, func(w query.StatusWithheld) bool { return w.Contract == tok.Hex() }) {
				continue
			}
			want, err := demo.BalanceOf(context.Background(), tok, h, at)
			if err != nil {
				t.Fatal(err)
			}
			have, listed := served[tok]
			switch {
			case listed && have != want.String():
				t.Errorf("%s token %s at block %d: served %s, chain %s", h.Hex(), tok.Hex(), at, have, want)
			case listed:
				exact++
			case full[tok] && want.Sign() != 0:
				t.Errorf("%s token %s at block %d: absent from a fully covered token, chain %s", h.Hex(), tok.Hex(), at, want)
			case full[tok]:
				zeros++
			default:
				unknown++ // partial: the answer does not vouch for it
			}
		}
	}
	if exact < 10 || zeros == 0 {
		t.Fatalf("%d amounts served, %d vouched zeros: too few to mean anything", exact, zeros)
	}
	t.Logf("block %d: %d served amounts equal the chain, %d absent amounts of full tokens are 0 on the chain, %d of partial tokens not vouched for", at, exact, zeros, unknown)
}

// fullTokenSet is the set of tokens whose coverage st says is full.
func fullTokenSet(st query.Status) map[common.Address]bool {
	full := map[common.Address]bool{}
	for _, c := range st.Coverage.FullTokens {
		full[common.HexToAddress(c.Contract)] = true
	}
	return full
}
