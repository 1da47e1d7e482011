// Package indexer follows an Ethereum node, derives the balance changes of
// every trusted block and publishes them, in order, as events.BlockDelta.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/events"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultConfirmations is the trust policy unless one is given: a block
// is trusted once head − number ≥ 12.
const DefaultConfirmations = 12

// Config configures an Indexer.
type Config struct {
	Node   *Node
	Events *events.Log // where deltas are published
	Board  *events.StatusBoard
	// Policy: Confirmations (head − number ≥ N), or Tag "safe"/"finalized".
	Policy balidx.Policy
	// StartBlock is where an empty stream starts. 0 seeds the genesis
	// allocation (from GenesisFile, else listed by the node): full coverage.
	StartBlock  uint64
	GenesisFile string
	// Seed makes an empty stream start with the whole state at StartBlock,
	// read from the node (debug_accountRange, which needs the node's
	// preimages) SeedPage accounts a page (default MaxAccountPage): the
	// native coin's coverage is full from there. At block 0 it is the
	// genesis allocation, published page by page instead of as one block.
	Seed     bool
	SeedPage int
	// SeedTokens are the tokens the seed covers after the accounts
	// (seedtokens.go): their Transfer logs scanned at most SeedLogSpan
	// blocks a request (default DefaultSeedLogSpan), their holders'
	// balances read in JSON-RPC batches, or through Multicall3 when it is
	// deployed at Multicall3 at the seed's block (zero address: never).
	SeedTokens  []SeedToken
	SeedLogSpan uint64
	Multicall3  common.Address
	// SeedWorkers key ranges of the state are read at once (default
	// DefaultSeedWorkers), at most SeedRate requests (pages of accounts,
	// ranges of logs, pages of up to 1024 balances: 4 aggregate3 or 11
	// JSON-RPC batches) a second in all (0: no bound).
	SeedWorkers int
	SeedRate    float64
	// Progress, if set, is a terminal the seed's progress bar is drawn on
	// (else it is logged every 10 s).
	Progress io.Writer
	// MaxRefresh bounds the holders of one token re-read at one block when
	// state every holder's balance depends on changes (a rebase); a token
	// that needs more is withheld. Default DefaultMaxRefresh. A replay
	// must use the same value.
	MaxRefresh int
	// PollInterval between looks at the head when the node cannot push new
	// heads (HTTP), and the safety net when it can; default 1s.
	PollInterval time.Duration
	Log          *slog.Logger
	Now          func() time.Time
	// Metrics, if set, receives the indexer's metrics.
	Metrics prometheus.Registerer
}

// Indexer publishes one delta per trusted block.
type Indexer struct {
	cfg     Config
	chainID uint64
	derive  deriver
	metrics *metrics

	mu     sync.Mutex
	status balidx.IndexerStatus
}

