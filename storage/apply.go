package storage

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/balidx/balidx"

	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	bolt "go.etcd.io/bbolt"
)

// Applied says what one Apply changed.
type Applied struct {
	Meta     Meta             // the snapshot after the commit
	Accounts []common.Address // every account with a changed entry, once each
	Blocks   int              // blocks applied (redelivered ones excluded)
	Changes  int              // changes applied
	// NewlyWithheld lists the tokens withheld by this commit: every
	// answer holding one of them changed.
	NewlyWithheld []WithheldToken
}

// Apply applies blocks, in order, in one transaction that also stores the
// new trusted block, stream position, digest and counts. Blocks whose last
// part is at or before the stored stream position were applied already and
// are skipped: redelivery changes nothing. Any error rolls everything back.
func (s *Store) Apply(blocks []balidx.Delta) (Applied, error) {
	var res Applied
	err := s.db.Update(func(tx *bolt.Tx) error {
		a := applyTx{meta: tx.Bucket(bucketMeta), bal: tx.Bucket(bucketBalances), withheld: tx.Bucket(bucketWithheld), tokens: tx.Bucket(bucketTokens), seen: map[common.Address]struct{}{}}
		a.m = readMeta(a.meta)
		a.digest.SetBytes32(a.m.Digest[:])
		a.cur = a.bal.Cursor()
		for i := range blocks {
			if blocks[i].LastSeq <= a.m.StreamSeq {
				continue
			}
			if err := a.block(&blocks[i]); err != nil {
				return err
			}
			res.Blocks++
			res.Changes += len(blocks[i].Changes)
		}
		if res.Blocks == 0 {
			return nil
		}
		a.m.Digest = a.digest.Bytes32()
		if err := a.storeMeta(); err != nil {
			return err
		}
		res.Meta = a.m
		res.Accounts = a.accounts
		res.NewlyWithheld = a.newlyWithheld
		return nil
	})
	if err != nil {
		return Applied{}, err
	}
	if res.Blocks == 0 {
		res.Meta, err = s.Meta()
	}
	return res, err
}

type applyTx struct {
	meta, bal, withheld, tokens *bolt.Bucket
	cur                         *bolt.Cursor
	m                           Meta
	digest                      uint256.Int
	seen                        map[common.Address]struct{}
	accounts                    []common.Address
	newlyWithheld               []WithheldToken
}

func (a *applyTx) block(b *balidx.Delta) error {
	if b.Seed != nil || a.m.Seeding {
		return a.seedPage(b)
	}
	switch {
	case a.m.ChainID != 0 && b.ChainID != a.m.ChainID:
		return fmt.Errorf("%w: block %d is of chain %d, the snapshot of chain %d", ErrForeignSnapshot, b.Number, b.ChainID, a.m.ChainID)
	case b.From != nil:
		if !a.m.HasTrusted || a.m.Trusted.Number != b.From.Number || a.m.Trusted.Hash != b.From.Hash {
			return fmt.Errorf("%w: a correction from block %d (%s) to block %d, but the snapshot trusts block %d (%s)",
				ErrDiscontinuity, b.From.Number, b.From.Hash.TerminalString(), b.Number, a.m.Trusted.Number, a.m.Trusted.Hash.TerminalString())
		}
	case a.m.HasTrusted && (b.Number != a.m.Trusted.Number+1 || b.ParentHash != a.m.Trusted.Hash):
		return fmt.Errorf("%w: block %d (%s, parent %s) after trusted block %d (%s)",
			ErrDiscontinuity, b.Number, b.Hash.TerminalString(), b.ParentHash.TerminalString(), a.m.Trusted.Number, a.m.Trusted.Hash.TerminalString())
	case !a.m.HasTrusted:
		a.m.ChainID = b.ChainID
		a.m.CoverageFrom = b.Number
		a.m.CoverageFull = b.Number == 0 // block 0's delta is the genesis allocation
	}
	for _, w := range b.Withheld {
		if err := a.withhold(b, w.Asset, w.Reason); err != nil {
			return err
		}
	}
	for i := range b.Changes {
		if err := a.change(b, &b.Changes[i]); err != nil {
			return err
		}
	}
	for _, t := range b.FullTokens {
		if err := a.full(b.Number, t); err != nil {
			return err
		}
	}
	a.m.Trusted = b.Block
	a.m.HasTrusted = true
	a.m.StreamSeq = b.LastSeq
	return nil
}

