// Package storage is a query node's snapshot: every balance of one chain at
// its trusted block, in a bbolt file, with the stream position and digest
// stored in the same transaction as the balances they describe.
package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	bolt "go.etcd.io/bbolt"
)

// FileName is the snapshot's file in a node's data directory.
const FileName = "snapshot.db"

// formatVersion is the layout of the file; a different one is refused.
const formatVersion = 1

var (
	bucketMeta     = []byte("meta")
	bucketBalances = []byte("balances")
	// bucketWithheld holds the withheld tokens: contract → reason code (one
	// byte, the index in balidx.Reasons) ‖ the block it is withheld from.
	bucketWithheld = []byte("withheld")
	// bucketTokens holds every token the snapshot has seen a change of, or
	// seeded: contract → the first block with one (8 bytes, big-endian),
	// then, for a token whose coverage is full (a seed read it, or its
	// first block named all its holders), the byte tokenFullMark (while a
	// seed reads it, tokenSeeding and the sum of its amounts seeded, 32
	// bytes). It says which tokens are indexed, and which fully, without a
	// scan of the balances.
	bucketTokens = []byte("tokens")

	keyFormat        = []byte("format")
	keyChainID       = []byte("chain_id")
	keyTrusted       = []byte("trusted")
	keyStreamSeq     = []byte("stream_seq")
	keyCoverageFrom  = []byte("coverage_from")
	keyCoverageFull  = []byte("coverage_full")
	keyDigest        = []byte("digest")
	keyAccounts      = []byte("accounts")
	keyTokenBalances = []byte("token_balances")
	keyWithheld      = []byte("withheld_tokens")
	keySeed          = []byte("seed") // a seed in progress: its block, then its last page applied
	keyFullTokens    = []byte("full_tokens")
)

// The marks of a token in bucketTokens: its coverage is full (a seed read
// its holders and their amounts add up to its total supply, or its first
// block named every holder); a seed is reading its holders.
const (
	tokenFullMark = 1
	tokenSeeding  = 2
)

// Config opens a Store.
type Config struct {
	// Path of the bbolt file (created if missing).
	Path string
	// ChainID the snapshot must belong to; 0 accepts the file's own.
	ChainID uint64
	// ReadOnly opens an existing file for reading only (audit, inspection).
	ReadOnly bool
}

// Store is the snapshot. Reads are consistent: every read sees the balances
// of exactly one trusted block, named in the Meta it returns.
type Store struct {
	db *bolt.DB
}

// Meta describes the snapshot at one trusted block.
type Meta struct {
	ChainID       uint64
	Trusted       balidx.Block
	HasTrusted    bool   // false until the first block is applied
	StreamSeq     uint64 // stream sequence of the last applied part
	CoverageFrom  uint64 // first block indexed
	CoverageFull  bool   // indexed from genesis, genesis allocation included
	Digest        common.Hash
	Accounts      uint64 // accounts with any entry
	TokenBalances uint64 // non-zero token balances
	Withheld      uint64 // withheld tokens (Store.Withheld lists them)
	FullTokens    uint64 // tokens whose coverage is full (Store.FullTokens lists them)
	// Seeding is set while a seed is being applied, page by page: SeedBlock
	// is the block it is the state at, SeedPage the last page applied. The
	// snapshot has no trusted block until the seed's last page.
	Seeding   bool
	SeedBlock balidx.Block
	SeedPage  uint64
}

// isFull says whether the token whose bucketTokens value is v has full
// coverage: every holder of it is known, so an absent one holds 0. Any
// other token's holders are known only from when the indexer first saw it
// — even from genesis, a token may have holders before its first Transfer
// log (a mint without one) — so its coverage is partial.
func isFull(v []byte) bool { return len(v) == 9 && v[8] == tokenFullMark }

// Open opens or creates the snapshot at cfg.Path.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("open snapshot: no path")
	}
	if cfg.ReadOnly {
		if _, err := os.Stat(cfg.Path); err != nil {
			return nil, fmt.Errorf("open snapshot: %w", err)
		}
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second, // another process holds the file lock
		NoSync:         false,           // every commit is fsynced: acks follow commits
		NoFreelistSync: false,
		FreelistType:   bolt.FreelistMapType,
		ReadOnly:       cfg.ReadOnly,
		// bbolt remaps the file when a commit outgrows the mapping, and a
		// remap waits for every open read: a commit would stall behind the
		// query tier's reads, and they behind it. Mapping 1 GiB of address
		// space up front (~4M accounts; only pages in use take memory)
		// leaves commits nothing to wait for until then, and saved a
		// quarter of the time of writing 1M accounts in one block.
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open snapshot %s: another process is using it (a running node serves a consistent copy on its admin listener: GET /snapshot)", cfg.Path)
		}
		return nil, fmt.Errorf("%w: open %s: %v (move it away and restart: the applier rebuilds it from the stream)", ErrCorruptSnapshot, cfg.Path, err)
	}
	s := &Store{db: db}
	if err := s.init(cfg); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(cfg Config) error {
	if cfg.ReadOnly {
		return s.db.View(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta == nil || tx.Bucket(bucketBalances) == nil || getU64(meta, keyFormat) != formatVersion {
				return fmt.Errorf("%w: %s is not a balidx snapshot of format %d", ErrForeignSnapshot, s.db.Path(), formatVersion)
			}
			if have := getU64(meta, keyChainID); cfg.ChainID != 0 && have != cfg.ChainID {
				return fmt.Errorf("%w: %s holds chain %d, not %d", ErrForeignSnapshot, s.db.Path(), have, cfg.ChainID)
			}
			return nil
		})
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketBalances) != nil || hasOtherBuckets(tx) {
				return fmt.Errorf("%w: %s has no meta bucket", ErrForeignSnapshot, s.db.Path())
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketBalances); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketWithheld); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketTokens); err != nil {
				return err
			}
			if err := putU64(meta, keyFormat, formatVersion); err != nil {
				return err
			}
			if cfg.ChainID != 0 {
				return putU64(meta, keyChainID, cfg.ChainID)
			}
			return nil
		}
		if tx.Bucket(bucketBalances) == nil {
			return fmt.Errorf("%w: %s has no balances bucket", ErrCorruptSnapshot, s.db.Path())
		}
		if v := getU64(meta, keyFormat); v != formatVersion {
			return fmt.Errorf("%w: %s has format %d, this build reads %d", ErrForeignSnapshot, s.db.Path(), v, formatVersion)
		}
		have := getU64(meta, keyChainID)
		if cfg.ChainID != 0 && have != 0 && have != cfg.ChainID {
			return fmt.Errorf("%w: %s holds chain %d, not %d (use another --data directory)", ErrForeignSnapshot, s.db.Path(), have, cfg.ChainID)
		}
		if cfg.ChainID != 0 && have == 0 {
			if err := putU64(meta, keyChainID, cfg.ChainID); err != nil {
				return err
			}
		}
		// Files written before tokens could be withheld have no bucket.
		if _, err := tx.CreateBucketIfNotExists(bucketWithheld); err != nil {
			return err
		}
		if tx.Bucket(bucketTokens) == nil {
			return registerHeldTokens(tx)
		}
		return nil
	})
}