// New checks the node (chain id, debug API, trust tag) and returns an Indexer.
func New(ctx context.Context, cfg Config) (*Indexer, error) {
	if cfg.Node == nil || cfg.Events == nil || cfg.Board == nil {
		return nil, errors.New("indexer: node, log and status board are required")
	}
	switch cfg.Policy.Tag {
	case "", "safe", "finalized":
	default:
		return nil, fmt.Errorf("indexer: trust tag %q: want safe or finalized", cfg.Policy.Tag)
	}
	if cfg.Policy.Tag != "" && cfg.Policy.Confirmations != 0 {
		return nil, errors.New("indexer: give confirmations or a trust tag, not both")
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxRefresh == 0 {
		cfg.MaxRefresh = DefaultMaxRefresh
	}
	if cfg.SeedPage == 0 {
		cfg.SeedPage = MaxAccountPage
	}
	if cfg.SeedLogSpan == 0 {
		cfg.SeedLogSpan = DefaultSeedLogSpan
	}
	if len(cfg.SeedTokens) > 0 && !cfg.Seed {
		return nil, errors.New("indexer: a token list seeds tokens only with Seed")
	}
	if cfg.SeedWorkers == 0 {
		cfg.SeedWorkers = DefaultSeedWorkers
	}
	if cfg.Seed && (cfg.SeedPage < 1 || cfg.SeedPage > MaxAccountPage) {
		return nil, fmt.Errorf("indexer: a seed reads 1..%d accounts a page", MaxAccountPage)
	}
	if cfg.SeedWorkers < 1 || cfg.SeedWorkers > MaxSeedWorkers || cfg.SeedRate < 0 {
		return nil, fmt.Errorf("indexer: seed workers %d, rate %g: want 1..%d workers and a rate ≥ 0", cfg.SeedWorkers, cfg.SeedRate, MaxSeedWorkers)
	}
	if cfg.MaxRefresh < 0 {
		return nil, fmt.Errorf("indexer: token refresh ceiling %d: want a positive number", cfg.MaxRefresh)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	chainID, err := cfg.Node.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	if err := cfg.Node.CheckDebugAPI(ctx); err != nil {
		return nil, err
	}
	if err := cfg.Node.CheckTracers(ctx); err != nil {
		return nil, err
	}
	if cfg.Policy.Tag != "" {
		if _, err := tagged(ctx, cfg.Node, cfg.Policy.Tag); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(cfg.Metrics, cfg.Node)
	if err != nil {
		return nil, err
	}
	ix := &Indexer{cfg: cfg, chainID: chainID, derive: deriver{node: cfg.Node, log: cfg.Log, maxRefresh: cfg.MaxRefresh}, metrics: m}
	ix.status = balidx.IndexerStatus{ChainID: chainID, Policy: cfg.Policy}
	return ix, nil
}

// ChainID is the followed chain's id.
func (ix *Indexer) ChainID() uint64 { return ix.chainID }

// Status is the indexer's current status.
func (ix *Indexer) Status() balidx.IndexerStatus {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.status
}

// cursor is where publishing stands.
type cursor struct {
	next       uint64      // the block to publish next
	parentHash common.Hash // the hash published for next-1 (zero: none yet)
	// skipParts > 0: block next was partly published (a crash between its
	// parts); its first skipParts parts are on the stream with hash resumeHash.
	skipParts  int
	resumeHash common.Hash
}

// Run follows the chain and publishes until ctx ends. It returns an error
// only for what a restart cannot fix by itself (another publisher, a wrong
// chain); a trust violation stops publishing but not Run, so that it stays
// visible in the status.
func (ix *Indexer) Run(ctx context.Context) error {
	pub, last, err := ix.cfg.Events.Publisher(ctx, ix.chainID)
	if err != nil {
		return err
	}
	if ix.derive.book, err = loadTokenBook(ctx, ix.cfg.Events, ix.chainID); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("read the tokens the stream holds: %w", err)
	}
	cur := cursor{next: ix.cfg.StartBlock}
	if ix.cfg.Seed && last != nil && last.Seed == nil {
		ix.cfg.Log.Warn("--seed ignored: the stream holds blocks already; it seeds only an empty stream", "last", last.Number)
	}
	if last == nil && ix.cfg.Seed || last != nil && last.Seed != nil && !last.Seed.Last {
		if last, err = ix.seed(ctx, pub, last); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if last != nil {
		if last.Part < last.Parts {
			cur = cursor{next: last.Number, parentHash: last.ParentHash, skipParts: last.Part, resumeHash: last.Hash}
		} else {
			cur = cursor{next: last.Number + 1, parentHash: last.Hash}
		}
		ix.cfg.Log.Info("resuming after the stream's last block", "block", last.Number, "hash", last.Hash, "next", cur.next)
	}
	heads, unsubscribe := ix.subscribe(ctx)
	defer unsubscribe()
	poll := time.NewTicker(ix.cfg.PollInterval)
	defer poll.Stop()
	backoff := newBackoff(ix.cfg.PollInterval, 30*time.Second)
	for {
		err := ix.catchUp(ctx, pub, &cur)
		switch {
		case err == nil:
			backoff.reset()
		case ctx.Err() != nil:
			return nil
		case isFatal(err):
			return err
		default:
			ix.metrics.failures.Inc()
			wait := backoff.next()
			ix.cfg.Log.Warn("indexing failed, will retry", "block", cur.next, "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-heads:
		case <-poll.C:
		}
	}
}

// subscribe asks the node to push new heads; over HTTP it cannot, and the
// poll ticker alone drives Run.
func (ix *Indexer) subscribe(ctx context.Context) (<-chan *NodeBlock, func()) {
	ch := make(chan *NodeBlock, 16)
	sub, err := ix.cfg.Node.rpc.EthSubscribe(ctx, ch, "newHeads")
	if err != nil {
		ix.cfg.Log.Info("node does not push new heads; polling", "interval", ix.cfg.PollInterval, "reason", err)
		return nil, func() {}
	}
	return ch, sub.Unsubscribe
}

// catchUp publishes every trusted block after cur.
func (ix *Indexer) catchUp(ctx context.Context, pub *events.Publisher, cur *cursor) error {
	head, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.LatestBlockNumber)
	if err != nil {
		return err
	}
	if head == nil {
		return fmt.Errorf("%w: no latest block", ErrBadAnswer)
	}
	ix.metrics.head.Set(float64(head.Number))
	ix.mu.Lock()
	ix.status.Head = uint64(head.Number)
	ix.status.HeadSeenAt = ix.cfg.Now().UTC()
	violated := ix.status.TrustViolation != nil
	ix.mu.Unlock()
	if err := ix.cfg.Board.Put(ctx, ix.Status()); err != nil {
		return err
	}
	if violated {
		return nil // publishing stays stopped until an operator repairs
	}
	trusted, ok, err := ix.trusted(ctx, head)
	if err != nil || !ok {
		return err
	}
	for cur.next <= trusted {
		if ctx.Err() != nil {
			return nil
		}
		stop, err := ix.publishBlock(ctx, pub, cur)
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// publishBlock derives and publishes block cur.next. stop is true when a
// trust violation was found instead.
func (ix *Indexer) publishBlock(ctx context.Context, pub *events.Publisher, cur *cursor) (stop bool, err error) {
	h, err := ix.cfg.Node.HeaderByNumber(ctx, rpc.BlockNumber(cur.next))
	if err != nil {
		return false, err
	}
	if h == nil || uint64(h.Number) != cur.next {
		return false, fmt.Errorf("%w: block %d is trusted but the node does not return it", ErrBadAnswer, cur.next)
	}
	if cur.skipParts > 0 && h.Hash != cur.resumeHash {
		return ix.violation(ctx, h, cur.resumeHash, "the block whose first parts were published")
	}
	if cur.parentHash != (common.Hash{}) && h.ParentHash != cur.parentHash {
		h, stop, err = ix.confirmMismatch(ctx, h, cur)
		if err != nil || stop {
			return stop, err
		}
	}
	start := ix.cfg.Now()
	var changes []balidx.Change
	var withheld []balidx.Withheld
	var full []common.Address
	before := ix.derive.stats
	if cur.next == 0 {
		changes, err = genesisChanges(ctx, ix.cfg.Node, ix.cfg.GenesisFile, h)
	} else {
		changes, withheld, full, err = ix.derive.changes(ctx, h)
	}
	ix.metrics.tokenWork(before, ix.derive.stats)
	if err != nil {
		return false, err
	}
	block := h.Block()
	parts := events.Split(ix.chainID, block, changes, withheld)
	events.FullFrom(parts, full)
	if cur.skipParts > 0 {
		if cur.skipParts > len(parts) {
			return false, fmt.Errorf("%w: block %d derives to %d parts, the stream holds %d of it", ErrBadAnswer, cur.next, len(parts), cur.skipParts)
		}
		parts = parts[cur.skipParts:]
	}
	retries := pub.Retries()
	err = pub.Publish(ctx, parts)
	ix.metrics.retries.Add(float64(pub.Retries() - retries))
	if err != nil {
		return false, err
	}
	ix.derive.book.record(changes, withheld)
	for _, w := range withheld {
		ix.metrics.withheld.WithLabelValues(string(w.Reason)).Inc()
	}
	ix.metrics.published.Set(float64(block.Number))
	ix.metrics.blocks.Inc()
	ix.metrics.changes.Add(float64(len(changes)))
	ix.cfg.Log.Debug("published", "block", block.Number, "changes", len(changes), "parts", len(parts), "took", ix.cfg.Now().Sub(start))
	*cur = cursor{next: cur.next + 1, parentHash: h.Hash}
	return false, nil
}

// isFatal tells the errors that waiting cannot cure: the operator has to
// change something (the node's flags, the start block, the publishers).
func isFatal(err error) bool {
	for _, target := range []error{events.ErrPublishConflict, events.ErrTooLarge, ErrWrongChain, ErrHistoricalState, ErrNoGenesis, ErrNoDebugAPI, ErrNoPreimages, ErrBadAccountPage,
		ErrSeedListChanged, ErrUnseedableToken} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
