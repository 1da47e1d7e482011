package storage

import (
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
