package events_test

// The applier reading the log: the integration of storage.Applier with
// Log.Blocks, on a real JetStream (storage's own tests need no NATS).

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/events/eventstest"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"github.com/nats-io/nats.go/jetstream"
)

var alice = common.HexToAddress("0x00000000000000000000000000000000000a11ce")

func u(v uint64) uint256.Int { return *uint256.NewInt(v) }

// mustStore opens a snapshot of chain 1 in a temporary directory.
func mustStore(tb testing.TB) *storage.Store {
	tb.Helper()
	s, err := storage.Open(storage.Config{Path: filepath.Join(tb.TempDir(), storage.FileName), ChainID: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// publishBlocks publishes blocks from..to; block 0 spans two parts, and
// every later block moves alice's balance from n-1 to n.
func publishBlocks(tb testing.TB, l *events.Log, from, to uint64) {
	tb.Helper()
	ctx := context.Background()
	pub, _, err := l.Publisher(ctx, 1)
	if err != nil {
		tb.Fatal(err)
	}
	for n := from; n <= to; n++ {
		var changes []balidx.Change
		if n == 0 {
			for i := range events.MaxChangesPerPart + 10 {
				c := balidx.Change{Asset: balidx.NativeAsset, Post: u(uint64(i + 1))}
				c.Account[0], c.Account[1] = byte(i>>8)+1, byte(i)
				changes = append(changes, c)
			}
		} else {
			changes = []balidx.Change{{Account: alice, Asset: balidx.NativeAsset, Pre: u(n - 1), Post: u(n)}}
		}
		b := balidx.Block{Number: n, Hash: common.Hash{byte(n + 1)}, ParentHash: common.Hash{byte(n)}}
		if err := pub.Publish(ctx, events.Split(1, b, changes, nil)); err != nil {
			tb.Fatal(err)
		}
	}
}

// runApplier runs until the snapshot trusts block want and every message on
// the stream has been acknowledged (or fails).
func runApplier(tb testing.TB, store *storage.Store, l *events.Log, fromSeq uint64, want uint64) {
	tb.Helper()
	s := l.Stream()
	info, err := s.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	lastSeq := info.State.LastSeq
	earlier := consumerNames(tb, s) // ephemeral consumers of earlier runs linger a while
	ctx, cancel := context.WithCancel(context.Background())
	a, err := storage.NewApplier(storage.ApplierConfig{Store: store, Source: l, ChainID: 1, FromSeq: fromSeq})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	poll.Until(tb, 20*time.Second, func() error {
		m, err := store.Meta()
		if err != nil {
			return err
		}
		select {
		case err := <-done:
			tb.Fatalf("applier stopped at block %d: %v", m.Trusted.Number, err)
		default:
		}
		if !m.HasTrusted || m.Trusted.Number != want || ackedUpTo(tb, s, earlier) != lastSeq {
			return fmt.Errorf("snapshot at block %d, want %d", m.Trusted.Number, want)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
}

// ackedUpTo is the highest ack floor of the stream's consumers but those
// named in earlier.
func ackedUpTo(tb testing.TB, s jetstream.Stream, earlier map[string]bool) uint64 {
	tb.Helper()
	var floor uint64
	l := s.ListConsumers(context.Background())
	for ci := range l.Info() {
		if !earlier[ci.Name] {
			floor = max(floor, ci.AckFloor.Stream)
		}
	}
	if err := l.Err(); err != nil {
		tb.Fatal(err)
	}
	return floor
}

func consumerNames(tb testing.TB, s jetstream.Stream) map[string]bool {
	tb.Helper()
	names := map[string]bool{}
	l := s.ConsumerNames(context.Background())
	for n := range l.Name() {
		names[n] = true
	}
	if err := l.Err(); err != nil {
		tb.Fatal(err)
	}
	return names
}

func TestApplierMultiPartRestartAndRedelivery(t *testing.T) {
	l := eventstest.MustLog(t)
	store := mustStore(t)
	publishBlocks(t, l, 0, 3)
	runApplier(t, store, l, 0, 3)
	m, _ := store.Meta()
	if m.StreamSeq != 5 || !m.CoverageFull || m.Accounts != events.MaxChangesPerPart+10+1 {
		t.Fatalf("after blocks 0..3 (block 0 in 2 parts): got %+v", m)
	}

	// Restart: only what is new is applied, from the stored position.
	publishBlocks(t, l, 4, 5)
	runApplier(t, store, l, 0, 5)
	m5, _ := store.Meta()
	out := make([]storage.Balances, 1)
	if _, err := store.Read([]common.Address{alice}, out); err != nil || out[0].Native != u(5) {
		t.Fatalf("alice after block 5: got %+v, %v", out[0], err)
	}

	// Every message delivered again changes nothing.
	runApplier(t, store, l, 1, 5)
	if again, _ := store.Meta(); again != m5 {
		t.Fatalf("redelivery changed the snapshot: got %+v, want %+v", again, m5)
	}
}

func TestApplierStopsOnBadStream(t *testing.T) {
	tests := []struct {
		name    string
		publish func(tb testing.TB, js jetstream.JetStream)
		want    error
	}{
		{"undecodable message", func(tb testing.TB, js jetstream.JetStream) {
			if _, err := js.Publish(context.Background(), events.Subject(1), []byte(`{"version":1,"garbage`)); err != nil {
				tb.Fatal(err)
			}
		}, storage.ErrPoisonedStream},
		{"pre disagrees", func(tb testing.TB, js jetstream.JetStream) {
			d := events.Split(1, balidx.Block{Number: 2, Hash: common.Hash{3}, ParentHash: common.Hash{2}},
				[]balidx.Change{{Account: alice, Asset: balidx.NativeAsset, Pre: u(999), Post: u(1)}}, nil)
			data, _ := events.Encode(&d[0])
			if _, err := js.Publish(context.Background(), events.Subject(1), data); err != nil {
				tb.Fatal(err)
			}
		}, storage.ErrPreMismatch},
		{"gap", func(tb testing.TB, js jetstream.JetStream) {
			d := events.Split(1, balidx.Block{Number: 5, Hash: common.Hash{6}, ParentHash: common.Hash{5}}, nil, nil)
			data, _ := events.Encode(&d[0])
			if _, err := js.Publish(context.Background(), events.Subject(1), data); err != nil {
				tb.Fatal(err)
			}
		}, storage.ErrDiscontinuity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := eventstest.MustLog(t)
			store := mustStore(t)
			publishBlocks(t, l, 0, 1)
			runApplier(t, store, l, 0, 1)
			before, _ := store.Meta()
			tt.publish(t, l.JetStream())
			a, err := storage.NewApplier(storage.ApplierConfig{Store: store, Source: l, ChainID: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := a.Run(ctx); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if after, _ := store.Meta(); after != before {
				t.Fatalf("a refused message changed the snapshot: %+v → %+v", before, after)
			}
		})
	}
}

// The server loses the applier's consumer: the applier starts a new one
// after its last commit and goes on.
func TestApplierSurvivesALostConsumer(t *testing.T) {
	l := eventstest.MustLog(t)
	s := l.Stream()
	store := mustStore(t)
	publishBlocks(t, l, 0, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := storage.NewApplier(storage.ApplierConfig{Store: store, Source: l, ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitTrusted := func(n uint64) {
		t.Helper()
		poll.Until(t, 20*time.Second, func() error {
			select {
			case err := <-done:
				t.Fatalf("applier stopped: %v", err)
			default:
			}
			if m, _ := store.Meta(); !m.HasTrusted || m.Trusted.Number != n {
				return fmt.Errorf("block %d not applied", n)
			}
			return nil
		})
	}
	waitTrusted(2)
	for name := range consumerNames(t, s) {
		if err := s.DeleteConsumer(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	publishBlocks(t, l, 3, 4)
	waitTrusted(4)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