// registerHeldTokens makes the token registry of a file written before it
// existed, from the balances it holds (at the trusted block: the first
// block of a change is not known). A token whose every entry was deleted
// is not in it: such a file's node says the token is not indexed, which
// is honest; a rebuild from the stream registers it.
func registerHeldTokens(tx *bolt.Tx) error {
	tokens, err := tx.CreateBucket(bucketTokens)
	if err != nil {
		return err
	}
	var since [8]byte
	binary.BigEndian.PutUint64(since[:], readMeta(tx.Bucket(bucketMeta)).Trusted.Number)
	return tx.Bucket(bucketBalances).ForEach(func(k, _ []byte) error {
		if bytes.Equal(k[20:], zeroAddress[:]) || tokens.Get(k[20:]) != nil {
			return nil
		}
		return tokens.Put(k[20:], since[:])
	})
}

func hasOtherBuckets(tx *bolt.Tx) bool {
	found := false
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		found = true
		return nil
	})
	return found
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the file's path.
func (s *Store) Path() string { return s.db.Path() }

// Meta returns the snapshot's description.
func (s *Store) Meta() (Meta, error) {
	var m Meta
	err := s.db.View(func(tx *bolt.Tx) error {
		m = readMeta(tx.Bucket(bucketMeta))
		return nil
	})
	return m, err
}

func readMeta(b *bolt.Bucket) Meta {
	m := Meta{
		ChainID:       getU64(b, keyChainID),
		StreamSeq:     getU64(b, keyStreamSeq),
		CoverageFrom:  getU64(b, keyCoverageFrom),
		CoverageFull:  getU64(b, keyCoverageFull) == 1,
		Accounts:      getU64(b, keyAccounts),
		TokenBalances: getU64(b, keyTokenBalances),
		Withheld:      getU64(b, keyWithheld),
		FullTokens:    getU64(b, keyFullTokens),
	}
	copy(m.Digest[:], b.Get(keyDigest))
	if v := b.Get(keySeed); len(v) == blockLen+8 {
		m.Seeding, m.SeedBlock, m.SeedPage = true, decodeBlock(v), binary.BigEndian.Uint64(v[blockLen:])
	}
	if v := b.Get(keyTrusted); len(v) == blockLen {
		m.Trusted = decodeBlock(v)
		m.HasTrusted = true
	}
	return m
}

const blockLen = 8 + 32 + 32 + 8

func encodeBlock(b balidx.Block) []byte {
	v := make([]byte, blockLen)
	binary.BigEndian.PutUint64(v, b.Number)
	copy(v[8:], b.Hash[:])
	copy(v[40:], b.ParentHash[:])
	binary.BigEndian.PutUint64(v[72:], b.Timestamp)
	return v
}

func decodeBlock(v []byte) balidx.Block {
	var b balidx.Block
	b.Number = binary.BigEndian.Uint64(v)
	copy(b.Hash[:], v[8:40])
	copy(b.ParentHash[:], v[40:72])
	b.Timestamp = binary.BigEndian.Uint64(v[72:])
	return b
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(k, buf[:])
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// balanceKey is account ‖ asset; the native asset is the zero address, so an
// account's native balance sorts before its tokens.
func balanceKey(account, asset common.Address) []byte {
	k := make([]byte, 40)
	copy(k, account[:])
	copy(k[20:], asset[:])
	return k
}

// entryHash is one (account, asset, amount) triple's share of the digest.
func entryHash(account, asset common.Address, amount *uint256.Int) *uint256.Int {
	var buf [72]byte
	copy(buf[:], account[:])
	copy(buf[20:], asset[:])
	amount.WriteToSlice(buf[40:])
	sum := sha256.Sum256(buf[:])
	return new(uint256.Int).SetBytes32(sum[:])
}

// hasAccount reports whether any entry of account exists.
func hasAccount(c *bolt.Cursor, account common.Address) bool {
	k, _ := c.Seek(account[:])
	return k != nil && bytes.HasPrefix(k, account[:])
}
