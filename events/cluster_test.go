package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/events/eventstest"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"golang.org/x/sync/errgroup"
)

// On a 3-node JetStream cluster of real nats-server processes: five
// processes open the R3 log and its status bucket at once on a cluster just
// formed; blocks are published while the stream's leader is SIGKILLed and
// later started again; a consumer gets every block once, in order, and the
// stream holds each exactly once.
func TestClusterRidesThroughLeaderLoss(t *testing.T) {
	c := eventstest.StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	logs := make([]*events.Log, 5)
	var g errgroup.Group
	for i := range logs {
		g.Go(func() error {
			l, err := events.Open(ctx, events.Config{URL: c.URLs(), Replicas: 3, Name: fmt.Sprintf("process-%d", i)})
			if err != nil {
				return fmt.Errorf("process %d: %w", i, err)
			}
			logs[i] = l
			if _, err := l.StatusBoard(ctx); err != nil {
				return fmt.Errorf("process %d: %w", i, err)
			}
			return nil
		})
	}
	err := g.Wait()
	for _, l := range logs {
		if l != nil {
			t.Cleanup(l.Close)
		}
	}
	if err != nil {
		t.Fatalf("opening the log from five processes at once: %v", err)
	}

	const chainID, blocks = 7, 60
	got := make(chan *balidx.Delta, blocks)
	consumed := make(chan error, 1)
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	go func() {
		consumed <- logs[1].Blocks(cctx, chainID, 1, func(d *balidx.Delta, _ bool, _ uint64, ack func()) error {
			if d != nil {
				got <- d
				ack()
			}
			return nil
		})
	}()

	pub, _, err := logs[0].Publisher(ctx, chainID)
	if err != nil {
		t.Fatal(err)
	}
	killed := -1
	var parent common.Hash
	var stall time.Duration
	for n := uint64(1); n <= blocks; n++ {
		switch n {
		case 20:
			info, err := logs[0].Stream().Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			killed = c.Index(info.Cluster.Leader)
			if killed < 0 {
				t.Fatalf("stream leader %q is none of the cluster's nodes", info.Cluster.Leader)
			}
			c.Kill(t, killed)
			t.Logf("block %d: SIGKILLed the stream leader %s", n, info.Cluster.Leader)
		case 45:
			c.Start(t, killed)
			c.WaitReady(t, killed)
			t.Logf("block %d: %s started again", n, c.Name(killed))
		}
		hash := common.BigToHash(new(uint256.Int).SetUint64(n).ToBig())
		changes := []balidx.Change{{Account: common.Address{byte(n)}, Asset: balidx.NativeAsset, Post: *uint256.NewInt(n)}}
		start := time.Now()
		if err := pub.Publish(ctx, events.Split(chainID, balidx.Block{Number: n, Hash: hash, ParentHash: parent}, changes, nil)); err != nil {
			t.Fatalf("publish block %d: %v", n, err)
		}
		stall = max(stall, time.Since(start))
		parent = hash
	}
	t.Logf("longest publish: %s; %d retries", stall.Round(time.Millisecond), pub.Retries())
	if killed >= 0 && pub.Retries() == 0 {
		t.Log("no publish was retried: the leader change fell between publishes")
	}

	for n := uint64(1); n <= blocks; n++ {
		select {
		case d := <-got:
			if d.Block.Number != n || len(d.Changes) != 1 || d.Changes[0].Post.Uint64() != n {
				t.Fatalf("consumer got block %d (%d changes) where block %d was due", d.Block.Number, len(d.Changes), n)
			}
		case err := <-consumed:
			t.Fatalf("consumer stopped at block %d: %v", n, err)
		case <-ctx.Done():
			t.Fatalf("consumer: block %d never came", n)
		}
	}
	stored := eventstest.Deltas(t, logs[2], chainID)
	if len(stored) != blocks {
		t.Fatalf("the stream holds %d messages of the chain, want %d", len(stored), blocks)
	}
	for i, d := range stored {
		if d.Number != uint64(i+1) {
			t.Fatalf("stream message %d is block %d", i+1, d.Number)
		}
	}
}
