package indexer

// The tokens of a seed (--seed-tokens): for each token of the list, its
// Transfer logs from its deployment block to the seed's block N, scanned
// in chunks that adapt to the node's limits; every from and to in them is
// a possible holder, whose balanceOf at N is read and, when not zero,
// published. A page per chunk (or per seedHolderPage holders) records how
// far the scan stands, so that a seed cut short goes on from its last
// chunk, and the token's last page makes its coverage full.

import (
	"context"
	"fmt"
	"slices"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/holiman/uint256"
	"golang.org/x/time/rate"
)

// Scanning a token's logs.
const (
	// DefaultSeedLogSpan is the most blocks one eth_getLogs asks for,
	// unless Config says otherwise; the span halves when the node refuses
	// a range as too broad, and grows back while chunks hold few logs.
	DefaultSeedLogSpan = 100_000
	firstLogSpan       = 2_000
	chunkLogs          = 5_000 // the logs a chunk aims at
	// seedHolderPage bounds the holders read for one page.
	seedHolderPage = events.MaxChangesPerPart
	// maxSeenHolders bounds the holders a token's seed remembers having
	// read; past it, the memory is cleared and a holder found again is
	// read again (a page may restate a holding, with the same amount).
	maxSeenHolders = 1 << 20
)

// tokenSeed is the seed of one token in progress.
type tokenSeed struct {
	s     *seeding
	token SeedToken
	last  bool // the list's last token: its last page is the seed's
	seen  map[common.Address]struct{}
	span  uint64
}