// seedPage applies one page of a seed: accounts of the state at the seed's
// block, to a snapshot that has no block yet. Pages come in order, each in
// the transaction it arrives in; with the last, the block is trusted and
// the native coin's coverage is full from it (every account of the state
// is in the snapshot: an absent one holds 0).
func (a *applyTx) seedPage(b *balidx.Delta) error {
	switch {
	case b.Seed == nil:
		return fmt.Errorf("%w: block %d while the seed of block %d is at page %d", ErrDiscontinuity, b.Number, a.m.SeedBlock.Number, a.m.SeedPage)
	case a.m.ChainID != 0 && b.ChainID != a.m.ChainID:
		return fmt.Errorf("%w: seed of chain %d, the snapshot of chain %d", ErrForeignSnapshot, b.ChainID, a.m.ChainID)
	case a.m.HasTrusted:
		return fmt.Errorf("%w: a seed of block %d, but the snapshot trusts block %d already", ErrDiscontinuity, b.Number, a.m.Trusted.Number)
	case a.m.Seeding && (b.Block != a.m.SeedBlock || b.Seed.Page != a.m.SeedPage+1):
		return fmt.Errorf("%w: seed page %d of block %d (%s) after page %d of block %d (%s)", ErrDiscontinuity,
			b.Seed.Page, b.Number, b.Hash.TerminalString(), a.m.SeedPage, a.m.SeedBlock.Number, a.m.SeedBlock.Hash.TerminalString())
	case !a.m.Seeding && b.Seed.Page != 1:
		return fmt.Errorf("%w: seed page %d of block %d without the pages before it", ErrDiscontinuity, b.Seed.Page, b.Number)
	}
	a.m.ChainID = b.ChainID
	for i := range b.Changes {
		c := &b.Changes[i]
		if v := a.bal.Get(balanceKey(c.Account, c.Asset)); v != nil {
			// A holder of a token found again in a later chunk of its
			// logs (after a restart): the same amount at the same block.
			var have uint256.Int
			if have.SetBytes(v); have != c.Post {
				return fmt.Errorf("%w: seed of block %d states %s for account %s asset %s, an earlier page %s",
					ErrPreMismatch, b.Number, c.Post.Dec(), c.Account.Hex(), assetName(c.Asset), have.Dec())
			}
			continue
		}
		if err := a.change(b, c); err != nil {
			return err
		}
		if c.Asset != balidx.NativeAsset {
			if err := a.seedSum(c); err != nil {
				return err
			}
		}
	}
	for _, w := range b.Withheld { // a token the seed found it cannot keep exact
		if err := a.withhold(b, w.Asset, w.Reason); err != nil {
			return err
		}
	}
	if b.Seed.TokenDone(b.Number) {
		if err := a.seeded(b.Number, *b.Seed.Token, b.Seed.TotalSupply); err != nil {
			return err
		}
	}
	a.m.StreamSeq = b.LastSeq
	a.m.Seeding, a.m.SeedBlock, a.m.SeedPage = !b.Seed.Last, b.Block, b.Seed.Page
	if b.Seed.Last {
		a.m.Trusted, a.m.HasTrusted = b.Block, true
		a.m.CoverageFrom, a.m.CoverageFull = b.Number, true
	}
	return nil
}

// seedSum adds a newly seeded amount of c's token to the sum of its
// amounts seeded, kept in its bucketTokens value until its last page.
func (a *applyTx) seedSum(c *balidx.Change) error {
	v := a.tokens.Get(c.Asset[:]) // registered by change
	var sum uint256.Int
	if len(v) == 9+32 && v[8] == tokenSeeding {
		sum.SetBytes32(v[9:])
	}
	if _, overflow := sum.AddOverflow(&sum, &c.Post); overflow {
		return fmt.Errorf("%w: the amounts seeded of token %s add up to more than 2^256", ErrPreMismatch, c.Asset.Hex())
	}
	b32 := sum.Bytes32()
	return a.tokens.Put(c.Asset[:], append(append(slices.Clone(v[:8]), tokenSeeding), b32[:]...))
}

// full marks token as fully covered from block n on (the token's first
// block, whose holders hold all its supply), unless it is already.
func (a *applyTx) full(n uint64, token common.Address) error {
	v := a.tokens.Get(token[:])
	if len(v) == 9 && v[8] == tokenFullMark {
		return nil
	}
	mark := binary.BigEndian.AppendUint64(nil, n)
	if len(v) >= 8 {
		mark = slices.Clone(v[:8])
	}
	if err := a.tokens.Put(token[:], append(mark, tokenFullMark)); err != nil {
		return fmt.Errorf("block %d: token %s: %w", n, token.Hex(), err)
	}
	a.m.FullTokens++
	return nil
}

// seeded ends the seed of token at block n: its coverage is full from n
// when its amounts seeded add up to its total supply — no holder was
// missed — and partial otherwise (a holder got some without a Transfer
// log, or the total is unreadable): the token stays indexed, its sum
// dropped.
func (a *applyTx) seeded(n uint64, token common.Address, total *uint256.Int) error {
	v := a.tokens.Get(token[:])
	if len(v) == 8 || isFull(v) {
		return nil // partial with nothing seeded, or full already
	}
	var sum uint256.Int
	if len(v) == 9+32 && v[8] == tokenSeeding {
		sum.SetBytes32(v[9:])
	}
	if total != nil && sum == *total {
		return a.full(n, token)
	}
	mark := binary.BigEndian.AppendUint64(nil, n)
	if len(v) > 8 && v[8] == tokenSeeding {
		mark = slices.Clone(v[:8])
	}
	if err := a.tokens.Put(token[:], mark); err != nil {
		return fmt.Errorf("seed of block %d: token %s: %w", n, token.Hex(), err)
	}
	return nil
}

