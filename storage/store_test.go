package storage

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/balidx/balidx"
	bolt "go.etcd.io/bbolt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

func mustStore(tb testing.TB, chainID uint64) *Store {
	tb.Helper()
	s, err := Open(Config{Path: filepath.Join(tb.TempDir(), "snapshot.db"), ChainID: chainID})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var (
	alice = common.HexToAddress("0x00000000000000000000000000000000000a11ce")
	bob   = common.HexToAddress("0x0000000000000000000000000000000000000b0b")
	tokA  = common.HexToAddress("0x00000000000000000000000000000000000000aa")
)

func u(v uint64) uint256.Int { return *uint256.NewInt(v) }

func blk(n uint64, seq uint64, changes ...balidx.Change) balidx.Delta {
	return balidx.Delta{ChainID: 1, Block: balidx.Block{Number: n, Hash: common.Hash{byte(n + 1)}, ParentHash: common.Hash{byte(n)}}, Changes: changes, LastSeq: seq}
}

func TestApplyAndRead(t *testing.T) {
	s := mustStore(t, 1)
	if _, err := s.Read([]common.Address{alice}, make([]Balances, 1)); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("read before any block: got %v, want ErrNoSnapshot", err)
	}
	genesis := blk(0, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(100)})
	b1 := blk(1, 2,
		balidx.Change{Account: alice, Asset: balidx.NativeAsset, Pre: u(100), Post: u(40)},
		balidx.Change{Account: bob, Asset: balidx.NativeAsset, Pre: u(0), Post: u(60)},
		balidx.Change{Account: bob, Asset: tokA, Pre: u(0), Post: u(7)},
	)
	res, err := s.Apply([]balidx.Delta{genesis, b1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != 2 || res.Meta.Trusted.Number != 1 || res.Meta.StreamSeq != 2 || !res.Meta.CoverageFull || res.Meta.Accounts != 2 || res.Meta.TokenBalances != 1 {
		t.Fatalf("got %+v", res)
	}
	out := make([]Balances, 3)
	m, err := s.Read([]common.Address{alice, bob, tokA}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Trusted.Number != 1 || out[0].Native != u(40) || out[1].Native != u(60) || len(out[1].Tokens) != 1 || out[1].Tokens[0].Amount != u(7) || out[2].Known {
		t.Fatalf("got %+v", out)
	}

	// Redelivery of an applied block changes nothing.
	again, err := s.Apply([]balidx.Delta{b1})
	if err != nil || again.Blocks != 0 || again.Meta.Digest != res.Meta.Digest {
		t.Fatalf("redelivery: got %+v, %v", again, err)
	}

	// Burning the token to zero drops it from answers and the count.
	b2 := blk(2, 3, balidx.Change{Account: bob, Asset: tokA, Pre: u(7), Post: u(0)})
	res2, err := s.Apply([]balidx.Delta{b2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read([]common.Address{bob}, out[:1]); err != nil || len(out[0].Tokens) != 0 || res2.Meta.TokenBalances != 0 {
		t.Fatalf("after burn: got %+v, %+v, %v", out[0], res2.Meta, err)
	}
}

func TestApplyRefuses(t *testing.T) {
	tests := []struct {
		name string
		next balidx.Delta
		want error
	}{
		{"pre mismatch", blk(1, 2, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Pre: u(99), Post: u(1)}), ErrPreMismatch},
		{"unknown account with non-zero pre under full coverage", blk(1, 2, balidx.Change{Account: bob, Asset: balidx.NativeAsset, Pre: u(5), Post: u(1)}), ErrPreMismatch},
		{"gap", blk(2, 2), ErrDiscontinuity},
		{"wrong parent", balidx.Delta{ChainID: 1, Block: balidx.Block{Number: 1, Hash: common.Hash{9}, ParentHash: common.Hash{7}}, LastSeq: 2}, ErrDiscontinuity},
		{"other chain", balidx.Delta{ChainID: 2, Block: balidx.Block{Number: 1, Hash: common.Hash{2}, ParentHash: common.Hash{1}}, LastSeq: 2}, ErrForeignSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustStore(t, 1)
			first, err := s.Apply([]balidx.Delta{blk(0, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(100)})})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Apply([]balidx.Delta{tt.next}); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			m, _ := s.Meta()
			if m != first.Meta {
				t.Fatalf("a refused block changed the snapshot: got %+v, want %+v", m, first.Meta)
			}
		})
	}
}

func TestPartialCoverageAcceptsFirstWord(t *testing.T) {
	s := mustStore(t, 1)
	res, err := s.Apply([]balidx.Delta{blk(5, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Pre: u(70), Post: u(50)})})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.CoverageFull || res.Meta.CoverageFrom != 5 {
		t.Fatalf("got coverage %+v, want partial from 5", res.Meta)
	}
	if _, err := s.Apply([]balidx.Delta{blk(6, 2, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Pre: u(70), Post: u(1)})}); !errors.Is(err, ErrPreMismatch) {
		t.Fatalf("a known account is checked even under partial coverage: got %v", err)
	}
}

