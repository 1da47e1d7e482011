package storage

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	bolt "go.etcd.io/bbolt"
)

func TestReadAmounts(t *testing.T) {
	carol := common.HexToAddress("0x00000000000000000000000000000000000ca401")
	tokB := common.HexToAddress("0x00000000000000000000000000000000000000bb")
	never := common.HexToAddress("0x00000000000000000000000000000000000000cc")
	for _, full := range []bool{true, false} {
		s := mustStore(t, 1)
		first := uint64(5)
		if full {
			first = 0
		}
		blocks := []balidx.Delta{
			blk(first, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(100)}),
			blk(first+1, 2,
				balidx.Change{Account: bob, Asset: tokA, Post: u(7)},
				balidx.Change{Account: carol, Asset: tokA, Post: u(3)},
				balidx.Change{Account: bob, Asset: tokB, Post: u(1)}),
			blk(first+2, 3, balidx.Change{Account: carol, Asset: tokA, Pre: u(3), Post: u(0)}),
		}
		blocks[2].Withheld = []balidx.Withheld{{Asset: tokB, Reason: balidx.TimeDependent}}
		if _, err := s.Apply(blocks); err != nil {
			t.Fatal(err)
		}
		q := []Holding{
			{alice, balidx.NativeAsset}, {bob, balidx.NativeAsset}, {bob, tokA}, {carol, tokA},
			{alice, tokA}, {alice, never}, {bob, tokB},
		}
		out := make([]Amount, len(q))
		m, err := s.ReadAmounts(q, out)
		if err != nil {
			t.Fatal(err)
		}
		bobNative := AmountNotIndexed // only a token entry of bob's was seen
		if full {
			bobNative = AmountExact
		}
		want := []struct {
			status AmountStatus
			value  uint64
		}{
			{AmountExact, 100}, {bobNative, 0}, {AmountExact, 7}, {AmountExact, 0},
			{AmountHolderUnknown, 0}, {AmountTokenNotIndexed, 0}, {AmountWithheld, 0},
		}

		for i, w := range want {
			if out[i].Status != w.status || out[i].Value.Uint64() != w.value {
				t.Errorf("full %v, %v: got status %d value %s, want %d %d", full, q[i], out[i].Status, out[i].Value.Dec(), w.status, w.value)
			}
		}
		if out[6].Withheld.Reason != balidx.TimeDependent || out[6].Withheld.Since != first+2 {
			t.Errorf("withheld token: got %+v", out[6].Withheld)
		}
		if m.Trusted.Number != first+2 {
			t.Errorf("read at block %d, want %d", m.Trusted.Number, first+2)
		}
	}
}

// A file written before the token registry gets one from its balances
// when it is opened for writing.
func TestTokenRegistryMadeForOlderFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.db")
	s, err := Open(Config{Path: path, ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]balidx.Delta{blk(0, 1, balidx.Change{Account: bob, Asset: tokA, Post: u(7)})}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketTokens) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(Config{Path: path, ChainID: 1}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([]Amount, 1)
	if _, err := s.ReadAmounts([]Holding{{bob, tokA}}, out); err != nil {
		t.Fatal(err)
	}
	if out[0].Status != AmountExact || out[0].Value.Uint64() != 7 {
		t.Fatalf("got %+v", out[0])
	}
}

