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

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/holiman/uint256"
)

// Version is the BlockDelta format version this build writes. Version 2
// added Withheld; this build reads versions 1 and 2 (a version 1 message
// is a version 2 message without Withheld).
const Version = 2

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

// NativeAsset is the asset of the chain's own coin; every other asset is
// named by its ERC-20 contract address.
var NativeAsset = common.Address{}

// Block names a block.
type Block struct {
	Number     uint64      `json:"number"`
	Hash       common.Hash `json:"hash"`
	ParentHash common.Hash `json:"parent_hash"`
	Timestamp  uint64      `json:"timestamp"`
}

// Change is one balance that changed in a block: the amount held by Account
// of Asset before the block (Pre) and after it (Post). Absolute amounts make
// applying idempotent and let the applier check Pre against what it holds.
type Change struct {
	Account common.Address
	Asset   common.Address // NativeAsset or an ERC-20 contract
	Pre     uint256.Int
	Post    uint256.Int
}

// BlockDelta is one message on the stream: a part of the changes of one
// trusted block. A block with more than MaxChangesPerPart changes is split in
// Parts messages with Part = 1..Parts, published consecutively; the block
// counts as applied only once all its parts are.
type BlockDelta struct {
	Version int    `json:"version"`
	ChainID uint64 `json:"chain_id"`
	Block
	// From, on a correction published by `balidx replay`, is the published
	// block the correction starts from: it applies to a snapshot whose
	// trusted block is exactly From, its pre amounts are that snapshot's,
	// and it takes the snapshot to this block — across a reorg deeper than
	// the trust policy. Absent on every ordinary delta.
	From    *BlockRef `json:"from,omitempty"`
	Part    int       `json:"part"`
	Parts   int       `json:"parts"`
	Changes []Change  `json:"changes"`
	// Withheld, on a block's first part, lists the tokens whose balances
	// are withheld from this block on: the indexer cannot keep them exact
	// (Reason says why) and publishes no more changes of them.
	Withheld []Withheld `json:"withheld,omitempty"`
}

// Withheld names a token whose balances are not served, and why.
type Withheld struct {
	Asset  common.Address `json:"asset"`
	Reason Reason         `json:"reason"`
}

// Reason says why a token's balances are withheld.
type Reason string

// The reasons a token is withheld (FORMAT.md, API.md).
const (
	// TimeDependent: balanceOf reads the block's environment (its time,
	// number, …) or native balances, so that balances change with no
	// storage write the indexer could see (interest-bearing tokens).
	TimeDependent Reason = "time_dependent"
	// TooManyHolders: a change of state every holder's balance depends on
	// (a rebase) would need more holders re-read than the refresh ceiling.
	TooManyHolders Reason = "too_many_holders"
	// Unreadable: balanceOf reverted or did not answer one 32-byte word.
	Unreadable Reason = "unreadable"
	// UnsupportedLayout: balanceOf reads holder storage the indexer cannot
	// attribute to a holder (a slot derived from the holder through more
	// than one mapping level).
	UnsupportedLayout Reason = "unsupported_layout"
	// Inconsistent: the applier found a change whose pre amount disagrees
	// with its snapshot, so earlier amounts of the token were not exact.
	// Set by the applier, never published.
	Inconsistent Reason = "inconsistent"
)

// Reasons lists every Reason, in a fixed order (storage codes index it).
var Reasons = []Reason{TimeDependent, TooManyHolders, Unreadable, UnsupportedLayout, Inconsistent}

// BlockRef names a block.
type BlockRef struct {
	Number uint64      `json:"number"`
	Hash   common.Hash `json:"hash"`
}

// MsgID is the JetStream message id of a part, derived from (chain id,
// number, hash, part) — and for a correction the block it starts from: a
// retried publish of the same part is deduplicated, while a different block
// at the same height, or a correction of a block, is not.
func (d *BlockDelta) MsgID() string {
	id := fmt.Sprintf("%d:%d:%s:%d", d.ChainID, d.Number, d.Hash.Hex(), d.Part)
	if d.From != nil {
		id += fmt.Sprintf(":from:%d:%s", d.From.Number, d.From.Hash.Hex())
	}
	return id
}

