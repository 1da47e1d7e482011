package indexer

// A seeded start: every account of the state at a block, read from the
// node page by page in the state trie's key order, each checked before it
// is taken, and published page by page before the block after it is
// followed (events/FORMAT.md "Seeds").

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/time/rate"
)

// seed publishes the state at block StartBlock, page by page, before the
// block after it is followed: the native coin's accounts, each page one
// message whose changes are the page's accounts holding any of the coin
// (pre 0), then each token of SeedTokens (seedtokens.go). The stream is its
// record: resume, the last seed page on the stream, says where a seed cut
// short (a crash, a restart) goes on — the same pages after it — so that a
// seed interrupted anywhere ends as one that was not. It returns the
// seed's last page.
func (ix *Indexer) seed(ctx context.Context, pub *events.Publisher, resume *events.BlockDelta) (*events.BlockDelta, error) {
	n := ix.cfg.StartBlock
	if resume != nil {
		n = resume.Number // the stream's seed, whatever this start was told
	}
	h, err := ix.seedBlock(ctx, n)
	if err != nil {
		return nil, err
	}
	s := &seeding{ix: ix, pub: pub, head: h, block: h.Block(), hash: h.Hash, tokens: seedListHash(ix.cfg.SeedTokens), page: 1,
		limit: rate.NewLimiter(rate.Inf, 1), progress: newSeedProgress(ix.cfg.Log, ix.cfg.Now, n, ix.cfg.Progress)}
	if ix.cfg.SeedRate > 0 {
		s.limit = rate.NewLimiter(rate.Limit(ix.cfg.SeedRate), 1)
	}
	var at *balidx.SeedPage // where a resumed seed stands
	if resume != nil {
		switch {
		case h.Hash != resume.Hash:
			return nil, fmt.Errorf("%w: the seed on the stream is of block %d %s, the node's block %d is now %s: a reorg deeper than the trust policy; start again on an empty stream",
				ErrBadAnswer, resume.Number, resume.Hash, n, h.Hash)
		case resume.Seed.Tokens != s.tokens:
			return nil, fmt.Errorf("%w: the seed on the stream was begun with the token list %s, this start has %s: give it the same --seed-tokens file, or start again on an empty stream",
				ErrSeedListChanged, resume.Seed.Tokens, s.tokens)
		}
		at, s.page = resume.Seed, resume.Seed.Page+1
		if at.Token != nil {
			ix.cfg.Log.Info("resuming the seed", "block", n, "page", s.page, "token", *at.Token, "logs_from", at.LogsFrom)
		} else {
			ix.cfg.Log.Info("resuming the seed", "block", n, "page", s.page)
		}
	} else {
		ix.cfg.Log.Info("seeding the state", "block", n, "hash", h.Hash, "tokens", len(ix.cfg.SeedTokens))
	}
	last := resume
	if at == nil || at.Token == nil && len(at.Next) > 0 {
		var start []byte
		if at != nil {
			start = at.Next
		}
		if last, err = s.accounts(ctx, start); err != nil || last.Seed.Last {
			return last, err
		}
	}
	if err := s.findMulticall(ctx); err != nil {
		return nil, err
	}
	list := ix.cfg.SeedTokens
	i, from, err := tokensFrom(list, at, n)
	if err != nil {
		return nil, err
	}
	for ; i < len(list); i++ {
		if last, err = s.seedToken(ctx, list[i], from, i+1 == len(list)); err != nil {
			return nil, err
		}
		if i+1 < len(list) {
			from = list[i+1].From
		}
	}
	s.progress.done()
	return last, nil
}

// accounts publishes the pages of the native coin's accounts from state
// key start on, and returns the last.
func (s *seeding) accounts(ctx context.Context, start []byte) (*events.BlockDelta, error) {
	ix := s.ix
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the readers, when a publish fails
	pages := make(chan AccountPage)
	read := make(chan error, 1)
	reader := StateReader{Node: ix.cfg.Node, Page: ix.cfg.SeedPage, Workers: ix.cfg.SeedWorkers, Rate: ix.cfg.SeedRate, Retry: ix.retrying}
	go func() { read <- reader.Read(ctx, s.hash, start, pages) }()
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
		last := p.Next == nil && len(ix.cfg.SeedTokens) == 0
		d, err := s.publish(ctx, changes, &balidx.SeedPage{Next: p.Next, Last: last})
		if err != nil {
			return nil, err
		}
		ix.metrics.seedAccounts.Add(float64(len(p.Accounts)))
		s.progress.page(len(p.Accounts), p.Next)
		if p.Next == nil {
			if last {
				s.progress.done()
			}
			return d, nil
		}
	}
}

// findMulticall makes the token seed read balances through Multicall3
// when it is deployed at the seed's block.
func (s *seeding) findMulticall(ctx context.Context) error {
	at := s.ix.cfg.Multicall3
	if at == (common.Address{}) {
		return nil
	}
	var deployed bool
	err := s.ix.retrying(ctx, "look for Multicall3", func() (err error) {
		deployed, err = s.ix.cfg.Node.HasCode(ctx, at, s.hash)
		return err
	})
	if deployed {
		s.multicall = at
	}
	s.ix.cfg.Log.Info("reading token balances", "multicall3", deployed, "at", at)
	return err
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

// tokenChunk shows a token's scan at its logs up to block to, having read
// holders holders.
func (s *seedProgress) tokenChunk(token common.Address, to uint64, holders int) {
	t := s.now()
	if s.bar != nil {
		s.bar.Describe(fmt.Sprintf("seeding block %d: token %s, logs to block %d, %d holders", s.block, token.Hex(), to, holders))
		_ = s.bar.Set64(int64(float64(to) / float64(max(s.block, 1)) * barSteps))
		return
	}
	if t.Sub(s.logged) < seedLogEvery && to < s.block {
		return
	}
	s.logged = t
	s.log.Info("seeding a token", "block", s.block, "token", token, "logs_to", to, "holders", holders,
		"done", fmt.Sprintf("%.1f%%", 100*float64(to)/float64(max(s.block, 1))))
}

func (s *seedProgress) done() {
	if s.bar != nil {
		_ = s.bar.Finish()
	}
	elapsed := s.now().Sub(s.start)
	s.log.Info("seeded", "block", s.block, "accounts", s.accounts, "took", elapsed.Round(time.Millisecond),
		"per_second", int(float64(s.accounts)/max(elapsed.Seconds(), 1e-9)))
}
