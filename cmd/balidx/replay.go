package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/indexer"
)

// replay re-derives blocks from the node and, where the stream and the
// chain disagree (a reorg deeper than the trust policy, or a wrong balance),
// publishes one correction that every snapshot applies (see indexer.Replay).
// Every indexer of the chain must be stopped (the active one and its
// standbys); start them again afterwards.
func replay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newCommandFlags("balidx replay", stderr)
	rpcURL := fs.String("rpc", "", "the node (an archive node for blocks older than ~128)")
	from := fs.Uint64("from", 0, "first block to re-derive (at or before the fork point)")
	data := fs.String("data", string(defaultDataDir), "data directory of the stopped indexer (its embedded NATS store)")
	natsURL := fs.String("nats", "", "NATS URL; empty: the embedded server's store in --data")
	confirmations := fs.Uint64("confirmations", indexer.DefaultConfirmations, "the trust policy: head − number ≥ N")
	trust := fs.String("trust", "", "or the node's 'safe' / 'finalized' block")
	maxRefresh := fs.Int("token-refresh-max", indexer.DefaultMaxRefresh, "the indexer's --token-refresh-max")
	if err := parseFlags(fs, args, getenv); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if *rpcURL == "" || !hasFlag(fs, "from") {
		return errors.New("usage: balidx replay --rpc URL --from A [--data DIR | --nats URL]")
	}
	policy := balidx.Policy{Confirmations: *confirmations, Tag: *trust}
	if *trust != "" {
		policy.Confirmations = 0
	}
	nl, err := openLog(ctx, events.Config{URL: *natsURL, DataDir: *data, Listen: "127.0.0.1:0", Name: "balidx replay"}, newLogger("warn", stderr))
	if err != nil {
		return err
	}
	defer nl.Close()
	node, err := indexer.Dial(ctx, *rpcURL)
	if err != nil {
		return err
	}
	defer node.Close()
	res, err := indexer.Replay(ctx, indexer.ReplayConfig{Node: node, Events: nl, From: *from, Policy: policy, MaxRefresh: *maxRefresh, Log: newLogger("warn", stderr)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed blocks %d..%d (last published %d %s)\n", *from, res.Published.Number, res.Published.Number, res.Published.Hash)
	if res.Fork != nil {
		fmt.Fprintf(stdout, "the chain no longer has published block %d (%s)\n", res.Fork.Number, res.Fork.Hash)
	}
	if !res.Corrected {
		fmt.Fprintln(stdout, "nothing changed: the stream agrees with the chain; nothing published")
		return nil
	}
	fmt.Fprintf(stdout, "corrected: published a correction from block %d to block %d (%s) with %d balances; start the indexer again\n",
		res.Published.Number, res.Target.Number, res.Target.Hash, res.Changes)
	return nil
}

func hasFlag(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
