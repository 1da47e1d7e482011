package indexer

import "errors"

// Errors of the indexer package.
var (
	// ErrNoDebugAPI: the node does not offer the tracing the indexer needs.
	ErrNoDebugAPI = errors.New("node offers no debug API")
	// ErrNoTag: the node has no safe/finalized block (no consensus client).
	ErrNoTag = errors.New("node has no block for the trust tag")
	// ErrHistoricalState: the node pruned the state of the block asked for.
	ErrHistoricalState = errors.New("node no longer has the state of that block")
	// ErrBadAnswer: the node answered something inconsistent or out of limits.
	ErrBadAnswer = errors.New("inconsistent answer from the node")
	// ErrTrustViolation: the chain no longer continues what was published.
	ErrTrustViolation = errors.New("trust violation: reorg deeper than the trust policy")
	// ErrWrongChain: the node, the genesis file or the stream belong to another chain.
	ErrWrongChain = errors.New("wrong chain")
	// ErrNoGenesis: starting at block 0 needs the genesis allocation.
	ErrNoGenesis = errors.New("genesis allocation unavailable")
	// ErrSeedListChanged: a seed is resumed with another token list than
	// it began with.
	ErrSeedListChanged = errors.New("the seed's token list changed")
)
