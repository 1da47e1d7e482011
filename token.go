package balidx

import "github.com/ethereum/go-ethereum/common"

// Withheld names a token whose balances are not served, and why.
type Withheld struct {
	Asset  common.Address `json:"asset"`
	Reason Reason         `json:"reason"`
}

// Reason says why a token's balances are withheld.
type Reason string

// The reasons a token is withheld (events/FORMAT.md, docs/API.md).
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