// seedToken scans token t's logs from block from to the seed's block and
// publishes its holders' balances, returning the token's last page.
func (s *seeding) seedToken(ctx context.Context, t SeedToken, from uint64, last bool) (*events.BlockDelta, error) {
	ts := &tokenSeed{s: s, token: t, last: last, seen: map[common.Address]struct{}{}, span: min(firstLogSpan, s.ix.cfg.SeedLogSpan)}
	n := s.block.Number
	s.ix.cfg.Log.Info("seeding a token", "token", t.Contract, "logs_from", from, "block", n)
	// A list's address without a contract at N is a mistake to fix (a
	// typo, another chain's token), not a token to withhold.
	var deployed bool
	err := s.ix.retrying(ctx, "look for the token", func() (err error) {
		deployed, err = s.ix.cfg.Node.HasCode(ctx, t.Contract, s.hash)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !deployed {
		return nil, fmt.Errorf("%w: %s has no contract at block %d: fix its address in the token list, or remove it", ErrUnseedableToken, t.Contract.Hex(), n)
	}
	// What balanceOf depends on, traced at the seed's block (with the
	// token's own address as the holder): a token the indexer cannot keep
	// exact is withheld from the seed's block on, its holders not read.
	var reason balidx.Reason
	err = s.ix.retrying(ctx, "trace balanceOf", func() (err error) {
		_, reason, err = s.ix.derive.profile(ctx, s.head, t.Contract, t.Contract)
		return err
	})
	if err != nil {
		return nil, err
	}
	if reason != "" {
		s.ix.cfg.Log.Warn("a seeded token is withheld", "token", t.Contract, "reason", reason)
		token := t.Contract
		return s.publish(ctx, nil, &balidx.SeedPage{Token: &token, LogsFrom: n + 1, Last: last}, balidx.Withheld{Asset: token, Reason: reason})
	}
	holders := 0
	from = min(from, n+1) // a deployment block after the seed's: nothing to scan
	for {
		to := min(from+ts.span-1, n)
		logs, ok, err := ts.logs(ctx, from, to)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // the span was halved
		}
		found := ts.holders(logs)
		holders += len(found)
		var d *events.BlockDelta
		for lo := 0; lo == 0 || lo < len(found); lo += seedHolderPage {
			group := found[lo:min(lo+seedHolderPage, len(found))]
			logsFrom := from // a chunk's pages but its last: the chunk is scanned again after a cut
			if lo+seedHolderPage >= len(found) {
				logsFrom = to + 1
			}
			if d, err = ts.publish(ctx, group, logsFrom); err != nil {
				return nil, err
			}
		}
		s.progress.tokenChunk(t.Contract, to, holders)
		if d.Seed.TokenDone(n) {
			return d, nil
		}
		from = to + 1
	}
}

// logs reads the token's Transfer logs of blocks from..to; ok false means
// the node refused the range as too broad and the span was halved.
func (ts *tokenSeed) logs(ctx context.Context, from, to uint64) (logs []types.Log, ok bool, err error) {
	if from > to { // from is the seed's block + 1
		return nil, true, nil
	}
	err = ts.s.ix.retrying(ctx, "read Transfer logs", func() error {
		if err := ts.s.limit.Wait(ctx); err != nil {
			return err
		}
		var err error
		logs, err = ts.s.ix.cfg.Node.TokenTransfers(ctx, ts.token.Contract, from, to)
		if err != nil && to > from && isRangeLimit(err) {
			ts.span = max((to-from+1)/2, 1)
			ts.s.ix.cfg.Log.Info("the node refused a range of logs: halving the span", "token", ts.token.Contract, "from", from, "to", to, "span", ts.span, "err", err)
			return nil
		}
		ok = err == nil
		return err
	})
	if err != nil || !ok {
		return nil, false, err
	}
	switch {
	case len(logs) < chunkLogs/2:
		ts.span = min(2*ts.span, ts.s.ix.cfg.SeedLogSpan)
	case len(logs) > 2*chunkLogs:
		ts.span = max(ts.span/2, 1)
	}
	return logs, true, nil
}

// holders returns the holders of logs not read yet, in order of appearance.
func (ts *tokenSeed) holders(logs []types.Log) []common.Address {
	var found []common.Address
	for _, l := range logs {
		for _, topic := range l.Topics[1:3] {
			h := common.BytesToAddress(topic[12:])
			if _, read := ts.seen[h]; read || h == (common.Address{}) {
				continue
			}
			if len(ts.seen) == maxSeenHolders {
				clear(ts.seen)
			}
			ts.seen[h] = struct{}{}
			found = append(found, h)
		}
	}
	return found
}

// publish reads holders' balances at the seed's block and publishes the
// non-zero ones as the next page, which takes the token's logs up to
// block logsFrom.
func (ts *tokenSeed) publish(ctx context.Context, holders []common.Address, logsFrom uint64) (*events.BlockDelta, error) {
	s := ts.s
	var amounts []uint256.Int
	if len(holders) > 0 {
		err := s.ix.retrying(ctx, "read balances", func() error {
			if err := s.limit.Wait(ctx); err != nil {
				return err
			}
			var err error
			amounts, err = s.ix.cfg.Node.HolderBalances(ctx, ts.token.Contract, holders, s.hash, s.multicall)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	changes := make([]balidx.Change, 0, len(holders))
	for i, h := range holders {
		if !amounts[i].IsZero() {
			changes = append(changes, balidx.Change{Account: h, Asset: ts.token.Contract, Post: amounts[i]})
		}
	}
	balidx.SortChanges(changes)
	token := ts.token.Contract
	page := &balidx.SeedPage{Token: &token, LogsFrom: logsFrom}
	if page.TokenDone(s.block.Number) {
		// The applier makes the token's coverage full only if the amounts
		// seeded add up to its total supply: no holder was missed.
		page.Last = ts.last
		err := s.ix.retrying(ctx, "read the total supply", func() (err error) {
			page.TotalSupply, err = s.ix.cfg.Node.TotalSupply(ctx, token, s.hash)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	d, err := s.publish(ctx, changes, page)
	if err != nil {
		return nil, err
	}
	s.ix.metrics.seedHolders.Add(float64(len(holders)))
	return d, nil
}

// seeding is one seed in progress: where it publishes, and what every page
// shares.
type seeding struct {
	ix        *Indexer
	pub       *events.Publisher
	head      *NodeBlock // the seed's block
	block     balidx.Block
	hash      common.Hash
	tokens    common.Hash // the list's hash
	page      uint64      // the next page's number
	limit     *rate.Limiter
	multicall common.Address // zero: balances are read in JSON-RPC batches
	progress  *seedProgress
}

// publish publishes the seed's next page (withholding, on a token's last
// page, the token).
func (s *seeding) publish(ctx context.Context, changes []balidx.Change, page *balidx.SeedPage, withheld ...balidx.Withheld) (*events.BlockDelta, error) {
	page.Page, page.Tokens = s.page, s.tokens
	d := events.BlockDelta{Version: events.SeedVersion, ChainID: s.ix.chainID, Block: s.block, Part: 1, Parts: 1, Changes: changes, Seed: page, Withheld: withheld}
	if err := s.ix.retrying(ctx, "publish seed page", func() error { return s.pub.Publish(ctx, []events.BlockDelta{d}) }); err != nil {
		return nil, err
	}
	s.ix.derive.book.record(changes, withheld)
	s.ix.metrics.changes.Add(float64(len(changes)))
	s.page++
	return &d, nil
}

// tokensFrom says where the token part of a seed resumed after page
// resume goes on: the index in list of the token to seed next, and the
// block its logs start from.
func tokensFrom(list []SeedToken, resume *balidx.SeedPage, number uint64) (int, uint64, error) {
	if resume == nil || resume.Token == nil {
		return 0, list[0].From, nil // the accounts' last page: the first token
	}
	i := slices.IndexFunc(list, func(t SeedToken) bool { return t.Contract == *resume.Token })
	if i < 0 {
		return 0, 0, fmt.Errorf("%w: the seed on the stream stopped in token %s, not in the list", ErrSeedListChanged, resume.Token.Hex())
	}
	if !resume.TokenDone(number) {
		return i, resume.LogsFrom, nil
	}
	if i+1 == len(list) {
		return 0, 0, fmt.Errorf("%w: the seed on the stream ended its last token without its last page", ErrBadAnswer)
	}
	return i + 1, list[i+1].From, nil
}
