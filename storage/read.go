package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	bolt "go.etcd.io/bbolt"
)

// TokenBalance is a non-zero ERC-20 balance.
type TokenBalance struct {
	Contract common.Address
	Amount   uint256.Int
}

// Balances is what the snapshot holds for one account.
type Balances struct {
	Known  bool // the snapshot has an entry for the account
	Native uint256.Int
	Tokens []TokenBalance // non-zero only, ordered by contract address; withheld tokens left out
}

// WithheldToken is a token whose balances are not served.
type WithheldToken struct {
	Contract common.Address
	Reason   balidx.Reason
	Since    uint64 // the first block at which it is withheld
}

// Read fills out[i] with the balances of accounts[i], all in one read
// transaction, and returns the Meta of that transaction: every amount is
// exactly true at m.Trusted. Withheld tokens are left out (a list of them
// read at or after m.Trusted names them all: a token, once withheld, stays
// so). It returns ErrNoSnapshot before the first block.
func (s *Store) Read(accounts []common.Address, out []Balances) (m Meta, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		if !m.HasTrusted {
			return ErrNoSnapshot
		}
		c := tx.Bucket(bucketBalances).Cursor()
		var withheld *bolt.Bucket // nil while no token is withheld: nothing to look up
		if m.Withheld > 0 {
			withheld = tx.Bucket(bucketWithheld)
		}
		for i, a := range accounts {
			readAccount(c, withheld, a, &out[i])
		}
		return nil
	})
	return m, err
}

func readAccount(c *bolt.Cursor, withheld *bolt.Bucket, account common.Address, out *Balances) {
	*out = Balances{Tokens: out.Tokens[:0]}
	for k, v := c.Seek(account[:]); k != nil && bytes.HasPrefix(k, account[:]); k, v = c.Next() {
		out.Known = true
		if bytes.Equal(k[20:], zeroAddress[:]) {
			out.Native.SetBytes(v)
			continue
		}
		if len(v) == 0 {
			continue
		}
		if withheld != nil && withheld.Get(k[20:]) != nil {
			continue // not served: Store.Withheld lists it
		}
		var t TokenBalance
		copy(t.Contract[:], k[20:])
		t.Amount.SetBytes(v)
		out.Tokens = append(out.Tokens, t)
	}
}

func decodeWithheld(contract, v []byte) WithheldToken {
	w := WithheldToken{Contract: common.BytesToAddress(contract), Reason: balidx.Inconsistent} // a value withhold did not write: the token stays withheld
	if len(v) == 9 && int(v[0]) < len(balidx.Reasons) {
		w.Reason = balidx.Reasons[v[0]]
		w.Since = binary.BigEndian.Uint64(v[1:])
	}
	return w
}

// Withheld lists every withheld token, by contract, and the snapshot it
// was read from.
func (s *Store) Withheld() (m Meta, out []WithheldToken, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		b := tx.Bucket(bucketWithheld)
		if b == nil { // a read-only file written before tokens could be withheld
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out = append(out, decodeWithheld(k, v))
			return nil
		})
	})
	return m, out, err
}

var zeroAddress common.Address

// ForEachAccount calls fn once for every account the snapshot knows, in
// address order, within one read transaction.
func (s *Store) ForEachAccount(fn func(common.Address)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		var last common.Address
		first := true
		return tx.Bucket(bucketBalances).ForEach(func(k, _ []byte) error {
			a := common.BytesToAddress(k[:20])
			if first || a != last {
				fn(a)
				last, first = a, false
			}
			return nil
		})
	})
}

// ForEachBalance calls fn for every non-zero balance, in (account, asset)
// order, within one read transaction; m is the snapshot they are true at.
func (s *Store) ForEachBalance(fn func(account, asset common.Address, amount *uint256.Int) error) (m Meta, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		var amount uint256.Int
		return tx.Bucket(bucketBalances).ForEach(func(k, v []byte) error {
			if len(v) == 0 {
				return nil
			}
			amount.SetBytes(v)
			return fn(common.BytesToAddress(k[:20]), common.BytesToAddress(k[20:]), &amount)
		})
	})
	return m, err
}

// CheckDigest recomputes the digest from every balance the snapshot holds
// and compares it with the one it states (ErrDigestMismatch): a copy
// received from elsewhere is checked before it is served.
func (s *Store) CheckDigest() (Meta, error) {
	var sum uint256.Int
	m, err := s.ForEachBalance(func(account, asset common.Address, amount *uint256.Int) error {
		if !amount.IsZero() {
			sum.Add(&sum, entryHash(account, asset, amount))
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	if common.Hash(sum.Bytes32()) != m.Digest {
		return m, fmt.Errorf("%w: the balances add up to %s, the file states %s", ErrDigestMismatch, common.Hash(sum.Bytes32()), m.Digest)
	}
	return m, nil
}

// CopyTo writes a consistent copy of the whole snapshot file to w, like
// WriteTo, and returns the state the copy holds (read in the same
// transaction).
func (s *Store) CopyTo(w io.Writer) (Meta, error) {
	var m Meta
	err := s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		_, err := tx.WriteTo(w)
		return err
	})
	return m, err
}

// WriteTo writes a consistent copy of the whole snapshot file to w while
// the store keeps applying: the copy is one read transaction.
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// FullToken is a token whose coverage is full: every holder of it is
// known from block Since on, so an absent one holds 0.
type FullToken struct {
	Contract common.Address
	Since    uint64
}

// FullTokens lists the tokens whose coverage is full — a seed read their
// holders, or their first block named all of them — by contract, and the
// snapshot it was read from.
func (s *Store) FullTokens() (m Meta, out []FullToken, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		if m.FullTokens == 0 {
			return nil
		}
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			if isFull(v) {
				out = append(out, FullToken{Contract: common.BytesToAddress(k), Since: binary.BigEndian.Uint64(v)})
			}
			return nil
		})
	})
	return m, out, err
}
