package client_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/query/client"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

var holder = common.HexToAddress("0x742d35Cc6634C0532925a3b844Bc454e4438f44e")

const secret = "a-secret-of-at-least-thirty-two-characters"

// mustNode serves a one-block snapshot on a real loopback listener.
func mustNode(tb testing.TB) string {
	tb.Helper()
	base, _ := nodeAt(tb, 0)
	return base
}

// nodeAt serves a snapshot whose trusted block is number; stop stops it.
func nodeAt(tb testing.TB, number uint64) (base string, stop func()) {
	tb.Helper()
	store, err := storage.Open(storage.Config{Path: filepath.Join(tb.TempDir(), "s.db"), ChainID: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	res, err := store.Apply([]balidx.Delta{{ChainID: 1, LastSeq: 1,
		Block:   balidx.Block{Number: number, Hash: common.Hash{1}, Timestamp: uint64(time.Now().Unix())},
		Changes: []balidx.Change{{Account: holder, Asset: balidx.NativeAsset, Post: *uint256.NewInt(42)}}}})
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := query.NewSnapshot(query.SnapshotConfig{Store: store})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(snap.Close)
	snap.OnApplied(res)
	srv, err := query.New(query.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Snapshot: snap, Clients: &query.Clients{Clients: []query.Client{
		{ID: "wallet", Secrets: []string{secret}, Rate: 100, Burst: 100},
		{ID: "slow", Secrets: []string{secret}, Rate: 1, Burst: 1},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Error(err)
			}
		})
	}
	tb.Cleanup(stop)
	return "http://" + srv.Addr(), stop
}

// counting counts the requests that go out.
type counting struct{ n atomic.Int32 }

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func newClient(tb testing.TB, base, id, sec string) (*client.Client, *counting) {
	tb.Helper()
	rt := &counting{}
	c, err := client.New(client.Config{BaseURL: base, ClientID: id, Secret: sec, HTTP: &http.Client{Transport: rt, Timeout: 5 * time.Second}})
	if err != nil {
		tb.Fatal(err)
	}
	return c, rt
}

func TestSignedCalls(t *testing.T) {
	base := mustNode(t)
	c, _ := newClient(t, base, "wallet", secret)
	b, err := c.Balance(context.Background(), holder.Hex())
	if err != nil {
		t.Fatal(err)
	}
	if b.Native != "42" || b.Address != holder.Hex() || b.ChainID != 1 {
		t.Fatalf("got %+v", b)
	}
	st, err := c.Status(context.Background())
	if err != nil || st.Snapshot.Accounts != 1 {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func TestNoRetryOnWhatRetryingCannotFix(t *testing.T) {
	base := mustNode(t)
	for _, tt := range []struct {
		name, id, secret, address, code string
	}{
		{"bad secret", "wallet", "not-the-secret-not-the-secret-xx", holder.Hex(), "invalid_signature"},
		{"unknown client", "nobody", secret, holder.Hex(), "unknown_client"},
		{"bad address", "wallet", secret, "0x1234", "invalid_address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, rt := newClient(t, base, tt.id, tt.secret)
			_, err := c.Balance(context.Background(), tt.address)
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if n := rt.n.Load(); n != 1 {
				t.Fatalf("sent %d times, want once", n)
			}
		})
	}
}

func TestRetriesRateLimitAfterRetryAfter(t *testing.T) {
	base := mustNode(t)
	c, rt := newClient(t, base, "slow", secret)
	if _, err := c.Balance(context.Background(), holder.Hex()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Balance(context.Background(), holder.Hex()); err != nil {
		t.Fatalf("second call, after a 429: %v", err)
	}
	if n := rt.n.Load(); n < 3 {
		t.Fatalf("sent %d requests, want the 429 retried", n)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %s: Retry-After (1 s) was not honoured", waited)
	}
}

// Over several replicas: a dead one is skipped at once; the height an
// answer names never goes back — a replica behind the highest block seen
// answers 503 behind, and the client goes to another, never returning the
// older truth.
func TestReplicasFailoverAndNeverGoBack(t *testing.T) {
	ctx := context.Background()
	ahead, stopAhead := nodeAt(t, 5)
	behind, _ := nodeAt(t, 3)
	dead := "http://" + testaddr.Free(t) // nothing listens
	c, err := client.New(client.Config{BaseURLs: []string{dead, ahead, behind}, ClientID: "wallet", Secret: secret, MaxAttempts: 2, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Balance(ctx, holder.Hex())
	if err != nil || b.Block.Number != 5 {
		t.Fatalf("past a dead replica: %+v, %v; want an answer at block 5", b, err)
	}
	if c.HighestBlock() != 5 {
		t.Fatalf("highest block %d, want 5", c.HighestBlock())
	}
	stopAhead()
	_, err = c.Balance(ctx, holder.Hex())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "behind" {
		t.Fatalf("with only a replica at block 3 up: %v, want 503 behind (never block 3)", err)
	}

	// A fresh client, with no height seen, takes block 3 from it.
	fresh, err := client.New(client.Config{BaseURLs: []string{dead, behind}, ClientID: "wallet", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fresh.Balance(ctx, holder.Hex()); err != nil || b.Block.Number != 3 {
		t.Fatalf("fresh client: %+v, %v", b, err)
	}
}
