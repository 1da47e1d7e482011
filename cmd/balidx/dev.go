package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
)

// driveDemo makes a block of random traffic every interval.
func driveDemo(ctx context.Context, demo *devchain.Demo, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := demo.Step(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("demo chain: %w", err)
			}
		}
	}
}

func printDemo(w io.Writer, demo *devchain.Demo, srv *query.Server) {
	base := "http://" + srv.Addr()
	fmt.Fprintf(w, "\nbalidx dev: a simulated chain (id %d) makes a block every interval; balances are served at\n  %s\n\n", devchain.ChainID, base)
	fmt.Fprintf(w, "Demo accounts:\n")
	for _, a := range demo.Accounts {
		fmt.Fprintf(w, "  %s\n", a.Hex())
	}
	fmt.Fprintf(w, "Fee recipient: %s\nToken:     %s\nFee token: %s (burns 1%% of every transfer)\nSplitter:  %s (forwards ETH by internal calls)\n",
		demo.Coinbase.Hex(), demo.Token.Hex(), demo.FeeToken.Hex(), demo.Splitter.Hex())
	fmt.Fprintf(w, "Rebasing token:   %s (rebases without a log: every holder re-read)\n", demo.Odd[devchain.RebaseToken].Hex())
	fmt.Fprintf(w, "Collector token:  %s (2.5%% fee to %s, named by no log)\n", demo.Odd[devchain.CollectorToken].Hex(), demo.Collector.Hex())
	fmt.Fprintf(w, "Quiet-mint token: %s (mints without a log)\n", demo.Odd[devchain.QuietMintToken].Hex())
	fmt.Fprintf(w, "Interest token:   %s (grows with block time: withheld, see /v1/status)\n\n", demo.Odd[devchain.InterestToken].Hex())
	fmt.Fprintf(w, "Try:\n  curl -s %s/v1/balances/%s\n  curl -s %s/v1/status\n  curl -s http://%s/metrics | grep balidx_\n\n",
		base, demo.Accounts[0].Hex(), base, srv.AdminAddr())
}