// The digest depends only on the balances: two snapshots reaching the same
// balances through different histories agree, and any different amount differs.
func TestDigestDependsOnlyOnBalances(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	accounts := []common.Address{alice, bob, {3}, {4}}
	assets := []common.Address{balidx.NativeAsset, tokA}
	final := map[[2]common.Address]uint256.Int{}
	history := func(s *Store, steps int) Meta {
		cur := map[[2]common.Address]uint256.Int{}
		var blocks []balidx.Delta
		for n := 0; n < steps; n++ {
			var changes []balidx.Change
			for _, acc := range accounts {
				for _, as := range assets {
					k := [2]common.Address{acc, as}
					post := u(rng.Uint64N(3))
					if n == steps-1 {
						post = final[k]
					}
					changes = append(changes, balidx.Change{Account: acc, Asset: as, Pre: cur[k], Post: post})
					cur[k] = post
				}
			}
			blocks = append(blocks, blk(uint64(n), uint64(n+1), changes...))
		}
		res, err := s.Apply(blocks)
		if err != nil {
			t.Fatal(err)
		}
		return res.Meta
	}
	for _, acc := range accounts {
		for _, as := range assets {
			final[[2]common.Address{acc, as}] = u(rng.Uint64N(5))
		}
	}
	a := history(mustStore(t, 1), 3)
	b := history(mustStore(t, 1), 9)
	if a.Digest != b.Digest || a.TokenBalances != b.TokenBalances {
		t.Fatalf("same balances, different digests: %x vs %x", a.Digest, b.Digest)
	}
	final[[2]common.Address{bob, tokA}] = u(1000)
	sc := mustStore(t, 1)
	c := history(sc, 3)
	if c.Digest == a.Digest {
		t.Fatal("different balances, same digest")
	}

	// CheckDigest adds the balances up again; a doctored amount fails it.
	if _, err := sc.CheckDigest(); err != nil {
		t.Fatal(err)
	}
	if err := sc.db.Update(func(tx *bolt.Tx) error {
		v := u(999)
		return tx.Bucket(bucketBalances).Put(balanceKey(bob, tokA), v.Bytes())
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.CheckDigest(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("a doctored amount: %v, want ErrDigestMismatch", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot.db")
	s, err := Open(Config{Path: path, ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Config{Path: path, ChainID: 2}); !errors.Is(err, ErrForeignSnapshot) {
		t.Fatalf("other chain: got %v, want ErrForeignSnapshot", err)
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("this is not a bbolt file, not at all, not even close to one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: junk, ChainID: 1}); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("junk file: got %v, want ErrCorruptSnapshot", err)
	}
}

func TestCopyAndReadOnly(t *testing.T) {
	s := mustStore(t, 1)
	res, err := s.Apply([]balidx.Delta{
		blk(0, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(100)}, balidx.Change{Account: bob, Asset: tokA, Post: u(3)}),
		blk(1, 2, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Pre: u(100), Post: u(0)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, err := Open(Config{Path: path, ReadOnly: true, ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	m, err := c.ForEachBalance(func(account, asset common.Address, amount *uint256.Int) error {
		got = append(got, fmt.Sprintf("%x/%x=%s", account[18:], asset[18:], amount.Dec()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m != res.Meta || len(got) != 1 || got[0] != "0b0b/00aa=3" {
		t.Fatalf("copy: meta %+v (want %+v), balances %v (zero balances are skipped)", m, res.Meta, got)
	}
	if _, err := Open(Config{Path: path, ReadOnly: true, ChainID: 2}); !errors.Is(err, ErrForeignSnapshot) {
		t.Fatalf("read-only open of another chain: got %v", err)
	}
	if _, err := Open(Config{Path: filepath.Join(t.TempDir(), "missing.db"), ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
}

// A correction applies only to a snapshot at its From block, may move the
// trusted block to another branch, and later blocks continue from it.
func TestApplyCorrection(t *testing.T) {
	s := mustStore(t, 1)
	if _, err := s.Apply([]balidx.Delta{blk(0, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(100)}), blk(1, 2)}); err != nil {
		t.Fatal(err)
	}
	other := balidx.Block{Number: 1, Hash: common.Hash{0xee}, ParentHash: common.Hash{1}}
	wrongFrom := balidx.Delta{ChainID: 1, Block: other, From: &balidx.BlockRef{Number: 1, Hash: common.Hash{9}}, LastSeq: 3}
	if _, err := s.Apply([]balidx.Delta{wrongFrom}); !errors.Is(err, ErrDiscontinuity) {
		t.Fatalf("correction from another block: got %v", err)
	}
	fix := balidx.Delta{ChainID: 1, Block: other, From: &balidx.BlockRef{Number: 1, Hash: common.Hash{2}}, LastSeq: 3,
		Changes: []balidx.Change{{Account: alice, Asset: balidx.NativeAsset, Pre: u(100), Post: u(7)}}}
	res, err := s.Apply([]balidx.Delta{fix})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Trusted.Hash != other.Hash {
		t.Fatalf("trusted %+v after the correction", res.Meta.Trusted)
	}
	next := balidx.Delta{ChainID: 1, Block: balidx.Block{Number: 2, Hash: common.Hash{0xef}, ParentHash: other.Hash}, LastSeq: 4}
	if _, err := s.Apply([]balidx.Delta{next}); err != nil {
		t.Fatalf("the block after the correction: %v", err)
	}
}

// A commit that grows the file must not wait for the reads in progress: a
// remap of the file would, until they end.
func TestCommitDoesNotWaitForReads(t *testing.T) {
	s := mustStore(t, 1)
	if _, err := s.Apply([]balidx.Delta{blk(0, 1, balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(1)})}); err != nil {
		t.Fatal(err)
	}
	read, err := s.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Rollback()
	changes := make([]balidx.Change, 50_000) // ~5 MB: far past bbolt's first mapping (32 KiB)
	for i := range changes {
		changes[i] = balidx.Change{Account: common.BigToAddress(big.NewInt(int64(i) + 1<<40)), Asset: balidx.NativeAsset, Post: u(1)}
	}
	applied := make(chan error, 1)
	go func() {
		_, err := s.Apply([]balidx.Delta{blk(1, 2, changes...)})
		applied <- err
	}()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a deadlock check, not a timing: it waits for the read forever
		read.Rollback()
		t.Fatalf("the commit waited for a read in progress (err after the read ended: %v)", <-applied)
	}
}

// A token whose change disagrees with the snapshot is withheld, not fatal:
// every other balance of the block is applied, the token's amounts leave
// answers, and a native disagreement stays fatal (TestApplyRefuses).
func TestTokenDisagreementWithholdsTheToken(t *testing.T) {
	s := mustStore(t, 1)
	tokB := common.HexToAddress("0x00000000000000000000000000000000000000bb")
	if _, err := s.Apply([]balidx.Delta{blk(0, 1,
		balidx.Change{Account: alice, Asset: balidx.NativeAsset, Post: u(100)},
		balidx.Change{Account: alice, Asset: tokA, Post: u(10)},
		balidx.Change{Account: alice, Asset: tokB, Post: u(3)},
	)}); err != nil {
		t.Fatal(err)
	}
	// A first word on a token holder is accepted even under full coverage:
	// the indexer knows a token's holders only from when it first saw it.
	b1 := blk(1, 2,
		balidx.Change{Account: bob, Asset: tokA, Pre: u(5), Post: u(6)},
		balidx.Change{Account: alice, Asset: tokA, Pre: u(9), Post: u(8)}, // the snapshot holds 10
		balidx.Change{Account: alice, Asset: balidx.NativeAsset, Pre: u(100), Post: u(90)},
	)
	res, err := s.Apply([]balidx.Delta{b1})
	if err != nil {
		t.Fatalf("a token disagreement stopped the applier: %v", err)
	}
	if len(res.NewlyWithheld) != 1 || res.NewlyWithheld[0] != (WithheldToken{Contract: tokA, Reason: balidx.Inconsistent, Since: 1}) || res.Meta.Withheld != 1 {
		t.Fatalf("got withheld %v (count %d), want [%s]", res.NewlyWithheld, res.Meta.Withheld, tokA.Hex())
	}
	out := make([]Balances, 2)
	if _, err := s.Read([]common.Address{alice, bob}, out); err != nil {
		t.Fatal(err)
	}
	wantW := WithheldToken{Contract: tokA, Reason: balidx.Inconsistent, Since: 1}
	if out[0].Native != u(90) || len(out[0].Tokens) != 1 || out[0].Tokens[0].Contract != tokB {
		t.Fatalf("alice: got %+v, want native 90 and token B only (A withheld)", out[0])
	}
	if !out[1].Known || len(out[1].Tokens) != 0 {
		t.Fatalf("bob: got %+v, want known, A left out", out[1])
	}
	// A withheld token's later changes apply without a check; a token
	// withheld by the indexer is listed with its reason from its block.
	b2 := blk(2, 3, balidx.Change{Account: alice, Asset: tokA, Pre: u(1), Post: u(2)})
	b2.Withheld = []balidx.Withheld{{Asset: tokB, Reason: balidx.TimeDependent}}
	if res, err = s.Apply([]balidx.Delta{b2}); err != nil || len(res.NewlyWithheld) != 1 || res.NewlyWithheld[0].Contract != tokB {
		t.Fatalf("got %+v, %v", res, err)
	}
	_, all, err := s.Withheld()
	want := []WithheldToken{wantW, {Contract: tokB, Reason: balidx.TimeDependent, Since: 2}}
	if err != nil || fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("got %+v, %v, want %+v", all, err, want)
	}
}
