package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/balidx/balidx/indexer"
)

// The flags of a seeded start (README "Pointing balidx at your own node",
// docs/CONFIG.md).
func addSeedFlags(fs *flag.FlagSet, cfg *config) {
	fs.BoolVar(&cfg.Seed, "seed", false, "start an empty stream with the whole state at --start-block, read from the node page by page (needs its preimages): the native coin's coverage is full from there (at block 0: the genesis allocation, in pages)")
	fs.StringVar(&cfg.SeedTokens, "seed-tokens", "", "with --seed: file of ERC-20 contracts to seed too, one a line (address, optionally its deployment block; # comments): their coverage is full from --start-block")
	fs.Uint64Var(&cfg.SeedLogSpan, "seed-log-span", indexer.DefaultSeedLogSpan, "most blocks of Transfer logs asked for at once while seeding tokens (the span halves when the node refuses a range)")
	fs.IntVar(&cfg.SeedPage, "seed-page", indexer.MaxAccountPage, "accounts read from the node per debug_accountRange while seeding (1..256)")
	fs.IntVar(&cfg.SeedWorkers, "seed-workers", indexer.DefaultSeedWorkers, "key ranges of the state read from the node at once while seeding (1..32)")
	fs.Float64Var(&cfg.SeedRate, "seed-rate", 0, "at most this many requests a second to the node while seeding: pages of accounts, ranges of logs, pages of up to 1024 token balances (0: no bound but --seed-workers)")
}

// validateSeed checks the seed's flags and reads the token list.
func (c *config) validateSeed() []error {
	var errs []error
	if c.SeedPage < 1 || c.SeedPage > indexer.MaxAccountPage {
		errs = append(errs, fmt.Errorf("--seed-page %d: want 1..%d", c.SeedPage, indexer.MaxAccountPage))
	}
	if c.SeedWorkers < 1 || c.SeedWorkers > indexer.MaxSeedWorkers || c.SeedRate < 0 {
		errs = append(errs, fmt.Errorf("--seed-workers %d, --seed-rate %g: want 1..%d workers and a rate ≥ 0", c.SeedWorkers, c.SeedRate, indexer.MaxSeedWorkers))
	}
	if c.SeedLogSpan < 1 || c.SeedLogSpan > 10_000_000 {
		errs = append(errs, fmt.Errorf("--seed-log-span %d: want 1..10000000 blocks", c.SeedLogSpan))
	}
	if c.SeedTokens == "" {
		return errs
	}
	if !c.Seed {
		errs = append(errs, errors.New("--seed-tokens: tokens are seeded with --seed only"))
	}
	var err error
	if c.seedTokens, err = indexer.ReadSeedTokens(c.SeedTokens); err != nil {
		errs = append(errs, fmt.Errorf("--seed-tokens: %w", err))
	}
	return errs
}
