package indexer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/events/eventstest"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// mustLog opens the event log and its status board until the test ends.
func mustLog(tb testing.TB) (*events.Log, *events.StatusBoard) {
	tb.Helper()
	l := eventstest.MustLog(tb)
	b, err := l.StatusBoard(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return l, b
}

func mustDemo(tb testing.TB) *devchain.Demo {
	tb.Helper()
	d, err := devchain.StartDemo(context.Background(), devchain.DemoConfig{Accounts: 8, Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// checkFor polls cond until it holds or the deadline passes.

// startIndexer runs an indexer on demo's chain until the test ends.
func startIndexer(tb testing.TB, demo *devchain.Demo, confirmations uint64) (*indexer.Indexer, *events.Log, *events.StatusBoard) {
	tb.Helper()
	return startIndexerWith(tb, demo, indexer.Config{Policy: balidx.Policy{Confirmations: confirmations}})
}

// startIndexerWith runs an indexer configured by cfg (node, NATS and logs
// filled in) until the test ends.
func startIndexerWith(tb testing.TB, demo *devchain.Demo, cfg indexer.Config) (*indexer.Indexer, *events.Log, *events.StatusBoard) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, board := mustLog(tb)
	cfg.Node, cfg.Events, cfg.Board = indexer.NewNode(demo.Chain.RPC), stream, board
	cfg.PollInterval = 20 * time.Millisecond
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ix, err := indexer.New(ctx, cfg)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return ix, stream, board
}

// waitPublished waits until the stream's last block is number n.
func waitPublished(tb testing.TB, stream *events.Log, n uint64) *events.BlockDelta {
	tb.Helper()
	var last *events.BlockDelta
	poll.Until(tb, 30*time.Second, func() error {
		var err error
		if last, _, err = stream.Last(context.Background(), devchain.ChainID); err != nil {
			return err
		}
		if last == nil || last.Number != n {
			return fmt.Errorf("last published %v, want block %d", last, n)
		}
		return nil
	})
	return last
}

func steps(tb testing.TB, demo *devchain.Demo, n int) uint64 {
	tb.Helper()
	for range n {
		if _, err := demo.Step(context.Background()); err != nil {
			tb.Fatal(err)
		}
	}
	head, err := demo.Chain.Client.BlockNumber(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return head
}

func hashAt(tb testing.TB, demo *devchain.Demo, n uint64) common.Hash {
	tb.Helper()
	h, err := demo.Chain.Client.HeaderByNumber(context.Background(), new(big.Int).SetUint64(n))
	if err != nil {
		tb.Fatal(err)
	}
	return h.Hash()
}

// A reorg that replaces only untrusted blocks never reaches the stream:
// every published block is on the final canonical chain.
func TestShallowReorgIsNotPublished(t *testing.T) {
	demo := mustDemo(t)
	ix, stream, _ := startIndexer(t, demo, 3)
	head := steps(t, demo, 10)
	waitPublished(t, stream, head-3)
	if err := demo.Chain.Fork(hashAt(t, demo, head-2)); err != nil { // replaces head-1 and head
		t.Fatal(err)
	}
	for range 6 {
		demo.Chain.Commit()
	}
	newHead := head - 2 + 6
	if got := hashAt(t, demo, newHead); got == (common.Hash{}) {
		t.Fatal("no new head")
	}
	waitPublished(t, stream, newHead-3)
	for _, d := range eventstest.Deltas(t, stream, devchain.ChainID) {
		if want := hashAt(t, demo, d.Number); d.Hash != want {
			t.Fatalf("published block %d %s is not canonical (%s)", d.Number, d.Hash, want)
		}
	}
	if v := ix.Status().TrustViolation; v != nil {
		t.Fatalf("a reorg within the policy was reported as a violation: %+v", v)
	}
}

// A reorg deeper than the policy is a trust violation: publishing stops at
// the last block published before it, and the status names the block.
func TestDeepReorgIsATrustViolation(t *testing.T) {
	demo := mustDemo(t)
	reg := prometheus.NewRegistry()
	ix, stream, board := startIndexerWith(t, demo, indexer.Config{Policy: balidx.Policy{Confirmations: 1}, Metrics: reg})
	head := steps(t, demo, 10)
	published := waitPublished(t, stream, head-1)
	if err := demo.Chain.Fork(hashAt(t, demo, head-4)); err != nil { // replaces head-3 … head
		t.Fatal(err)
	}
	for range 8 {
		demo.Chain.Commit()
	}
	poll.Until(t, 30*time.Second, func() error {
		if ix.Status().TrustViolation == nil {
			return errNotYet
		}
		return nil
	})
	v := ix.Status().TrustViolation
	if v.Number != published.Number+1 || v.PublishedHash != published.Hash.Hex() {
		t.Fatalf("violation %+v: want block %d against published %s", v, published.Number+1, published.Hash)
	}
	if got := gauge(t, reg, "balidx_indexer_trust_violation"); got != 1 {
		t.Fatalf("balidx_indexer_trust_violation = %v, want 1", got)
	}
	// The board is written just after the indexer's own status.
	poll.Until(t, 10*time.Second, func() error {
		onBoard, err := board.Get(context.Background(), devchain.ChainID)
		if err != nil || onBoard.TrustViolation == nil || onBoard.TrustViolation.Number != v.Number {
			return fmt.Errorf("status board: got %+v, %v; want the violation", onBoard, err)
		}
		return nil
	})
	// The indexer keeps following the head, but publishes nothing more.
	now := steps(t, demo, 2)
	poll.Until(t, 30*time.Second, func() error {
		if ix.Status().Head < now {
			return errNotYet
		}
		return nil
	})
	last, _, err := stream.Last(context.Background(), devchain.ChainID)
	if err != nil || last.Number != published.Number || last.Hash != published.Hash {
		t.Fatalf("after the violation the stream ends with %+v, want block %d %s", last, published.Number, published.Hash)
	}
}

// TestDeltasMatchChain folds every published delta into balances and
// compares each with the chain's own answer at the last published block:
// every balance published, and every demo account's (and the fee
// collector's) balance of every token that is not withheld — the rebasing
// token rebased in the last block, the collector named in no log, the
// quiet token's mints. The interest-bearing token must be withheld.
func TestDeltasMatchChain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	demo := mustDemo(t)
	stream, board := mustLog(t)
	reg := prometheus.NewRegistry()
	ix, err := indexer.New(ctx, indexer.Config{
		Node: indexer.NewNode(demo.Chain.RPC), Events: stream, Board: board,
		Policy: balidx.Policy{Confirmations: 2}, PollInterval: 50 * time.Millisecond,
		Log:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	for range 5 { // the quiet token's owner holds it, unseen, for a few blocks
		demo.Chain.Commit()
	}
	for range 50 {
		if _, err := demo.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := demo.Rebase(ctx, 77); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Step(ctx); err != nil { // the rebase's block: the last one checked
		t.Fatal(err)
	}
	rebased, err := demo.Chain.Client.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps(t, demo, 2) // confirm it
	var last *events.BlockDelta
	poll.Until(t, 30*time.Second, func() error {
		last, _, err = stream.Last(ctx, devchain.ChainID)
		if err != nil {
			return err
		}
		if last == nil || last.Number != rebased {
			return errNotYet
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	type key struct{ account, asset common.Address }
	got := map[key]uint256.Int{}
	withheld := map[common.Address]balidx.Reason{}
	quietOwner := key{demo.Accounts[0], demo.Odd[devchain.QuietMintToken]}
	for _, d := range eventstest.Deltas(t, stream, devchain.ChainID) {
		for _, c := range d.Changes {
			if _, seen := got[quietOwner]; !seen && (key{c.Account, c.Asset}) == quietOwner {
				// First seen long after it started holding: the first word is
				// its whole balance before the block, not a partial sum.
				want, err := demo.BalanceOf(context.Background(), c.Asset, c.Account, new(big.Int).SetUint64(d.Number-1))
				if err != nil || want.Sign() == 0 || c.Pre.ToBig().Cmp(want) != 0 {
					t.Fatalf("block %d: the quiet token's owner first published with pre %s, chain %v (%v)", d.Number, c.Pre.Dec(), want, err)
				}
			}
		}
		for _, w := range d.Withheld {
			withheld[w.Asset] = w.Reason
		}
		for _, c := range d.Changes {
			k := key{c.Account, c.Asset}
			// A token holder's first word may be non-zero: a holder of the
			// quiet token is first seen at its first logged transfer.
			if have, seen := got[k]; (seen || c.Asset == balidx.NativeAsset) && have != c.Pre {
				t.Fatalf("block %d %s/%s: pre %s, previous post %s", d.Number, c.Account, c.Asset, c.Pre.Dec(), have.Dec())
			}
			if withheld[c.Asset] != "" {
				t.Fatalf("block %d: a change of %s, withheld since before", d.Number, c.Asset)
			}
			got[k] = c.Post
		}
	}
	if want := map[common.Address]balidx.Reason{demo.Odd[devchain.InterestToken]: balidx.TimeDependent}; fmt.Sprint(withheld) != fmt.Sprint(want) {
		t.Fatalf("withheld %v, want %v", withheld, want)
	}
	at := new(big.Int).SetUint64(last.Number)
	for _, a := range demo.Holders() {
		for _, tok := range demo.Tokens() {
			if _, published := got[key{a, tok}]; !published && withheld[tok] == "" {
				got[key{a, tok}] = uint256.Int{} // never published: it must be zero on the chain
			}
		}
	}
	tokens := 0
	for k, v := range got {
		var want *big.Int
		if k.asset == balidx.NativeAsset {
			want, err = demo.Chain.Client.BalanceAt(context.Background(), k.account, at)
		} else {
			tokens++
			want, err = demo.BalanceOf(context.Background(), k.asset, k.account, at)
		}
		if err != nil {
			t.Fatal(err)
		}
		if v.ToBig().Cmp(want) != 0 {
			t.Errorf("%s/%s at block %d: got %s, want %s", k.account, k.asset, last.Number, v.Dec(), want)
		}
	}
	if fee := got[key{demo.Collector, demo.Odd[devchain.CollectorToken]}]; fee.IsZero() {
		t.Errorf("the collector's fees were never published")
	}
	if len(got) < 20 || tokens < 10 {
		t.Fatalf("too little traffic to mean anything: %d balances, %d of tokens", len(got), tokens)
	}
	if n := counter(t, reg, "balidx_indexer_token_refreshes_total"); n < 1 {
		t.Errorf("refreshes: got %v, want the last block's rebase at least", n)
	}
	if n := counter(t, reg, "balidx_indexer_token_preimage_traces_total"); n < 1 {
		t.Errorf("preimage traces: got %v, want some (the collector's fees)", n)
	}
	t.Logf("%d blocks, %v node exchanges: %v profiles, %v preimage traces, %v refreshes of %v holders", last.Number, histogramCount(t, reg, "balidx_indexer_node_request_duration_seconds"),
		counter(t, reg, "balidx_indexer_token_profiles_total"), counter(t, reg, "balidx_indexer_token_preimage_traces_total"),
		counter(t, reg, "balidx_indexer_token_refreshes_total"), counter(t, reg, "balidx_indexer_token_refreshed_holders_total"))
}

// histogramCount reads how many observations a histogram of reg holds.
func histogramCount(tb testing.TB, reg *prometheus.Registry, name string) uint64 {
	tb.Helper()
	return family(tb, reg, name)[0].GetHistogram().GetSampleCount()
}

// counter reads a counter's value from reg, summed over its labels.
func counter(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	sum := 0.0
	for _, m := range family(tb, reg, name) {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// Tokens that cannot be kept exact are withheld, each for its reason, and
// the indexer goes on publishing everything else: a rebase that would need
// more holders re-read than the ceiling, balances that grow with time, a
// token whose balanceOf does not exist.
func TestTokensWithheld(t *testing.T) {
	ctx := context.Background()
	demo := mustDemo(t)
	_, stream, _ := startIndexerWith(t, demo, indexer.Config{Policy: balidx.Policy{Confirmations: 1}, MaxRefresh: 3})
	broken, err := demo.Deploy(ctx, devchain.Deployment(devchain.BrokenToken))
	if err != nil {
		t.Fatal(err)
	}
	steps(t, demo, 3)
	if err := demo.Call(ctx, broken, devchain.TokenCall("transfer", demo.Accounts[1], big.NewInt(5))); err != nil {
		t.Fatal(err)
	}
	if err := demo.Rebase(ctx, 10); err != nil { // the rebasing token has 8 holders: over the ceiling of 3
		t.Fatal(err)
	}
	head := steps(t, demo, 3)
	waitPublished(t, stream, head-1)
	withheld := map[common.Address]balidx.Reason{}
	since := map[common.Address]uint64{}
	for _, d := range eventstest.Deltas(t, stream, devchain.ChainID) {
		for _, w := range d.Withheld {
			withheld[w.Asset], since[w.Asset] = w.Reason, d.Number
		}
		for _, c := range d.Changes {
			if n, ok := since[c.Asset]; ok && d.Number >= n {
				t.Fatalf("block %d: a change of %s, withheld since block %d", d.Number, c.Asset, n)
			}
		}
	}
	want := map[common.Address]balidx.Reason{
		demo.Odd[devchain.InterestToken]: balidx.TimeDependent,
		demo.Odd[devchain.RebaseToken]:   balidx.TooManyHolders,
		broken:                           balidx.Unreadable,
	}
	if fmt.Sprint(withheld) != fmt.Sprint(want) {
		t.Fatalf("withheld %v, want %v", withheld, want)
	}
}

var errNotYet = errorString("not yet")

type errorString string

func (e errorString) Error() string { return string(e) }

// With --trust finalized, the indexer publishes up to the node's finalized
// block (the simulated beacon finalizes every 32 blocks) and no further.
func TestTrustFinalized(t *testing.T) {
	demo := mustDemo(t)
	_, stream, _ := startIndexerWith(t, demo, indexer.Config{Policy: balidx.Policy{Tag: "finalized"}})
	steps(t, demo, 40)
	fin, err := demo.Chain.Client.HeaderByNumber(context.Background(), big.NewInt(-3)) // rpc.FinalizedBlockNumber
	if err != nil {
		t.Fatal(err)
	}
	if fin.Number.Uint64() == 0 {
		t.Fatal("nothing finalized after 42 blocks")
	}
	waitPublished(t, stream, fin.Number.Uint64())
}

// The genesis file seeds block 0 with exactly the node's genesis
// allocation; a file of another chain is refused.
func TestGenesisFile(t *testing.T) {
	demo := mustDemo(t)
	data, err := json.Marshal(demo.Chain.Genesis())
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(good, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stream, _ := startIndexerWith(t, demo, indexer.Config{Policy: balidx.Policy{Confirmations: 1}, GenesisFile: good})
	steps(t, demo, 1)
	waitPublished(t, stream, 2)
	genesis := eventstest.Deltas(t, stream, devchain.ChainID)[0]
	want := 0
	for a, acc := range demo.Chain.Genesis().Alloc {
		if acc.Balance == nil || acc.Balance.Sign() == 0 {
			continue
		}
		want++
		found := false
		for _, c := range genesis.Changes {
			if c.Account == a && c.Post.ToBig().Cmp(acc.Balance) == 0 && c.Pre.IsZero() {
				found = true
			}
		}
		if !found {
			t.Errorf("genesis account %s with %s is not in block 0's delta", a, acc.Balance)
		}
	}
	if genesis.Number != 0 || len(genesis.Changes) != want {
		t.Fatalf("block 0 delta: number %d, %d changes; want 0, %d", genesis.Number, len(genesis.Changes), want)
	}

	other := demo.Chain.Genesis()
	other.ExtraData = []byte("another chain")
	data, _ = json.Marshal(other)
	bad := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, board := mustLog(t)
	ix, err := indexer.New(ctx, indexer.Config{Node: indexer.NewNode(demo.Chain.RPC), Events: s, Board: board,
		Policy: balidx.Policy{Confirmations: 1}, GenesisFile: bad, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Run(ctx); !errors.Is(err, indexer.ErrWrongChain) {
		t.Fatalf("genesis file of another chain: got %v, want ErrWrongChain", err)
	}
}

// --start-block N starts the stream at block N, whose pre amounts are the
// chain's balances before it.
func TestStartBlock(t *testing.T) {
	demo := mustDemo(t)
	steps(t, demo, 5)
	_, stream, _ := startIndexerWith(t, demo, indexer.Config{Policy: balidx.Policy{Confirmations: 1}, StartBlock: 4})
	head := steps(t, demo, 2)
	waitPublished(t, stream, head-1)
	first := eventstest.Deltas(t, stream, devchain.ChainID)[0]
	if first.Number != 4 {
		t.Fatalf("first published block %d, want 4", first.Number)
	}
	for _, c := range first.Changes {
		if c.Asset != balidx.NativeAsset {
			continue
		}
		want, err := demo.Chain.Client.BalanceAt(context.Background(), c.Account, big.NewInt(3))
		if err != nil {
			t.Fatal(err)
		}
		if c.Pre.ToBig().Cmp(want) != 0 {
			t.Fatalf("%s pre %s, chain at block 3 %s", c.Account, c.Pre.Dec(), want)
		}
	}
}

func gauge(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	return family(tb, reg, name)[0].GetGauge().GetValue()
}

// family is the metrics of the family name in reg.
func family(tb testing.TB, reg *prometheus.Registry, name string) []*dto.Metric {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	tb.Fatalf("no metric %s", name)
	return nil
}