func (a *applyTx) change(b *balidx.Delta, c *balidx.Change) error {
	key := balanceKey(c.Account, c.Asset)
	v := a.bal.Get(key)
	var have uint256.Int
	have.SetBytes(v)
	isToken := c.Asset != balidx.NativeAsset
	var registered []byte
	if isToken {
		registered = a.tokens.Get(c.Asset[:])
	}
	// An absent entry is zero when its asset's coverage is full: the
	// native coin's when the snapshot covers the whole state, a token's
	// when a seed read its holders or its first block named them all.
	// Under partial coverage it is unknown, and the change's pre is the
	// first word we have on it.
	if (v != nil || (a.m.CoverageFull && !isToken) || isFull(registered)) && have != c.Pre {
		if !isToken {
			return fmt.Errorf("%w: block %d account %s asset %s: snapshot holds %s, change says pre %s",
				ErrPreMismatch, b.Number, c.Account.Hex(), assetName(c.Asset), have.Dec(), c.Pre.Dec())
		}
		// The token's amounts were not exact before this block: withhold
		// it, and go on applying everything else (its post included, so
		// that every replica's snapshot and digest stay the same).
		if a.withheld.Get(c.Asset[:]) == nil {
			if err := a.withhold(b, c.Asset, balidx.Inconsistent); err != nil {
				return err
			}
		}
	}
	if isToken && registered == nil {
		var since [8]byte
		binary.BigEndian.PutUint64(since[:], b.Number)
		if err := a.tokens.Put(c.Asset[:], since[:]); err != nil {
			return fmt.Errorf("block %d: register token %s: %w", b.Number, c.Asset.Hex(), err)
		}
	}
	if v == nil && !hasAccount(a.cur, c.Account) {
		a.m.Accounts++
	}
	if !have.IsZero() {
		a.digest.Sub(&a.digest, entryHash(c.Account, c.Asset, &have))
		if isToken {
			a.m.TokenBalances--
		}
	}
	if !c.Post.IsZero() {
		a.digest.Add(&a.digest, entryHash(c.Account, c.Asset, &c.Post))
		if isToken {
			a.m.TokenBalances++
		}
	}
	// Zero amounts are kept (as an empty value): a known zero is not unknown.
	if err := a.bal.Put(key, c.Post.Bytes()); err != nil {
		return fmt.Errorf("block %d: put %s/%s: %w", b.Number, c.Account.Hex(), assetName(c.Asset), err)
	}
	if _, ok := a.seen[c.Account]; !ok {
		a.seen[c.Account] = struct{}{}
		a.accounts = append(a.accounts, c.Account)
	}
	return nil
}

// withhold marks token as withheld from block b on, unless it already is.
func (a *applyTx) withhold(b *balidx.Delta, token common.Address, reason balidx.Reason) error {
	if a.withheld.Get(token[:]) != nil {
		return nil
	}
	code := slices.Index(balidx.Reasons, reason)
	if code < 0 {
		return fmt.Errorf("block %d withholds %s for an unknown reason %q (events.Decode admits none)", b.Number, token.Hex(), reason)
	}
	v := make([]byte, 9)
	v[0] = byte(code)
	binary.BigEndian.PutUint64(v[1:], b.Number)
	if err := a.withheld.Put(token[:], v); err != nil {
		return fmt.Errorf("block %d: withhold %s: %w", b.Number, token.Hex(), err)
	}
	a.m.Withheld++
	a.newlyWithheld = append(a.newlyWithheld, WithheldToken{Contract: token, Reason: reason, Since: b.Number})
	return nil
}

func (a *applyTx) storeMeta() error {
	m := &a.m
	for _, kv := range []struct {
		k []byte
		v uint64
	}{
		{keyChainID, m.ChainID}, {keyStreamSeq, m.StreamSeq}, {keyCoverageFrom, m.CoverageFrom},
		{keyCoverageFull, b2u(m.CoverageFull)}, {keyAccounts, m.Accounts}, {keyTokenBalances, m.TokenBalances},
		{keyWithheld, m.Withheld}, {keyFullTokens, m.FullTokens},
	} {
		if err := putU64(a.meta, kv.k, kv.v); err != nil {
			return err
		}
	}
	if err := a.meta.Put(keyDigest, m.Digest[:]); err != nil {
		return err
	}
	if m.Seeding {
		if err := a.meta.Put(keySeed, binary.BigEndian.AppendUint64(encodeBlock(m.SeedBlock), m.SeedPage)); err != nil {
			return err
		}
	} else if err := a.meta.Delete(keySeed); err != nil {
		return err
	}
	if !m.HasTrusted {
		return nil // seeding: no block to trust yet
	}
	return a.meta.Put(keyTrusted, encodeBlock(m.Trusted))
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func assetName(a common.Address) string {
	if a == balidx.NativeAsset {
		return "native"
	}
	return a.Hex()
}
