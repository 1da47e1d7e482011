package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// Snapshots in the JetStream object store: a replica configured to
// (--snapshot-every K) publishes its snapshot every K blocks; a replica
// without one (an empty data directory, or a snapshot whose stream
// position the stream no longer holds) starts from the newest one and goes
// on from the stream position stored in it. The stream's retention can
// then be bounded (--stream-max-age) without stranding a new replica.

// keepSnapshots is how many snapshots of a chain the object store keeps.
const keepSnapshots = 2

// bootstrap makes sure the data directory holds a snapshot the stream can
// continue: it keeps the one there if the stream still holds what follows
// it; else (none, or its position lost) it fetches the chain's newest
// snapshot from the object store and checks it (chain, block, digest)
// before it is used. With none in the store it leaves the directory as it
// is: the replica replays the stream from its start.
func bootstrap(ctx context.Context, nl *events.Log, snaps *events.Snapshots, dir dataDir, chainID uint64, log *slog.Logger) error {
	path := dir.snapshot()
	if _, err := os.Stat(path); err == nil {
		lost, m, first, err := positionLost(ctx, nl, path)
		if err != nil || !lost {
			return err
		}
		seq := m.StreamSeq
		if chainID == 0 {
			chainID = m.ChainID // the chain of the snapshot moved aside
		}
		aside := fmt.Sprintf("%s.lost-%d", path, time.Now().Unix())
		log.Warn("the stream no longer holds what follows the snapshot: starting from a newer one", "snapshot_seq", seq, "stream_first", first, "moved_to", aside)
		if err := os.Rename(path, aside); err != nil {
			return err
		}
	}
	if chainID == 0 {
		return nil // an empty replica of an unnamed chain: nothing to choose from
	}
	tmp := path + ".bootstrapping"
	var newest events.SnapshotInfo
	for attempt := 1; ; attempt++ {
		list, err := snaps.List(ctx, chainID)
		if err != nil || len(list) == 0 {
			return err
		}
		newest = list[0]
		err = getStoredSnapshot(ctx, snaps, newest, tmp)
		if err == nil {
			break
		}
		if !errors.Is(err, events.ErrSnapshotGone) || attempt == bootstrapAttempts {
			return fmt.Errorf("bootstrap from %s: %w", newest.Name, err)
		}
		log.Warn("the newest snapshot was pruned before it was fetched: fetching the newest again", "snapshot", newest.Name)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	log.Info("bootstrapped from the object store", "snapshot", newest.Name, "block", newest.Block, "stream_seq", newest.StreamSeq, "bytes", newest.Size)
	return nil
}

// bootstrapAttempts bounds how often bootstrap lists the snapshots again
// when the newest was pruned between the listing and the fetch (snapshots
// published faster than a fetch begins: keepSnapshots of them every
// --snapshot-every blocks).
const bootstrapAttempts = 5

// getStoredSnapshot writes info's file to tmp, synced, and checks it; on
// failure tmp is removed.
func getStoredSnapshot(ctx context.Context, snaps *events.Snapshots, info events.SnapshotInfo, tmp string) error {
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = snaps.Get(ctx, info, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkSnapshot(tmp, info)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// positionLost reports whether the stream has dropped messages the
// snapshot at path has not applied.
func positionLost(ctx context.Context, nl *events.Log, path string) (lost bool, m storage.Meta, first uint64, err error) {
	if m, err = snapshotMeta(path); err != nil {
		return false, m, 0, err
	}
	if first, err = nl.FirstSeq(ctx); err != nil {
		return false, m, 0, err
	}
	return first > m.StreamSeq+1, m, first, nil
}

// checkSnapshot opens a fetched snapshot read-only and checks it is what
// the object store said: chain, block, stream position, and the digest its
// balances add up to.
func checkSnapshot(path string, want events.SnapshotInfo) error {
	s, err := storage.Open(storage.Config{Path: path, ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	m, err := s.CheckDigest()
	if err != nil {
		return err
	}
	if m.ChainID != want.ChainID || m.Trusted.Number != want.Block || m.StreamSeq != want.StreamSeq || m.Digest.Hex() != want.Digest {
		return fmt.Errorf("%w: the file holds chain %d block %d seq %d digest %s; the store said chain %d block %d seq %d digest %s",
			storage.ErrForeignSnapshot, m.ChainID, m.Trusted.Number, m.StreamSeq, m.Digest, want.ChainID, want.Block, want.StreamSeq, want.Digest)
	}
	return nil
}

// snapshotPublisher publishes the replica's snapshot every `every` blocks.
type snapshotPublisher struct {
	store *storage.Store
	snaps *events.Snapshots
	dir   dataDir
	every uint64
	log   *slog.Logger
	due   chan struct{} // a snapshot is due (buffered: one pending at most)
	last  prometheus.Gauge
}

func newSnapshotPublisher(store *storage.Store, snaps *events.Snapshots, dir dataDir, every uint64, log *slog.Logger, reg prometheus.Registerer) (*snapshotPublisher, error) {
	p := &snapshotPublisher{store: store, snaps: snaps, dir: dir, every: every, log: log, due: make(chan struct{}, 1),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_snapshot_published_block", Help: "The block of the last snapshot this replica published to the object store."})}
	return p, reg.Register(p.last)
}

// onApplied notes that a snapshot is due when a commit crossed a multiple
// of every; it never blocks the applier. A snapshot being seeded has no
// block to name yet: none is due before the seed's last page.
func (p *snapshotPublisher) onApplied(res storage.Applied) {
	if res.Blocks == 0 || !res.Meta.HasTrusted {
		return
	}
	n := res.Meta.Trusted.Number
	if n/p.every != (n-uint64(res.Blocks))/p.every || n%p.every == 0 {
		select {
		case p.due <- struct{}{}:
		default:
		}
	}
}

// run publishes each snapshot due until ctx ends. A failure is logged and
// the next one tried: snapshots are an optimisation of a new replica's
// start, never what answers are served from.
func (p *snapshotPublisher) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.due:
		}
		if err := p.publish(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("snapshot not published to the object store", "err", err)
		}
	}
}

func (p *snapshotPublisher) publish(ctx context.Context) error {
	tmp := string(p.dir) + "/snapshot.publishing"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer f.Close()
	m, err := p.store.CopyTo(f)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	info, err := p.snaps.Put(ctx, events.SnapshotInfo{ChainID: m.ChainID, Block: m.Trusted.Number, StreamSeq: m.StreamSeq, Digest: m.Digest.Hex()}, f)
	if err != nil {
		return err
	}
	p.last.Set(float64(info.Block))
	p.log.Info("snapshot published to the object store", "snapshot", info.Name, "bytes", info.Size)
	if err := p.snaps.Prune(ctx, m.ChainID, keepSnapshots); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
