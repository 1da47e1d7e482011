package balidx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/holiman/uint256"
)

// NativeAsset is the asset of the chain's own coin; every other asset is
// named by its ERC-20 contract address.
var NativeAsset = common.Address{}

// Change is one balance that changed in a block: the amount held by Account
// of Asset before the block (Pre) and after it (Post). Absolute amounts make
// applying idempotent and let the applier check Pre against what it holds.
type Change struct {
	Account common.Address
	Asset   common.Address // NativeAsset or an ERC-20 contract
	Pre     uint256.Int
	Post    uint256.Int
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

type changeJSON struct {
	Account common.Address `json:"account"`
	Asset   string         `json:"asset"`
	Pre     string         `json:"pre"`
	Post    string         `json:"post"`
}

const nativeName = "native"

// A Change's JSON is the form the event format carries (events/FORMAT.md,
// pinned by its golden files).

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
