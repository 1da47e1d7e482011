package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
)

// One holder at a time; a holder that stops renewing (killed) loses the
// lease within TTL + TTL/4 to a waiting standby; its next renewal fails,
// and, fenced by the stream, so does its next publish; a release hands the
// lease over at once.
func TestLeaseTakeoverAndFencing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := mustLog(t)
	const ttl = time.Second
	a, err := l.Lease(ctx, 9, "indexer-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Lease(ctx, 9, "indexer-b", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := a.Acquire(ctx); err != nil || h.Holder != "indexer-a" {
		t.Fatalf("a: %+v, %v", h, err)
	}
	pubA, _, err := l.Publisher(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	if err := pubA.Publish(ctx, Split(9, balidx.Block{Number: 1, Hash: common.Hash{1}}, nil, nil)); err != nil {
		t.Fatal(err)
	}

	// a renews; b waits.
	holdCtx, stopHolding := context.WithCancel(ctx)
	held := make(chan error, 1)
	go func() { held <- a.Hold(holdCtx) }()
	acquired := make(chan time.Time, 1)
	go func() {
		if _, err := b.Acquire(ctx); err == nil {
			acquired <- time.Now()
		}
	}()
	select {
	case <-acquired:
		t.Fatal("b acquired the lease while a renewed it")
	case <-time.After(3 * ttl):
	}
	if h, err := b.Holder(ctx); err != nil || h == nil || h.Holder != "indexer-a" {
		t.Fatalf("holder while a renews: %+v, %v", h, err)
	}

	// a stops renewing, as if killed: b takes over within TTL + TTL/4.
	stopHolding()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var took time.Duration
	select {
	case at := <-acquired:
		took = at.Sub(stopped)
	case <-time.After(5 * ttl):
		t.Fatal("b never acquired the lease")
	}
	// A renewal lands up to TTL/3 before a stops; b polls every TTL/4.
	if took > ttl+ttl/4+ttl/3+500*time.Millisecond {
		t.Fatalf("b took over %s after a stopped renewing, bound %s", took, ttl+ttl/4+ttl/3)
	}
	t.Logf("takeover %s after the last renewal could have been (TTL %s)", took.Round(time.Millisecond), ttl)
	pubB, last, err := l.Publisher(ctx, 9)
	if err != nil || last == nil || last.Number != 1 {
		t.Fatalf("b resumes after block %+v, %v; want 1", last, err)
	}
	if err := pubB.Publish(ctx, Split(9, balidx.Block{Number: 2, Hash: common.Hash{2}, ParentHash: common.Hash{1}}, nil, nil)); err != nil {
		t.Fatal(err)
	}

	// a wakes up: the stream refuses its publish, and its lease is gone.
	err = pubA.Publish(ctx, Split(9, balidx.Block{Number: 2, Hash: common.Hash{0xa2}, ParentHash: common.Hash{1}}, nil, nil))
	if !errors.Is(err, ErrPublishConflict) {
		t.Fatalf("a's publish after losing the lease: %v, want ErrPublishConflict", err)
	}
	a.poll, a.ttl = time.Millisecond, 3*time.Millisecond // renew at once
	if err := a.Hold(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("a's renewal: %v, want ErrLeaseLost", err)
	}

	// b releases: a (or anyone) acquires at once.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	a.poll = ttl / 4
	start := time.Now()
	if h, err := a.Acquire(ctx); err != nil || h.Holder != "indexer-a" {
		t.Fatalf("a after b released: %+v, %v", h, err)
	}
	if took := time.Since(start); took > ttl/2 {
		t.Fatalf("acquiring a released lease took %s", took)
	}
}
