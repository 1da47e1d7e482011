package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/internal/poll"
	"github.com/nats-io/nats.go/jetstream"
)

// A replica publishes its snapshot to the object store every 5 blocks; a
// new replica with an empty data directory starts from the newest one
// (checked) and catches up from the stream position stored in it, with the
// first replica's digest; it applied only what followed the snapshot.
func TestBootstrapFromObjectStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 4, Seed: 11, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	natsAddr, _, indexerStopped := startIndexer(t, ctx, demo)
	defer func() {
		cancel()
		if err := indexerStopped(); err != nil {
			t.Error(err)
		}
	}()
	q1 := startBalidx(t, "query", "--nats", "nats://"+natsAddr, "--data", t.TempDir(), "--chain-id", "1337", "--snapshot-every", "5")
	defer q1.stop(t)
	steps(t, demo, 14)
	st1 := q1.waitCaughtUp(t, demo, 1)
	var published float64
	poll.Until(t, 30*time.Second, func() error {
		if published = metricValue(t, q1.admin, "balidx_snapshot_published_block"); published < 5 {
			return fmt.Errorf("published the snapshot of block %v", published)
		}
		return nil
	})

	data2 := t.TempDir()
	q2 := startBalidx(t, "query", "--nats", "nats://"+natsAddr, "--data", data2, "--chain-id", "1337")
	defer func() { q2.stop(t) }() // the one running at the end
	st2 := q2.waitCaughtUp(t, demo, 1)
	st1 = q1.waitCaughtUp(t, demo, 1)
	if st2.Trusted != st1.Trusted || st2.Snapshot.Digest != st1.Snapshot.Digest {
		t.Fatalf("the bootstrapped replica is at %+v %s, the first at %+v %s", st2.Trusted, st2.Snapshot.Digest, st1.Trusted, st1.Snapshot.Digest)
	}
	applied := metricValue(t, q2.admin, "balidx_applier_blocks_total")
	if applied >= float64(st2.Trusted.Number) {
		t.Fatalf("the new replica applied %v blocks to reach block %d: it replayed the stream instead of starting from a snapshot (published at %v)", applied, st2.Trusted.Number, published)
	}
	t.Logf("started from the snapshot of block ≥ %v, applied %v blocks to reach %d", published, applied, st2.Trusted.Number)
	if _, err := os.Stat(dataDir(data2).snapshot() + ".bootstrapping"); !os.IsNotExist(err) {
		t.Fatalf("the download was left behind: %v", err)
	}

	// It follows the stream from there like any replica.
	steps(t, demo, 4)
	st2, st1 = q2.waitCaughtUp(t, demo, 1), q1.waitCaughtUp(t, demo, 1)
	if st2.Trusted != st1.Trusted || st2.Snapshot.Digest != st1.Snapshot.Digest {
		t.Fatalf("after 4 more blocks the bootstrapped replica is at %+v %s, the first at %+v %s", st2.Trusted, st2.Snapshot.Digest, st1.Trusted, st1.Snapshot.Digest)
	}
	checkEveryBalance(t, demoView(demo), q2.http, st2)
	if after := metricValue(t, q2.admin, "balidx_applier_blocks_total"); after <= applied {
		t.Fatalf("the bootstrapped replica applied nothing more (%v)", after)
	}

	// Stopped while the stream's retention drops what follows its
	// snapshot, it starts again from the object store's newest one.
	q2.stop(t)
	steps(t, demo, 8)
	q1.waitCaughtUp(t, demo, 1)
	nl, err := events.Open(ctx, events.Config{URL: "nats://" + natsAddr, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	snaps, err := nl.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var newest events.SnapshotInfo
	poll.Until(t, 30*time.Second, func() error {
		list, err := snaps.List(ctx, 1337)
		if err != nil || len(list) == 0 || list[0].Block <= st2.Trusted.Number {
			return fmt.Errorf("no snapshot after block %d yet (%v)", st2.Trusted.Number, err)
		}
		newest = list[0]
		return nil
	})
	if err := nl.Stream().Purge(ctx, jetstream.WithPurgeSequence(newest.StreamSeq+1)); err != nil {
		t.Fatal(err)
	}
	q2 = startBalidx(t, "query", "--nats", "nats://"+natsAddr, "--data", data2, "--chain-id", "1337")
	st2, st1 = q2.waitCaughtUp(t, demo, 1), q1.waitCaughtUp(t, demo, 1)
	if st2.Trusted != st1.Trusted || st2.Snapshot.Digest != st1.Snapshot.Digest {
		t.Fatalf("restarted past the retention, the replica is at %+v %s, the first at %+v %s", st2.Trusted, st2.Snapshot.Digest, st1.Trusted, st1.Snapshot.Digest)
	}
	if aside, _ := filepath.Glob(dataDir(data2).snapshot() + ".lost-*"); len(aside) != 1 {
		t.Fatalf("the lost snapshot was not moved aside: %v", aside)
	}
	t.Logf("restarted with its position purged: started again from the snapshot of block %d", newest.Block)
}