// Split cuts the changes of one block into parts of at most
// MaxChangesPerPart changes, withheld on the first. A block without changes
// still yields one part: every trusted block is published, so that
// continuity can be checked.
func Split(chainID uint64, b Block, changes []Change, withheld []Withheld) []BlockDelta {
	parts := (len(changes) + MaxChangesPerPart - 1) / MaxChangesPerPart
	if parts == 0 {
		parts = 1
	}
	out := make([]BlockDelta, parts)
	for i := range out {
		lo := i * MaxChangesPerPart
		hi := min(lo+MaxChangesPerPart, len(changes))
		out[i] = BlockDelta{Version: Version, ChainID: chainID, Block: b, Part: i + 1, Parts: parts, Changes: changes[lo:hi]}
	}
	out[0].Withheld = withheld
	return out
}

// SortChanges orders changes by account then asset, the order a block's
// changes are published in: the same block always splits into the same
// parts, and applying them inserts keys in order.
func SortChanges(cs []Change) {
	slices.SortFunc(cs, func(x, y Change) int {
		if c := bytes.Compare(x.Account[:], y.Account[:]); c != 0 {
			return c
		}
		return bytes.Compare(x.Asset[:], y.Asset[:])
	})
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
	for _, w := range d.Withheld {
		if w.Asset == NativeAsset || !slices.Contains(Reasons, w.Reason) || w.Reason == Inconsistent {
			return fmt.Errorf("%w: block %d withholds asset %s for reason %q", ErrInvalidDelta, d.Number, w.Asset.Hex(), w.Reason)
		}
	}
	return nil
}

type changeJSON struct {
	Account common.Address `json:"account"`
	Asset   string         `json:"asset"`
	Pre     string         `json:"pre"`
	Post    string         `json:"post"`
}

const nativeName = "native"

// MarshalJSON writes amounts as base-10 strings and the native asset as "native".
func (c Change) MarshalJSON() ([]byte, error) {
	asset := nativeName
	if c.Asset != NativeAsset {
		asset = hexutil.Encode(c.Asset[:])
	}
	return json.Marshal(changeJSON{Account: c.Account, Asset: asset, Pre: c.Pre.Dec(), Post: c.Post.Dec()})
}

// UnmarshalJSON reads what MarshalJSON writes and nothing looser: amounts
// must be base-10 without sign or leading zeros, assets "native" or an address.
func (c *Change) UnmarshalJSON(b []byte) error {
	var j changeJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	c.Account = j.Account
	switch {
	case j.Asset == nativeName:
		c.Asset = NativeAsset
	case common.IsHexAddress(j.Asset) && len(j.Asset) == 42:
		c.Asset = common.HexToAddress(j.Asset)
		if c.Asset == NativeAsset {
			return fmt.Errorf("asset %q: the zero address is not a token", j.Asset)
		}
	default:
		return fmt.Errorf("asset %q: want %q or a 0x-prefixed address", j.Asset, nativeName)
	}
	if err := parseAmount(&c.Pre, j.Pre); err != nil {
		return fmt.Errorf("pre: %w", err)
	}
	if err := parseAmount(&c.Post, j.Post); err != nil {
		return fmt.Errorf("post: %w", err)
	}
	return nil
}

func parseAmount(z *uint256.Int, s string) error {
	if s == "" || len(s) > 78 || (len(s) > 1 && s[0] == '0') {
		return fmt.Errorf("amount %q is not a canonical base-10 uint256", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("amount %q is not base-10", s)
		}
	}
	if err := z.SetFromDecimal(s); err != nil {
		return fmt.Errorf("amount %q: %w", s, err)
	}
	return nil
}

// Subject is the subject the deltas of a chain are published on.
func Subject(chainID uint64) string {
	return "balidx.blocks." + strconv.FormatUint(chainID, 10)
}
