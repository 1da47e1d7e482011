package indexer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/ethereum/go-ethereum/common"
)

// Every account of the state at a block, page by page: the same set
// whatever the page size, in key order, each with the balance the chain
// gives it at that block, every account the chain knows of among them.
// readPages reads the pages of the state at block at from key start, one
// after another, as a seed with one worker does.
func readPages(tb testing.TB, node *indexer.Node, at common.Hash, start []byte, page int) []indexer.AccountPage {
	tb.Helper()
	out := make(chan indexer.AccountPage)
	done := make(chan error, 1)
	r := indexer.StateReader{Node: node, Page: page, Workers: 1}
	go func() { done <- r.Read(context.Background(), at, start, out) }()
	var pages []indexer.AccountPage
	for p := range out {
		pages = append(pages, p)
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return pages
}

func TestReadStateReadsTheWholeState(t *testing.T) {
	demo := mustDemo(t)
	ctx := context.Background()
	for range 5 {
		steps(t, demo, 1)
	}
	head, err := demo.Chain.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	node := indexer.NewNode(demo.Chain.RPC)
	read := func(max int) ([]indexer.StateAccount, int) {
		var all []indexer.StateAccount
		pages := 0
		for _, p := range readPages(t, node, head.Hash(), nil, max) {
			pages++
			if len(p.Accounts) > max {
				t.Fatalf("a page of %d, %d asked for", len(p.Accounts), max)
			}
			all = append(all, p.Accounts...)
		}
		return all, pages
	}
	small, pages := read(3)
	whole, _ := read(indexer.MaxAccountPage)
	if len(small) != len(whole) || pages < len(whole)/3 {
		t.Fatalf("%d accounts in %d pages of 3, %d in pages of %d", len(small), pages, len(whole), indexer.MaxAccountPage)
	}
	seen := map[common.Address]bool{}
	for i, a := range small {
		if i > 0 && bytes.Compare(small[i-1].Key[:], a.Key[:]) >= 0 {
			t.Fatalf("keys out of order at %d", i)
		}
		if a != whole[i] {
			t.Fatalf("account %d differs between page sizes: %+v, %+v", i, a, whole[i])
		}
		want, err := demo.Chain.Client.BalanceAt(ctx, a.Address, head.Number)
		if err != nil {
			t.Fatal(err)
		}
		if want.Cmp(a.Balance.ToBig()) != 0 {
			t.Errorf("%s: %s read, the chain says %s", a.Address, a.Balance.Dec(), want)
		}
		seen[a.Address] = true
	}
	for _, h := range demo.Holders() { // a holder of tokens only may have no account
		if b, err := demo.Chain.Client.BalanceAt(ctx, h, head.Number); err != nil || b.Sign() > 0 && !seen[h] {
			t.Errorf("holder %s of %v wei (%v) not among the %d accounts", h, b, err, len(small))
		}
	}
	for a := range demo.Chain.Genesis().Alloc {
		if !seen[a] {
			t.Errorf("genesis account %s not among the %d accounts", a, len(small))
		}
	}
	t.Logf("%d accounts at block %d, %d pages of 3", len(small), head.Number, pages)
	// Resuming from a page's next key reads the rest, as from the start.
	var rest []indexer.StateAccount
	first, err := node.AccountRange(ctx, head.Hash(), nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range readPages(t, node, head.Hash(), first.Next, 3) {
		rest = append(rest, p.Accounts...)
	}
	if len(first.Accounts)+len(rest) != len(whole) || rest[0] != whole[3] {
		t.Fatalf("resumed: %d + %d accounts, want %d", len(first.Accounts), len(rest), len(whole))
	}
	if _, err := node.AccountRange(ctx, head.Hash(), nil, indexer.MaxAccountPage+1); err == nil {
		t.Fatal("a page over the node's maximum was asked for")
	}
}

// A token list naming an address without a contract at the seed's block
// stops the start with the address and the fix, before anything of the
// token is published.
func TestSeedRefusesATokenWithoutContract(t *testing.T) {
	demo := mustDemo(t)
	steps(t, demo, 3)
	head, err := demo.Chain.Client.BlockNumber(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream, board := mustLog(t)
	typo := common.HexToAddress("0x00000000000000000000000000000000000070b0")
	ix, err := indexer.New(context.Background(), indexer.Config{
		Node: indexer.NewNode(demo.Chain.RPC), Events: stream, Board: board, Policy: balidx.Policy{Confirmations: 1},
		StartBlock: head - 1, Seed: true, SeedTokens: []indexer.SeedToken{{Contract: demo.Token}, {Contract: typo}},
		PollInterval: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = ix.Run(ctx)
	if !errors.Is(err, indexer.ErrUnseedableToken) || !strings.Contains(err.Error(), typo.Hex()) || !strings.Contains(err.Error(), "no contract") {
		t.Fatalf("got %v, want ErrUnseedableToken naming %s", err, typo.Hex())
	}
	last, _, err := stream.Last(context.Background(), devchain.ChainID)
	if err != nil || last == nil || last.Seed == nil || last.Seed.Token == nil || *last.Seed.Token != demo.Token || last.Seed.Last {
		t.Fatalf("the stream ends with %+v (%v): want the first token's last page, the seed not ended", last, err)
	}
}
