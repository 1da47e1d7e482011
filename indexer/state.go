package indexer

// Reading a node's whole state at a block: one page of debug_accountRange
// (Node.AccountRange), each account checked, and every page in key order,
// several key ranges at once (StateReader). A seeded start reads it so.

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
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
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

// StateReader reads the pages of a state in key order, several key ranges
// at once: what a seed reads, and what `make bench` times.
type StateReader struct {
	Node    *Node
	Page    int     // accounts a page, 1..MaxAccountPage
	Workers int     // key ranges read at once
	Rate    float64 // pages a second in all; 0: no bound
	// Retry runs one node call until it succeeds or fails for good; nil:
	// once.
	Retry func(ctx context.Context, what string, f func() error) error
}

// Read reads the pages of the state at block at from key start to the end
// and sends them on out in key order, closing it after the last. The key
// space after start is cut in Workers ranges read at once, at most Rate
// pages a second in all, each range at most seedReadAhead pages ahead of
// what out takes: memory is bounded whatever the state's size. A range's
// last page has the next range's first key as its Next; the state's last
// page has none.
func (r *StateReader) Read(ctx context.Context, at common.Hash, start []byte, out chan<- AccountPage) error {
	defer close(out)
	bounds := splitKeys(start, max(r.Workers, 1))
	limit := rate.NewLimiter(rate.Inf, 1)
	if r.Rate > 0 {
		limit = rate.NewLimiter(rate.Limit(r.Rate), 1)
	}
	ranges := make([]chan AccountPage, len(bounds))
	g, gctx := errgroup.WithContext(ctx)
	for i := range bounds {
		ranges[i] = make(chan AccountPage, seedReadAhead)
		var hi []byte
		if i+1 < len(bounds) {
			hi = bounds[i+1]
		}
		g.Go(func() error {
			defer close(ranges[i])
			return r.readRange(gctx, at, bounds[i], hi, limit, ranges[i])
		})
	}
	g.Go(func() error {
		for _, pages := range ranges {
			for p := range pages {
				select {
				case out <- p:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	})
	return g.Wait()
}

// seedReadAhead bounds the pages each range reader holds ahead.
const seedReadAhead = 4

// readRange reads the pages of keys in [lo, hi) (hi nil: to the end).
func (r *StateReader) readRange(ctx context.Context, at common.Hash, lo, hi []byte, limit *rate.Limiter, out chan<- AccountPage) error {
	retry := r.Retry
	if retry == nil {
		retry = func(_ context.Context, _ string, f func() error) error { return f() }
	}
	for {
		if err := limit.Wait(ctx); err != nil {
			return err
		}
		var p AccountPage
		if err := retry(ctx, "seed page", func() (err error) {
			p, err = r.Node.AccountRange(ctx, at, lo, r.Page)
			return err
		}); err != nil {
			return err
		}
		last := hi != nil && (p.Next == nil || bytes.Compare(p.Next, hi) >= 0)
		if last { // the rest is the next range's
			keep := len(p.Accounts)
			for keep > 0 && bytes.Compare(p.Accounts[keep-1].Key[:], hi) >= 0 {
				keep--
			}
			p.Accounts, p.Next = p.Accounts[:keep], hi
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
		if last || p.Next == nil {
			return nil
		}
		lo = p.Next
	}
}

// splitKeys cuts the keys from start (nil: the first) to the end in n
// ranges of about equal width, and returns their first keys.
func splitKeys(start []byte, n int) [][]byte {
	var lo uint256.Int
	lo.SetBytes(start)
	width := new(uint256.Int).SetAllOne()
	width.Sub(width, &lo)
	width.Div(width, uint256.NewInt(uint64(n)))
	bounds := [][]byte{start}
	for i := 1; i < n && !width.IsZero(); i++ {
		b := new(uint256.Int).Mul(width, uint256.NewInt(uint64(i)))
		b.Add(b, &lo)
		key := b.Bytes32()
		bounds = append(bounds, key[:])
	}
	return bounds
}

// Seed workers: key ranges of the state read from the node at once.
const (
	DefaultSeedWorkers = 4
	MaxSeedWorkers     = 32
)
