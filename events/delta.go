// Package events defines what the indexer publishes and the applier consumes:
// the BlockDelta wire format, the JetStream stream that carries it, and the
// helpers that publish and consume it. See FORMAT.md beside this file.
package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
)

// Version is the newest BlockDelta format version this build writes.
// Version 2 added Withheld, version 3 Seed, version 4 FullTokens; this
// build reads versions 1 to 4 (each a later version without the fields it
// added). A message is written in the oldest version that holds it: seed
// pages as version 3, a block's first part naming full tokens as version
// 4, every other message as version 2, which older readers read.
const Version = 4

// SeedVersion is the version of a seed page.
const SeedVersion = 3

// deltaVersion is the version of every message but a seed page.
const deltaVersion = 2

// oldestVersion is the oldest format version this build reads.
const oldestVersion = 1

// Limits of the format. A message outside them is refused as ErrTooLarge.
const (
	// MaxChangesPerPart bounds one message; large blocks are split in parts.
	MaxChangesPerPart = 1024
	// MaxParts bounds how many messages one block may span (the genesis
	// allocation of a large chain included): 1024 × 65536 = 67M changes.
	MaxParts = 65536
	// MaxMessageBytes is the largest encoded part accepted (a full part of
	// 1024 changes with 78-digit amounts takes ~290 KiB).
	MaxMessageBytes = 512 << 10
)

// BlockDelta is one message on the stream: a part of the changes of one
// trusted block. A block with more than MaxChangesPerPart changes is split in
// Parts messages with Part = 1..Parts, published consecutively; the block
// counts as applied only once all its parts are.
type BlockDelta struct {
	Version int    `json:"version"`
	ChainID uint64 `json:"chain_id"`
	balidx.Block
	// From, on a correction published by `balidx replay`, is the published
	// block the correction starts from: it applies to a snapshot whose
	// trusted block is exactly From, its pre amounts are that snapshot's,
	// and it takes the snapshot to this block — across a reorg deeper than
	// the trust policy. Absent on every ordinary delta.
	From  *balidx.BlockRef `json:"from,omitempty"`
	Part  int              `json:"part"`
	Parts int              `json:"parts"`
	// Seed, on a page of a seeded start (version 3), places the page: a
	// seed page is one message (part 1 of 1) whose changes are accounts of
	// the state at the block, pre 0 (events/FORMAT.md "Seeds").
	Seed    *balidx.SeedPage `json:"seed,omitempty"`
	Changes []balidx.Change  `json:"changes"`
	// Withheld, on a block's first part, lists the tokens whose balances
	// are withheld from this block on: the indexer cannot keep them exact
	// (Reason says why) and publishes no more changes of them.
	Withheld []balidx.Withheld `json:"withheld,omitempty"`
	// FullTokens, on a block's first part (version 4), lists the tokens
	// whose coverage is full from this block on: none of their holders
	// was published before, nobody held any before the block, and the
	// holders the block names hold all of their supply.
	FullTokens []common.Address `json:"full_tokens,omitempty"`
}

// FullFrom names, on parts of a block, the tokens fully covered from it.
func FullFrom(parts []BlockDelta, full []common.Address) {
	if len(full) > 0 {
		parts[0].FullTokens, parts[0].Version = full, 4
	}
}

// MsgID is the JetStream message id of a part, derived from (chain id,
// number, hash, part) — and for a correction the block it starts from: a
// retried publish of the same part is deduplicated, while a different block
// at the same height, or a correction of a block, is not.
func (d *BlockDelta) MsgID() string {
	id := fmt.Sprintf("%d:%d:%s:%d", d.ChainID, d.Number, d.Hash.Hex(), d.Part)
	if d.Seed != nil {
		id = fmt.Sprintf("%d:%d:%s:seed:%d", d.ChainID, d.Number, d.Hash.Hex(), d.Seed.Page)
	}
	if d.From != nil {
		id += fmt.Sprintf(":from:%d:%s", d.From.Number, d.From.Hash.Hex())
	}
	return id
}

// Split cuts the changes of one block into parts of at most
// MaxChangesPerPart changes, withheld on the first. A block without changes
// still yields one part: every trusted block is published, so that
// continuity can be checked.
func Split(chainID uint64, b balidx.Block, changes []balidx.Change, withheld []balidx.Withheld) []BlockDelta {
	parts := (len(changes) + MaxChangesPerPart - 1) / MaxChangesPerPart
	if parts == 0 {
		parts = 1
	}
	out := make([]BlockDelta, parts)
	for i := range out {
		lo := i * MaxChangesPerPart
		hi := min(lo+MaxChangesPerPart, len(changes))
		out[i] = BlockDelta{Version: deltaVersion, ChainID: chainID, Block: b, Part: i + 1, Parts: parts, Changes: changes[lo:hi]}
	}
	out[0].Withheld = withheld
	return out
}

// Encode returns the JSON encoding of d.
func Encode(d *BlockDelta) ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode block %d: %w", d.Number, err)
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: block %d part %d encodes to %d bytes", ErrTooLarge, d.Number, d.Part, len(b))
	}
	return b, nil
}

