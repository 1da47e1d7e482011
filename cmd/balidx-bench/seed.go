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
// does (indexer.Node.EachAccount: every account checked, 256 a page, one
// page at a time), and adds its rate to the summary.
func seedRead(ctx context.Context, host string, out io.Writer, s *summary) error {
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
	err = node.EachAccount(ctx, head.Hash, nil, indexer.MaxAccountPage, func(p indexer.AccountPage) error {
		accounts += len(p.Accounts)
		pages++
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed read: %w", err)
	}
	took := time.Since(start)
	rate := float64(accounts) / took.Seconds()
	fmt.Fprintf(out, "\nseed read: %d accounts in %d pages from geth in %s: %.0f accounts/s; %d accounts would take %.1f h\n",
		accounts, pages, took.Round(time.Millisecond), rate, mainnetAccounts, mainnetAccounts/rate/3600)
	s.add("seed: accounts read from geth a second (whole state, 256 a page, one page at a time)", rate, ">=", 20_000)
	s.add(fmt.Sprintf("seed: hours to read %dM accounts at that rate", mainnetAccounts/1_000_000), mainnetAccounts/rate/3600, "<=", 4)
	return nil
}
