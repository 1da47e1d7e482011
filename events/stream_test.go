package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/nats-io/nats.go/jetstream"
)

// mustLog opens a log on an embedded server in a temporary directory,
// closed when the test ends.
func mustLog(tb testing.TB) *Log {
	tb.Helper()
	l, err := Open(context.Background(), Config{DataDir: tb.TempDir(), Listen: "127.0.0.1:0", Name: tb.Name()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Close)
	return l
}

func TestPublishDedupAndConflict(t *testing.T) {
	ctx := context.Background()
	l := mustLog(t)
	js, s := l.js, l.stream
	p, last, err := l.Publisher(ctx, 5)
	if err != nil || last != nil {
		t.Fatalf("empty stream: got %v, %v", last, err)
	}
	b1 := Split(5, balidx.Block{Number: 1, Hash: common.Hash{1}}, nil, nil)
	if err := p.Publish(ctx, b1); err != nil {
		t.Fatal(err)
	}
	// A second publisher that missed block 1 must not append after it.
	stale := &Publisher{js: js, stream: s, subject: Subject(5), lastSeq: 0}
	b2 := Split(5, balidx.Block{Number: 2, Hash: common.Hash{2}, ParentHash: common.Hash{1}}, nil, nil)
	if err := stale.Publish(ctx, b2); !errors.Is(err, ErrPublishConflict) {
		t.Fatalf("stale publisher: got %v, want ErrPublishConflict", err)
	}
	// A retried publish of block 1 (same message id) is deduplicated.
	retry := &Publisher{js: js, stream: s, subject: Subject(5), lastSeq: 0}
	if err := retry.Publish(ctx, b1); err != nil {
		t.Fatalf("retried publish: %v", err)
	}
	if err := p.Publish(ctx, b2); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2", info.State.Msgs)
	}
	got, seq, err := l.Last(ctx, 5)
	if err != nil || got.Number != 2 || seq != 2 {
		t.Fatalf("last delta: got %+v seq %d err %v, want block 2 at seq 2", got, seq, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := consume(cctx, l.stream, consumeConfig{ChainID: 5, FromSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.Err != nil || m.Seq != 2 || m.Delta.Number != 2 {
			t.Fatalf("consumed %+v, want block 2 at seq 2", m)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing consumed within 10s")
	}
}

func TestStatusBoard(t *testing.T) {
	ctx := context.Background()
	b, err := mustLog(t).StatusBoard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := b.Get(ctx, 9); err != nil || s != nil {
		t.Fatalf("empty board: got %v, %v", s, err)
	}
	want := balidx.IndexerStatus{ChainID: 9, Head: 12, Policy: balidx.Policy{Confirmations: 3}, TrustViolation: &balidx.TrustViolation{Number: 10}}
	if err := b.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, 9)
	if err != nil || got.Head != 12 || got.TrustViolation == nil || got.TrustViolation.Number != 10 {
		t.Fatalf("got %+v, %v, want %+v", got, err, want)
	}
}

// A watch ended while it starts ends as one ended later does: without an
// error (a process stopped early must not report a failure).
func TestStatusWatchEndedWhileStarting(t *testing.T) {
	b, err := mustLog(t).StatusBoard(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Watch(ctx, 9, func(balidx.IndexerStatus) { t.Error("a status from an ended watch") }); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

// A consumer whose position the stream no longer holds (retention removed
// it) is refused rather than handed what follows a gap.
func TestBlocksRefusesALostPosition(t *testing.T) {
	ctx := context.Background()
	l := mustLog(t)
	p, _, err := l.Publisher(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var parent common.Hash
	for n := uint64(1); n <= 5; n++ {
		h := common.Hash{byte(n)}
		if err := p.Publish(ctx, Split(3, balidx.Block{Number: n, Hash: h, ParentHash: parent}, nil, nil)); err != nil {
			t.Fatal(err)
		}
		parent = h
	}
	if err := l.stream.Purge(ctx, jetstream.WithPurgeKeep(2)); err != nil {
		t.Fatal(err)
	}
	err = l.Blocks(ctx, 3, 2, func(*balidx.Delta, bool, uint64, func()) error { return errors.New("handed a block") })
	if !errors.Is(err, ErrPositionLost) {
		t.Fatalf("from seq 2 with the stream starting at 4: %v, want ErrPositionLost", err)
	}
	got := make(chan uint64, 2)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go l.Blocks(cctx, 3, 4, func(d *balidx.Delta, _ bool, _ uint64, ack func()) error {
		if d != nil {
			got <- d.Block.Number
			ack()
		}
		return nil
	})
	for _, want := range []uint64{4, 5} {
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("block %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("block %d never came", want)
		}
	}
}