// Decode parses and validates one message. Unknown fields are refused: a
// field this build does not understand might change the meaning of the rest.
func Decode(data []byte) (*BlockDelta, error) {
	if len(data) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDelta, err)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("%w: no version", ErrInvalidDelta)
	}
	if *probe.Version < oldestVersion || *probe.Version > Version {
		return nil, fmt.Errorf("%w: %d (this build reads %d to %d)", ErrUnsupportedVersion, *probe.Version, oldestVersion, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d BlockDelta
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDelta, err)
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

func (d *BlockDelta) validate() error {
	switch {
	case d.Version < oldestVersion || d.Version > Version:
		return fmt.Errorf("%w: %d", ErrUnsupportedVersion, d.Version)
	case d.Version < 2 && len(d.Withheld) > 0:
		return fmt.Errorf("%w: block %d: withheld tokens in a version %d message", ErrInvalidDelta, d.Number, d.Version)
	case len(d.FullTokens) > 0 && (d.Version < 4 || d.Part != 1 || d.Seed != nil || d.From != nil || len(d.FullTokens) > MaxChangesPerPart ||
		slices.Contains(d.FullTokens, balidx.NativeAsset) || hasDuplicates(d.FullTokens)):
		return fmt.Errorf("%w: block %d: full tokens on a version 4 block's first part only (no seed page, no correction), each once, at most %d, none the native coin", ErrInvalidDelta, d.Number, MaxChangesPerPart)
	case d.Seed != nil && (d.Version < 3 || d.Parts != 1 || d.From != nil || d.Seed.Page < 1):
		return fmt.Errorf("%w: block %d: a seed page must be version 3, one part, no correction, page ≥ 1", ErrInvalidDelta, d.Number)
	case d.Seed != nil && len(d.Withheld) > 0 && (len(d.Withheld) != 1 || !d.Seed.TokenDone(d.Number) || d.Withheld[0].Asset != *d.Seed.Token || len(d.Changes) > 0):
		return fmt.Errorf("%w: block %d seed page %d: only a token's last page, without changes, withholds a token: its own", ErrInvalidDelta, d.Number, d.Seed.Page)
	case d.Seed != nil && d.Seed.Token == nil && (len(d.Seed.Next) != 0 && (len(d.Seed.Next) != common.HashLength || d.Seed.Last) ||
		d.Seed.LogsFrom != 0 || d.Seed.TotalSupply != nil || len(d.Seed.Next) == 0 && !d.Seed.Last && d.Seed.Tokens == (common.Hash{})):
		return fmt.Errorf("%w: block %d seed page %d: a page of accounts carries a 32-byte next key, else is the last page or tokens follow it", ErrInvalidDelta, d.Number, d.Seed.Page)
	case d.Seed != nil && d.Seed.Token != nil && (len(d.Seed.Next) != 0 || *d.Seed.Token == balidx.NativeAsset || d.Seed.Tokens == (common.Hash{}) ||
		d.Seed.LogsFrom > d.Number+1 || d.Seed.Last && !d.Seed.TokenDone(d.Number) || d.Seed.TotalSupply != nil && !d.Seed.TokenDone(d.Number)):
		return fmt.Errorf("%w: block %d seed page %d: a page of a token names a token of its list, takes logs up to at most the block, and is the last page, or carries a total supply, only as the token's last", ErrInvalidDelta, d.Number, d.Seed.Page)
	case d.Part != 1 && len(d.Withheld) > 0:
		return fmt.Errorf("%w: block %d: withheld tokens on part %d", ErrInvalidDelta, d.Number, d.Part)
	case len(d.Withheld) > MaxChangesPerPart:
		return fmt.Errorf("%w: block %d withholds %d tokens (max %d)", ErrTooLarge, d.Number, len(d.Withheld), MaxChangesPerPart)
	case d.ChainID == 0:
		return fmt.Errorf("%w: chain id 0", ErrInvalidDelta)
	case d.Hash == (common.Hash{}):
		return fmt.Errorf("%w: block %d has no hash", ErrInvalidDelta, d.Number)
	case d.Parts < 1 || d.Parts > MaxParts:
		return fmt.Errorf("%w: block %d has %d parts (1..%d)", ErrTooLarge, d.Number, d.Parts, MaxParts)
	case d.Part < 1 || d.Part > d.Parts:
		return fmt.Errorf("%w: block %d part %d of %d", ErrInvalidDelta, d.Number, d.Part, d.Parts)
	case d.From != nil && d.From.Hash == (common.Hash{}):
		return fmt.Errorf("%w: block %d corrects a block without hash", ErrInvalidDelta, d.Number)
	case len(d.Changes) > MaxChangesPerPart:
		return fmt.Errorf("%w: block %d part %d has %d changes (max %d)", ErrTooLarge, d.Number, d.Part, len(d.Changes), MaxChangesPerPart)
	}
	if d.Seed != nil {
		asset := balidx.NativeAsset
		if d.Seed.Token != nil {
			asset = *d.Seed.Token
		}
		for _, c := range d.Changes {
			if !c.Pre.IsZero() || c.Asset != asset {
				return fmt.Errorf("%w: block %d seed page %d: account %s asset %s pre %s: a seed page's changes are of its asset, pre 0",
					ErrInvalidDelta, d.Number, d.Seed.Page, c.Account.Hex(), c.Asset.Hex(), c.Pre.Dec())
			}
		}
	}
	for _, w := range d.Withheld {
		if w.Asset == balidx.NativeAsset || !slices.Contains(balidx.Reasons, w.Reason) || w.Reason == balidx.Inconsistent {
			return fmt.Errorf("%w: block %d withholds asset %s for reason %q", ErrInvalidDelta, d.Number, w.Asset.Hex(), w.Reason)
		}
	}
	return nil
}

// Subject is the subject the deltas of a chain are published on.
func Subject(chainID uint64) string {
	return "balidx.blocks." + strconv.FormatUint(chainID, 10)
}

func hasDuplicates(ts []common.Address) bool {
	seen := make(map[common.Address]struct{}, len(ts))
	for _, t := range ts {
		if _, dup := seen[t]; dup {
			return true
		}
		seen[t] = struct{}{}
	}
	return false
}
