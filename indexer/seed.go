package indexer

// A seeded start: every account of the state at a block, read from the
// node page by page in the state trie's key order, each checked before it
// is taken, and published page by page before the block after it is
// followed (events/FORMAT.md "Seeds").

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

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

// seed publishes the state at block StartBlock, page by page, each page one
// message whose changes are the page's accounts holding any of the native
// coin (pre 0), before the block after it is followed. The stream is its
// record: resume, the last seed page on the stream, says where a seed cut
// short (a crash, a restart) goes on — its next key, the same pages after
// it — so that a seed interrupted anywhere ends as one that was not. It
// returns the seed's last page.
func (ix *Indexer) seed(ctx context.Context, pub *events.Publisher, resume *events.BlockDelta) (*events.BlockDelta, error) {
	n := ix.cfg.StartBlock
	if resume != nil {
		n = resume.Number // the stream's seed, whatever this start was told
	}
	h, err := ix.seedBlock(ctx, n)
	if err != nil {
		return nil, err
	}
	page, start := uint64(1), []byte(nil)
	if resume != nil {
		if h.Hash != resume.Hash {
			return nil, fmt.Errorf("%w: the seed on the stream is of block %d %s, the node's block %d is now %s: a reorg deeper than the trust policy; start again on an empty stream",
				ErrBadAnswer, resume.Number, resume.Hash, n, h.Hash)
		}
		page, start = resume.Seed.Page+1, resume.Seed.Next
		ix.cfg.Log.Info("resuming the seed", "block", n, "page", page)
	} else {
		ix.cfg.Log.Info("seeding the state", "block", n, "hash", h.Hash)
	}
	block := h.Block()
	progress := newSeedProgress(ix.cfg.Log, ix.cfg.Now, n, ix.cfg.Progress)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the readers, when a publish fails
	pages := make(chan AccountPage)
	read := make(chan error, 1)
	reader := StateReader{Node: ix.cfg.Node, Page: ix.cfg.SeedPage, Workers: ix.cfg.SeedWorkers, Rate: ix.cfg.SeedRate, Retry: ix.retrying}
	go func() { read <- reader.Read(ctx, h.Hash, start, pages) }()
	for {
		p, ok := <-pages
		if !ok {
			err := <-read
			if err == nil {
				err = errors.New("the state's pages ended before its last page") // readState closes pages only after the last one, or on an error
			}
			return nil, err
		}
		changes := make([]balidx.Change, 0, len(p.Accounts))
		for _, a := range p.Accounts {
			if !a.Balance.IsZero() { // an absent account holds 0: coverage is full
				changes = append(changes, balidx.Change{Account: a.Address, Asset: balidx.NativeAsset, Post: a.Balance})
			}
		}
		balidx.SortChanges(changes)
		d := events.BlockDelta{Version: events.Version, ChainID: ix.chainID, Block: block, Part: 1, Parts: 1, Changes: changes,
			Seed: &balidx.SeedPage{Page: page, Next: p.Next, Last: p.Next == nil}}
		if err := ix.retrying(ctx, "publish seed page", func() error { return pub.Publish(ctx, []events.BlockDelta{d}) }); err != nil {
			return nil, err
		}
		ix.metrics.seedAccounts.Add(float64(len(p.Accounts)))
		ix.metrics.changes.Add(float64(len(changes)))
		progress.page(len(p.Accounts), p.Next)
		if p.Next == nil {
			progress.done()
			return &d, nil
		}
		page = page + 1
	}
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

// seedBlock waits until block n is trusted and returns it.
func (ix *Indexer) seedBlock(ctx context.Context, n uint64) (*NodeBlock, error) {
	for {
		head, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.LatestBlockNumber)
		if err == nil && head != nil {
			trusted, ok, terr := ix.trusted(ctx, head)
			if err = terr; err == nil && ok && trusted >= n {
				h, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(n))
				if err == nil && (h == nil || uint64(h.Number) != n) {
					err = fmt.Errorf("%w: block %d is trusted but the node does not return it", ErrBadAnswer, n)
				}
				if err == nil {
					return h, nil
				}
			}
		}
		if err != nil && isFatal(err) {
			return nil, err
		}
		if err != nil {
			ix.cfg.Log.Warn("waiting for the seed's block", "block", n, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ix.cfg.PollInterval):
		}
	}
}

