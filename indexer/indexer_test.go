package indexer_test

import (
	"context"
	"log/slog"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"github.com/nats-io/nats.go/jetstream"
)

func mustJetStream(tb testing.TB) (jetstream.JetStream, jetstream.Stream, *events.StatusBoard) {
	tb.Helper()
	srv, err := events.StartEmbedded(events.EmbeddedConfig{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	nc, err := events.Connect(srv.URL(), "test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	s, err := events.EnsureStream(ctx, js, events.StreamConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := events.NewStatusBoard(ctx, js, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return js, s, b
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
func checkFor(tb testing.TB, total time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %v", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeltasMatchChain folds every published delta into balances and
// compares each with the chain's own answer at the last published block.
func TestDeltasMatchChain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	demo := mustDemo(t)
	js, stream, board := mustJetStream(t)
	ix, err := indexer.New(ctx, indexer.Config{
		Node: indexer.NewNode(demo.Chain.RPC), JS: js, Stream: stream, Board: board,
		Policy: events.Policy{Confirmations: 2}, PollInterval: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	for range 30 {
		if _, err := demo.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	head, err := demo.Chain.Client.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last *events.BlockDelta
	checkFor(t, 30*time.Second, func() error {
		last, _, err = events.LastDelta(ctx, stream, devchain.ChainID)
		if err != nil {
			return err
		}
		if last == nil || last.Number != head-2 {
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
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		d, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Changes {
			k := key{c.Account, c.Asset}
			if have := got[k]; have != c.Pre {
				t.Fatalf("block %d %s/%s: pre %s, previous post %s", d.Number, c.Account, c.Asset, c.Pre.Dec(), have.Dec())
			}
			got[k] = c.Post
		}
	}
	at := new(big.Int).SetUint64(last.Number)
	tokens := 0
	for k, v := range got {
		var want *big.Int
		if k.asset == events.NativeAsset {
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
	if len(got) < 20 || tokens < 10 {
		t.Fatalf("too little traffic to mean anything: %d balances, %d of tokens", len(got), tokens)
	}
}

var errNotYet = errorString("not yet")

type errorString string

func (e errorString) Error() string { return string(e) }