// A seed arrives page by page, each in its own transaction: nothing is
// trusted until the last page, which makes the seed's block trusted with
// the native coin's coverage full; pages out of order, or a block before
// the seed ends, are refused; redelivered pages change nothing.
func TestSeedPages(t *testing.T) {
	s := mustStore(t, 1)
	seedBlock := balidx.Block{Number: 100, Hash: common.Hash{0xaa}, ParentHash: common.Hash{0xa9}}
	page := func(n uint64, seq uint64, last bool, changes ...balidx.Change) balidx.Delta {
		p := &balidx.SeedPage{Page: n, Last: last}
		if !last {
			p.Next = common.Hash{byte(n)}.Bytes()
		}
		return balidx.Delta{ChainID: 1, Block: seedBlock, Seed: p, Changes: changes, LastSeq: seq}
	}
	carol := common.HexToAddress("0x00000000000000000000000000000000000ca401")
	p1 := page(1, 1, false, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(5)})
	p2 := page(2, 2, false, balidx.Change{Account: bob, Asset: balidx.NativeAsset, Post: u(6)})
	p3 := page(3, 3, true, balidx.Change{Account: carol, Asset: balidx.NativeAsset, Post: u(7)})
	if _, err := s.Apply([]balidx.Delta{p2}); !errors.Is(err, ErrDiscontinuity) {
		t.Fatalf("page 2 first: %v", err)
	}
	res, err := s.Apply([]balidx.Delta{p1})
	if err != nil || res.Meta.HasTrusted || !res.Meta.Seeding || res.Meta.SeedPage != 1 || res.Meta.Accounts != 1 {
		t.Fatalf("page 1: %+v %v", res.Meta, err)
	}
	if _, err := s.Read([]common.Address{alice}, make([]Balances, 1)); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("read while seeding: %v, want ErrNoSnapshot", err)
	}
	next := blk(101, 4)
	next.ParentHash = seedBlock.Hash
	if _, err := s.Apply([]balidx.Delta{next}); !errors.Is(err, ErrDiscontinuity) {
		t.Fatalf("a block before the seed's last page: %v", err)
	}
	if _, err := s.Apply([]balidx.Delta{p1, p2}); err != nil { // p1 again: skipped by its sequence
		t.Fatal(err)
	}
	if res, err = s.Apply([]balidx.Delta{p3, next}); err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	if !m.HasTrusted || m.Trusted.Number != 101 || m.Seeding || !m.CoverageFull || m.CoverageFrom != 100 || m.Accounts != 3 {
		t.Fatalf("after the last page and the next block: %+v", m)
	}
	out := make([]Amount, 2)
	if _, err := s.ReadAmounts([]Holding{{carol, balidx.NativeAsset}, {common.Address{9}, balidx.NativeAsset}}, out); err != nil ||
		out[0].Value.Uint64() != 7 || out[1].Status != AmountExact || !out[1].Value.IsZero() {
		t.Fatalf("after the seed: %+v %v (an account outside the seed holds 0: coverage is full)", out, err)
	}
	// The same state applied as one genesis-like block: the same digest.
	other := mustStore(t, 1)
	whole := balidx.Delta{ChainID: 1, Block: seedBlock, LastSeq: 1, Changes: append(append(p1.Changes, p2.Changes...), p3.Changes...)}
	if _, err := other.Apply([]balidx.Delta{whole}); err != nil {
		t.Fatal(err)
	}
	if om, _ := other.Meta(); om.Digest != m.Digest {
		t.Fatal("a seed's digest differs from the same balances applied at once")
	}
}