// retrying runs f until it succeeds, fails for good (isFatal), or ctx ends,
// waiting longer after each failure.
func (ix *Indexer) retrying(ctx context.Context, what string, f func() error) error {
	backoff := newBackoff(ix.cfg.PollInterval, 30*time.Second)
	for {
		err := f()
		if err == nil || isFatal(err) || ctx.Err() != nil {
			return err
		}
		ix.metrics.failures.Inc()
		wait := backoff.next()
		ix.cfg.Log.Warn(what+" failed, will retry", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// seedProgress shows a seed's progress: a bar with the rate and an ETA on
// a terminal, else a log line every seedLogEvery (accounts read, their
// rate, the share done, the time left). State keys are hashes, spread
// evenly, so the position of the next key says how much of the state has
// been read.
type seedProgress struct {
	log           *slog.Logger
	now           func() time.Time
	block         uint64
	start, logged time.Time
	accounts      int
	startFraction float64
	fractionKnown bool
	bar           *progressbar.ProgressBar // nil: log lines
}

const (
	seedLogEvery = 10 * time.Second
	barSteps     = 1 << 20 // of the key space
)

// newSeedProgress draws a bar on terminal, if any.
func newSeedProgress(log *slog.Logger, now func() time.Time, block uint64, terminal io.Writer) *seedProgress {
	t := now()
	p := &seedProgress{log: log, now: now, block: block, start: t, logged: t}
	if terminal != nil {
		p.bar = progressbar.NewOptions64(barSteps, progressbar.OptionSetWriter(terminal),
			progressbar.OptionSetDescription(fmt.Sprintf("seeding block %d", block)),
			progressbar.OptionSetPredictTime(true), progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(30))
	}
	return p
}

func (s *seedProgress) page(accounts int, next []byte) {
	s.accounts += accounts
	if next == nil {
		return
	}
	fraction := float64(binary.BigEndian.Uint64(next)) / (1 << 64)
	if !s.fractionKnown {
		s.startFraction, s.fractionKnown = fraction, true
	}
	t := s.now()
	rate := float64(s.accounts) / max(t.Sub(s.start).Seconds(), 1e-9)
	if s.bar != nil {
		s.bar.Describe(fmt.Sprintf("seeding block %d: %d accounts, %.0f/s", s.block, s.accounts, rate))
		_ = s.bar.Set64(int64(fraction * barSteps))
		return
	}
	if t.Sub(s.logged) < seedLogEvery {
		return
	}
	s.logged = t
	elapsed := t.Sub(s.start)
	args := []any{"block", s.block, "accounts", s.accounts, "per_second", int(rate), "done", fmt.Sprintf("%.1f%%", 100*fraction)}
	if read := fraction - s.startFraction; read > 0 {
		args = append(args, "eta", (time.Duration(float64(elapsed) * (1 - fraction) / read)).Round(time.Second))
	}
	s.log.Info("seeding", args...)
}

func (s *seedProgress) done() {
	if s.bar != nil {
		_ = s.bar.Finish()
	}
	elapsed := s.now().Sub(s.start)
	s.log.Info("seeded", "block", s.block, "accounts", s.accounts, "took", elapsed.Round(time.Millisecond),
		"per_second", int(float64(s.accounts)/max(elapsed.Seconds(), 1e-9)))
}

// Seed workers: key ranges of the state read from the node at once.
const (
	DefaultSeedWorkers = 4
	MaxSeedWorkers     = 32
)
