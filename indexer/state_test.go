package indexer

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/holiman/uint256"
)

// The key space cut in ranges covers it from start, in order, once.
func TestSplitKeys(t *testing.T) {
	start := common.HexToHash("0x4000000000000000000000000000000000000000000000000000000000000000").Bytes()
	for _, from := range [][]byte{nil, start} {
		for _, n := range []int{1, 2, 4, 7, 32} {
			b := splitKeys(from, n)
			if len(b) != n || !bytes.Equal(b[0], from) {
				t.Fatalf("from %x, %d ranges: %d bounds, first %x", from, n, len(b), b[0])
			}
			for i := 1; i < len(b); i++ {
				if len(b[i]) != 32 || bytes.Compare(b[i-1], b[i]) >= 0 {
					t.Fatalf("from %x, %d ranges: bound %d %x not after %x", from, n, i, b[i], b[i-1])
				}
			}
		}
	}
}

// Read in ranges at once, the state's pages come in key order, end with
// the one page without a next key, and hold every account once: the same
// as read one page after another.
func TestReadStateInRanges(t *testing.T) {
	alloc := types.GenesisAlloc{}
	for i := range 200 {
		alloc[common.BigToAddress(uint256.NewInt(uint64(i+1)<<50).ToBig())] = types.Account{Balance: uint256.NewInt(uint64(i + 1)).ToBig()}
	}
	chain, err := devchain.New(alloc, common.Address{0xc0}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	ctx := context.Background()
	head, err := chain.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	node := NewNode(chain.RPC)
	var want []StateAccount // one page after another, as the node gives them
	for start := []byte(nil); ; {
		p, err := node.AccountRange(ctx, head.Hash(), start, MaxAccountPage)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p.Accounts...)
		if p.Next == nil {
			break
		}
		start = p.Next
	}
	for _, workers := range []int{1, 3, 8} {
		r := StateReader{Node: node, Page: 7, Workers: workers}
		pages := make(chan AccountPage)
		done := make(chan error, 1)
		go func() { done <- r.Read(ctx, head.Hash(), nil, pages) }()
		var got []StateAccount
		var last AccountPage
		n := 0
		for p := range pages {
			if n > 0 && last.Next == nil {
				t.Fatalf("%d workers: a page after the last", workers)
			}
			for _, a := range p.Accounts { // within [the previous page's next, this page's next)
				if n > 0 && bytes.Compare(a.Key[:], last.Next) < 0 || p.Next != nil && bytes.Compare(a.Key[:], p.Next) >= 0 {
					t.Fatalf("%d workers: page %d holds key %s outside [%x, %x)", workers, n, a.Key, last.Next, []byte(p.Next))
				}
			}
			got = append(got, p.Accounts...)
			last, n = p, n+1
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if last.Next != nil || len(got) != len(want) {
			t.Fatalf("%d workers: %d accounts in %d pages (last next %x), want %d", workers, len(got), n, last.Next, len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%d workers: account %d is %s, want %s", workers, i, got[i].Address, want[i].Address)
			}
		}
		t.Logf("%d workers: %d accounts in %d pages", workers, len(got), n)
	}
}

// On a terminal the seed's progress is a bar naming the block, the
// accounts read and their rate; elsewhere it is log lines.
func TestSeedProgress(t *testing.T) {
	var term, logs bytes.Buffer
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { clock = clock.Add(4 * time.Second); return clock }
	half := common.HexToHash("0x8000000000000000000000000000000000000000000000000000000000000000").Bytes()
	bar := newSeedProgress(slog.New(slog.NewTextHandler(&logs, nil)), now, 7, &term)
	bar.page(256, half)
	bar.done()
	if s := term.String(); !strings.Contains(s, "seeding block 7: 256 accounts") || !strings.Contains(s, "100%") {
		t.Fatalf("bar: %q", s)
	}
	lines := newSeedProgress(slog.New(slog.NewTextHandler(&logs, nil)), now, 7, nil)
	for range 4 {
		lines.page(256, half)
	}
	lines.done()
	if s := logs.String(); !strings.Contains(s, "msg=seeding") || !strings.Contains(s, "done=50.0%") || !strings.Contains(s, "msg=seeded") {
		t.Fatalf("log lines: %s", s)
	}
}