// A seed's token pages: a holder found again (a chunk of logs read again
// after a restart) restates the same amount and changes nothing, another
// amount is refused; the token's last page makes its coverage full when
// the amounts seeded add up to its total supply — an absent holder holds
// 0, and a later change of one must start from 0 — and a token whose
// amounts fall short of it (a holder without a Transfer log) stays
// partial.
func TestSeedTokenPages(t *testing.T) {
	s := mustStore(t, 1)
	seedBlock := balidx.Block{Number: 100, Hash: common.Hash{0xaa}, ParentHash: common.Hash{0xa9}}
	list := common.Hash{0xee}
	tokB := common.HexToAddress("0x00000000000000000000000000000000000000bb")
	page := func(n, seq uint64, p balidx.SeedPage, changes ...balidx.Change) balidx.Delta {
		p.Page, p.Tokens = n, list
		return balidx.Delta{ChainID: 1, Block: seedBlock, Seed: &p, Changes: changes, LastSeq: seq}
	}
	ta, tb := tokA, tokB
	nine, ten := u(9), u(10)
	carol := common.HexToAddress("0x00000000000000000000000000000000000ca401")
	pages := []balidx.Delta{
		page(1, 1, balidx.SeedPage{}, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(5)}),
		page(2, 2, balidx.SeedPage{Token: &ta, LogsFrom: 50}, balidx.Change{Account: bob, Asset: tokA, Post: u(7)}),
		page(3, 3, balidx.SeedPage{Token: &ta, LogsFrom: 101, TotalSupply: &nine},
			balidx.Change{Account: alice, Asset: tokA, Post: u(2)}, balidx.Change{Account: bob, Asset: tokA, Post: u(7)}),
		page(4, 4, balidx.SeedPage{Token: &tb, LogsFrom: 101, TotalSupply: &ten, Last: true}, balidx.Change{Account: carol, Asset: tokB, Post: u(4)}),
	}
	if _, err := s.Apply(pages[:2]); err != nil {
		t.Fatal(err)
	}
	differs := page(3, 3, balidx.SeedPage{Token: &ta, LogsFrom: 101}, balidx.Change{Account: bob, Asset: tokA, Post: u(8)})
	if _, err := s.Apply([]balidx.Delta{differs}); !errors.Is(err, ErrPreMismatch) {
		t.Fatalf("a holder restated with another amount: %v, want ErrPreMismatch", err)
	}
	res, err := s.Apply(pages[2:])
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Meta; !m.HasTrusted || m.FullTokens != 1 || m.TokenBalances != 3 {
		t.Fatalf("after the seed: %+v", m)
	}
	if _, seeded, err := s.FullTokens(); err != nil || len(seeded) != 1 || seeded[0] != (FullToken{tokA, 100}) {
		t.Fatalf("seeded tokens: %v %v", seeded, err)
	}
	next := blk(101, 5, balidx.Change{Account: carol, Asset: tokB, Pre: u(4), Post: u(5)})
	next.ParentHash = seedBlock.Hash
	if _, err := s.Apply([]balidx.Delta{next}); err != nil {
		t.Fatal(err)
	}
	q := []Holding{{bob, tokA}, {carol, tokA}, {carol, tokB}, {alice, tokB}}
	out := make([]Amount, len(q))
	if _, err := s.ReadAmounts(q, out); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		status AmountStatus
		value  uint64
	}{{AmountExact, 7}, {AmountExact, 0}, {AmountExact, 5}, {AmountHolderUnknown, 0}} {
		if out[i].Status != want.status || out[i].Value.Uint64() != want.value {
			t.Errorf("%v: got %d %s, want %d %d", q[i], out[i].Status, out[i].Value.Dec(), want.status, want.value)
		}
	}
	// A change of a seeded token from an amount the seed says is 0: the
	// token's amounts were not exact, and it is withheld.
	wrong := blk(102, 6, balidx.Change{Account: carol, Asset: tokA, Pre: u(1), Post: u(2)})
	wrong.ParentHash = next.Hash
	res, err = s.Apply([]balidx.Delta{wrong})
	if err != nil || len(res.NewlyWithheld) != 1 || res.NewlyWithheld[0].Contract != tokA || res.NewlyWithheld[0].Reason != balidx.Inconsistent {
		t.Fatalf("a seeded token's change from a pre the seed did not state: %+v %v", res.NewlyWithheld, err)
	}
}

// A block may name tokens fully covered from it on (their first block
// named every holder): an absent holder of one is then a 0.
func TestFullTokensOfABlock(t *testing.T) {
	s := mustStore(t, 1)
	b := blk(5, 1, balidx.Change{Account: bob, Asset: tokA, Post: u(7)})
	b.FullTokens = []common.Address{tokA}
	res, err := s.Apply([]balidx.Delta{b})
	if err != nil || res.Meta.FullTokens != 1 {
		t.Fatalf("%+v %v", res.Meta, err)
	}
	if _, full, err := s.FullTokens(); err != nil || len(full) != 1 || full[0] != (FullToken{tokA, 5}) {
		t.Fatalf("full tokens %v %v", full, err)
	}
	out := make([]Amount, 2)
	if _, err := s.ReadAmounts([]Holding{{bob, tokA}, {alice, tokA}}, out); err != nil || out[0].Value.Uint64() != 7 || out[1].Status != AmountExact || !out[1].Value.IsZero() {
		t.Fatalf("amounts %+v %v", out, err)
	}
}
