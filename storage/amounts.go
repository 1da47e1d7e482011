package storage

import (
	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	bolt "go.etcd.io/bbolt"
)

// Holding names one account's amount of one asset (balidx.NativeAsset for
// the native coin).
type Holding struct {
	Account, Asset common.Address
}

// Amount is what the snapshot can say of a holding: the amount when it is
// exact, or why it cannot be served.
type Amount struct {
	Value  uint256.Int
	Status AmountStatus
	// Withheld is the token's entry when Status is AmountWithheld.
	Withheld WithheldToken
}

// AmountStatus says whether an Amount is exact, and if not, why.
type AmountStatus uint8

const (
	// AmountExact: Value is the amount at the snapshot's trusted block (a
	// zero included: an entry holds it, or the asset's coverage is full and
	// the account holds none of it).
	AmountExact AmountStatus = iota
	// AmountNotIndexed: the account's native amount has never been seen and
	// the snapshot does not cover the whole chain.
	AmountNotIndexed
	// AmountTokenNotIndexed: the snapshot has never seen a change of this
	// token: it is not indexed.
	AmountTokenNotIndexed
	// AmountHolderUnknown: the token is indexed, but this holder's amount
	// has never been seen, and the token's coverage is partial: its
	// holders are known only from when the indexer first saw it, so the
	// absence is not a zero.
	AmountHolderUnknown
	// AmountWithheld: the token's amounts are not served (Withheld says
	// why and since when).
	AmountWithheld
)

// ReadAmounts fills out[i] with what the snapshot holds of q[i], all in one
// read transaction, and returns the Meta of that transaction. Each holding
// is a point read: no account's other assets are read.
func (s *Store) ReadAmounts(q []Holding, out []Amount) (m Meta, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		if !m.HasTrusted {
			return ErrNoSnapshot
		}
		bal, withheld, tokens := tx.Bucket(bucketBalances), tx.Bucket(bucketWithheld), tx.Bucket(bucketTokens)
		var key [40]byte
		for i, h := range q {
			out[i] = Amount{}
			copy(key[:], h.Account[:])
			copy(key[20:], h.Asset[:])
			v := bal.Get(key[:])
			if h.Asset == balidx.NativeAsset {
				if v == nil && !m.CoverageFull {
					out[i].Status = AmountNotIndexed
				}
				out[i].Value.SetBytes(v)
				continue
			}
			switch {
			case withheld != nil && withheld.Get(h.Asset[:]) != nil:
				out[i].Status = AmountWithheld
				out[i].Withheld = decodeWithheld(h.Asset[:], withheld.Get(h.Asset[:]))
			case tokens == nil || tokens.Get(h.Asset[:]) == nil:
				out[i].Status = AmountTokenNotIndexed
			case v == nil && !isFull(tokens.Get(h.Asset[:])):
				out[i].Status = AmountHolderUnknown
			default:
				out[i].Value.SetBytes(v)
			}
		}
		return nil
	})
	return m, err
}
