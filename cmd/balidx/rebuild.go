package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/storage"
)

// rebuild builds a fresh snapshot from the whole stream into a new file,
// then swaps it in atomically (rename) and keeps the old one beside it. It
// runs with the query node stopped: the snapshot file is locked while served.
func rebuild(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newCommandFlags("balidx rebuild", stderr)
	data := fs.String("data", string(defaultDataDir), "data directory of the stopped query node")
	natsURL := fs.String("nats", "", "NATS URL; empty: the embedded server's store in --data")
	chainID := fs.Uint64("chain-id", 0, "chain to rebuild (default: the existing snapshot's)")
	if err := parseFlags(fs, args, getenv); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	live := dataDir(*data).snapshot()
	var old *storage.Meta
	if _, err := os.Stat(live); err == nil {
		s, err := storage.Open(storage.Config{Path: live, ReadOnly: true})
		if err != nil {
			return fmt.Errorf("%w (stop the query node first)", err)
		}
		m, err := s.Meta()
		s.Close()
		if err != nil {
			return err
		}
		old = &m
		if *chainID == 0 {
			*chainID = m.ChainID
		}
	}
	if *chainID == 0 {
		return errors.New("no snapshot to take the chain from: give --chain-id")
	}

	nl, err := openLog(ctx, events.Config{URL: *natsURL, DataDir: *data, Listen: "127.0.0.1:0", Name: "balidx rebuild"}, newLogger("warn", stderr))
	if err != nil {
		return err
	}
	defer nl.Close()
	last, lastSeq, err := nl.Last(ctx, *chainID)
	if err != nil {
		return err
	}
	if last == nil {
		return fmt.Errorf("the stream holds nothing of chain %d", *chainID)
	}

	fresh := live + ".rebuild"
	if err := os.Remove(fresh); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	store, err := storage.Open(storage.Config{Path: fresh, ChainID: *chainID})
	if err != nil {
		return err
	}
	m, err := applyUpTo(ctx, store, nl, *chainID, lastSeq, stderr)
	store.Close()
	if err != nil {
		os.Remove(fresh)
		return err
	}
	if old != nil {
		if err := os.Rename(live, live+".old"); err != nil {
			return err
		}
	}
	if err := os.Rename(fresh, live); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt %s from the stream: block %d %s, stream seq %d, %d accounts, digest %s\n",
		live, m.Trusted.Number, m.Trusted.Hash, m.StreamSeq, m.Accounts, m.Digest)
	if old != nil {
		fmt.Fprintf(stdout, "previous snapshot kept as %s: block %d, digest %s\n", live+".old", old.Trusted.Number, old.Digest)
		if old.StreamSeq == m.StreamSeq && old.Digest != m.Digest {
			return fmt.Errorf("the previous snapshot differs from the stream at the same position (digest %s, rebuilt %s): it was damaged; the rebuilt one is now in place", old.Digest, m.Digest)
		}
	}
	return nil
}

// applyUpTo applies the stream into store until stream sequence lastSeq.
func applyUpTo(ctx context.Context, store *storage.Store, l *events.Log, chainID, lastSeq uint64, progress io.Writer) (storage.Meta, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := storage.NewApplier(storage.ApplierConfig{Store: store, Source: l, ChainID: chainID})
	if err != nil {
		return storage.Meta{}, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	bar := newProgress(progress, int(lastSeq))
	defer bar.done()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = ctx.Err()
			}
			return storage.Meta{}, fmt.Errorf("rebuild stopped: %w", err)
		case <-tick.C:
		}
		m, err := store.Meta()
		if err != nil {
			return m, err
		}
		bar.update(int(m.StreamSeq))
		if m.StreamSeq >= lastSeq {
			cancel()
			return m, <-done
		}
	}
}
