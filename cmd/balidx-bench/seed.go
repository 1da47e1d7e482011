package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/balidx/balidx/indexer"
	"github.com/ethereum/go-ethereum/rpc"
)

// mainnetAccounts is the account count the seed's time is extrapolated to
// (Ethereum mainnet's state held ~250–300M accounts in 2025).
const mainnetAccounts = 300_000_000

// seedRead reads the whole state of the node at host as a seeded start
// does with its defaults (indexer.StateReader: every account checked, 256
// a page, DefaultSeedWorkers key ranges at once), and adds its rate to the
// summary.
func seedRead(ctx context.Context, host string, w io.Writer, s *summary) error {
	node, err := indexer.Dial(ctx, "http://"+host)
	if err != nil {
		return err
	}
	defer node.Close()
	head, err := node.HeaderByNumber(ctx, rpc.LatestBlockNumber)
	if err != nil {
		return err
	}
	start := time.Now()
	accounts, pages := 0, 0
	reader := indexer.StateReader{Node: node, Page: indexer.MaxAccountPage, Workers: indexer.DefaultSeedWorkers}
	out := make(chan indexer.AccountPage)
	done := make(chan error, 1)
	go func() { done <- reader.Read(ctx, head.Hash, nil, out) }()
	for p := range out {
		accounts += len(p.Accounts)
		pages++
	}
	if err := <-done; err != nil {
		return fmt.Errorf("seed read: %w", err)
	}
	took := time.Since(start)
	rate := float64(accounts) / took.Seconds()
	fmt.Fprintf(w, "\nseed read: %d accounts in %d pages from geth in %s: %.0f accounts/s; %d accounts would take %.1f h\n",
		accounts, pages, took.Round(time.Millisecond), rate, mainnetAccounts, mainnetAccounts/rate/3600)
	s.add(fmt.Sprintf("seed: accounts read from geth a second (whole state, 256 a page, %d key ranges at once)", indexer.DefaultSeedWorkers), rate, ">=", 20_000)
	s.add(fmt.Sprintf("seed: hours to read %dM accounts at that rate", mainnetAccounts/1_000_000), mainnetAccounts/rate/3600, "<=", 4)
	return nil
}
