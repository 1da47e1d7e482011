package indexer

// The first step of a seeded start (issue 21): every account of the state
// at a block, read from the node page by page in the state trie's key
// order, each checked before it is taken. Publishing them as the block's
// delta comes next; see docs/SEED.md.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/holiman/uint256"
)

// MaxAccountPage is the most accounts geth answers in one
// debug_accountRange (its AccountRangeMaxResults).
const MaxAccountPage = 256

// ErrNoPreimages: the node cannot name the accounts of its state (geth
// keeps a trie of hashed addresses, and the addresses themselves only with
// --cache.preimages from a full sync).
var ErrNoPreimages = errors.New("node cannot name the accounts of its state")

// ErrBadAccountPage: a debug_accountRange answer balidx cannot take (an
// account whose key is not its address's hash, a balance that is not a
// uint256, keys out of order, a page larger than asked).
var ErrBadAccountPage = errors.New("node answered debug_accountRange with a page balidx cannot take")

// StateAccount is one account of the state at a block: its address, its
// key in the state trie (the Keccak-256 of the address, the order pages
// come in) and its balance.
type StateAccount struct {
	Address common.Address
	Key     common.Hash
	Balance uint256.Int
}

// AccountPage is one page of a state's accounts, in key order, and the key
// the next page starts from (nil after the last page).
type AccountPage struct {
	Accounts []StateAccount
	Next     []byte
}

// accountRangeAnswer is what geth's debug_accountRange answers (its
// state.Dump, without code or storage).
type accountRangeAnswer struct {
	Accounts map[string]struct {
		Balance string          `json:"balance"`
		Address *common.Address `json:"address"`
		Key     hexutil.Bytes   `json:"key"`
	} `json:"accounts"`
	Next hexutil.Bytes `json:"next"`
}

// AccountRange reads the page of at most max accounts (1..MaxAccountPage)
// of the state at block at whose keys start at start (nil: the first).
// Accounts the node cannot name are asked for too ("incompletes"), so that
// a node without preimages is refused (ErrNoPreimages) rather than its
// state taken for smaller than it is.
func (n *Node) AccountRange(ctx context.Context, at common.Hash, start []byte, max int) (AccountPage, error) {
	if max < 1 || max > MaxAccountPage {
		return AccountPage{}, fmt.Errorf("account page of %d: want 1..%d", max, MaxAccountPage)
	}
	var ans accountRangeAnswer
	if err := n.call(ctx, &ans, "debug_accountRange", at, hexutil.Bytes(start), max, true, true, true); err != nil {
		return AccountPage{}, err
	}
	return ans.page(start, max)
}

// page checks an answer and puts its accounts in key order.
func (ans *accountRangeAnswer) page(start []byte, max int) (AccountPage, error) {
	if len(ans.Accounts) > max {
		return AccountPage{}, fmt.Errorf("%w: %d accounts, %d asked for", ErrBadAccountPage, len(ans.Accounts), max)
	}
	if len(ans.Next) != 0 && len(ans.Next) != common.HashLength {
		return AccountPage{}, fmt.Errorf("%w: a next key of %d bytes", ErrBadAccountPage, len(ans.Next))
	}
	p := AccountPage{Accounts: make([]StateAccount, 0, len(ans.Accounts))}
	for _, a := range ans.Accounts {
		if len(a.Key) != common.HashLength {
			return AccountPage{}, fmt.Errorf("%w: a key of %d bytes", ErrBadAccountPage, len(a.Key))
		}
		key := common.Hash(a.Key)
		if a.Address == nil {
			return AccountPage{}, fmt.Errorf("%w: the account of key %s has no address (no preimage): "+
				"seed from a node that keeps them — geth with --cache.preimages from a full sync, or Erigon", ErrNoPreimages, key)
		}
		if crypto.Keccak256Hash(a.Address[:]) != key {
			return AccountPage{}, fmt.Errorf("%w: account %s under key %s, not its hash", ErrBadAccountPage, a.Address, key)
		}
		if bytes.Compare(key[:], start) < 0 || len(ans.Next) > 0 && bytes.Compare(key[:], ans.Next) >= 0 {
			return AccountPage{}, fmt.Errorf("%w: key %s outside the page [%x, %x)", ErrBadAccountPage, key, start, []byte(ans.Next))
		}
		acct := StateAccount{Address: *a.Address, Key: key}
		if err := acct.Balance.SetFromDecimal(a.Balance); err != nil {
			return AccountPage{}, fmt.Errorf("%w: account %s's balance %.80q: %v", ErrBadAccountPage, a.Address, a.Balance, err)
		}
		p.Accounts = append(p.Accounts, acct)
	}
	slices.SortFunc(p.Accounts, func(x, y StateAccount) int { return bytes.Compare(x.Key[:], y.Key[:]) })
	if len(ans.Next) > 0 {
		p.Next = ans.Next
	}
	return p, nil
}

// EachAccount calls fn with every page of the state at block at, from key
// start (nil: the first) to the last, max accounts a page: the caller holds
// one page at a time, whatever the state's size, and may resume from any
// page's Next.
func (n *Node) EachAccount(ctx context.Context, at common.Hash, start []byte, max int, fn func(AccountPage) error) error {
	for {
		p, err := n.AccountRange(ctx, at, start, max)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		if p.Next == nil {
			return nil
		}
		start = p.Next
	}
}
