package query

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

// A snapshot seeded at block 7 with tokA: the native coin and tokA are
// fully covered, tokB (first seen after the seed) is partial. An answer
// filtered by token says which of those asked for are full (an unfiltered
// one vouches for no absent token), and the status lists them.
func TestTokenCoverageInAnswers(t *testing.T) {
	store, snap := openSnapshot(t)
	u := func(v uint64) uint256.Int { return *uint256.NewInt(v) }
	seed := balidx.Block{Number: 7, Hash: common.Hash{7}, Timestamp: uint64(time.Now().Unix())}
	ta, list, one := tokA, common.Hash{0xee}, u(1) // tokA's amounts seeded add up to its total supply
	for _, d := range []balidx.Delta{
		{ChainID: 1, Block: seed, LastSeq: 1, Seed: &balidx.SeedPage{Page: 1, Tokens: list},
			Changes: []balidx.Change{{Account: holder, Asset: balidx.NativeAsset, Post: u(5)}}},
		{ChainID: 1, Block: seed, LastSeq: 2, Seed: &balidx.SeedPage{Page: 2, Tokens: list, Token: &ta, LogsFrom: 8, TotalSupply: &one, Last: true},
			Changes: []balidx.Change{{Account: holder, Asset: tokA, Post: u(1)}}},
		{ChainID: 1, Block: balidx.Block{Number: 8, Hash: common.Hash{8}, ParentHash: seed.Hash, Timestamp: uint64(time.Now().Unix())}, LastSeq: 3,
			Changes: []balidx.Change{{Account: holder, Asset: tokB, Pre: u(2), Post: u(3)}}},
	} {
		res, err := store.Apply([]balidx.Delta{d})
		if err != nil {
			t.Fatal(err)
		}
		snap.OnApplied(res)
	}
	s, err := New(Config{Snapshot: snap, Clients: &Clients{Anonymous: Anonymous{Enabled: true, Rate: 1e6, Burst: 1e6}}})
	if err != nil {
		t.Fatal(err)
	}
	none, onlyA := `,"coverage":{"full_tokens":[]}}`, `,"coverage":{"full_tokens":["`+tokA.Hex()+`"]}}`
	for target, want := range map[string]string{
		"/v1/balances/" + holder.Hex():                                                   none, // unfiltered: no absent token vouched for
		"/v1/balances/" + holder.Hex() + "?limit=1":                                      none,
		"/v1/balances/" + holder.Hex() + "?token=" + tokB.Hex():                          none,
		"/v1/balances/" + holder.Hex() + "?token=" + tokB.Hex() + "&token=" + tokA.Hex(): onlyA,
		"/v1/balances/" + never.Hex() + "?token=" + tokA.Hex() + "&token=" + tokA.Hex():  onlyA,
	} {
		if a := do(t, s, "GET", target, ""); a.status != 200 || !strings.HasSuffix(a.raw, want) {
			t.Errorf("%s: got %d %s, want it to end with %s", target, a.status, a.raw, want)
		}
	}
	if a := do(t, s, "POST", "/v1/balances?token="+tokA.Hex(), `{"addresses":["`+holder.Hex()+`"]}`); a.status != 200 || !strings.HasSuffix(a.raw, onlyA) {
		t.Errorf("batch: got %s", a.raw)
	}
	a := do(t, s, "GET", "/v1/status", "")
	c, _ := a.body["coverage"].(map[string]any)
	if full, _ := c["full_tokens"].([]any); c["from_block"] != 7.0 || c["full"] != true || c["full_tokens_count"] != 1.0 || len(full) != 1 ||
		fmt.Sprint(full[0]) != fmt.Sprint(map[string]any{"contract": tokA.Hex(), "from_block": 7.0}) {
		t.Fatalf("status coverage: %s", a.raw)
	}
	// JSON-RPC: a holder never seen is 0 of the seeded token, unknown of the other.
	if a := rpc(t, s, call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(never)}, "latest")); a.result() != word(0) {
		t.Errorf("seeded token, holder never seen: %s", a.raw)
	}
	if a := rpc(t, s, call("eth_call", map[string]any{"to": tokB, "data": balanceOfData(never)}, "latest")); !strings.Contains(a.result(), "coverage is partial") {
		t.Errorf("partial token, holder never seen: %s", a.raw)
	}
}
