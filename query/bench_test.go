package query

import (
	"context"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/query/accesslog"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"github.com/labstack/echo/v4"
)

// The cost of each defence per request, in the handler chain without the
// network (make bench; compare with BenchmarkBareEcho of the same run).

func BenchmarkBareEcho(b *testing.B) {
	e := echo.New()
	body := []byte(`{"address":"0x742d35Cc6634C0532925a3b844Bc454e4438f44e","native":"1000","tokens":[],"next_cursor":""}`)
	e.GET("/v1/balances/:address", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	serve(b, e, func() *http.Request { return httptest.NewRequest("GET", "/v1/balances/"+holder.Hex(), nil) })
}

func benchServer(b *testing.B, accessLog bool) *Server {
	var log *accesslog.Log
	if accessLog {
		// As balidx runs it, less the writes: every line in full.
		log = accesslog.New(accesslog.Config{Out: io.Discard, Rate: 1 << 30, MaxRate: 1 << 30})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { log.Run(ctx); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
	}
	// Quotas above what two cores serve; the replay cache holds the
	// wallet's share at that rate (its pairs take memory only as used).
	s, snap := mustServer(b, 0, Config{AccessLog: log, MaxNonces: 1 << 26, Clients: &Clients{
		Clients:   []Client{{ID: "wallet", Secrets: []string{secret1}, Rate: 1e6, Burst: 1e6}},
		Anonymous: Anonymous{Enabled: true, Rate: 1e9, Burst: 1e9},
	}})
	do(b, s, "GET", "/v1/balances/"+holder.Hex(), "")
	snap.cache.Wait()
	return s
}

func BenchmarkBalanceAnonymousCacheHit(b *testing.B) {
	s := benchServer(b, false)
	serve(b, s.query.Handler, func() *http.Request { return httptest.NewRequest("GET", "/v1/balances/"+holder.Hex(), nil) })
}

func BenchmarkBalanceAnonymousCacheHitAccessLog(b *testing.B) {
	s := benchServer(b, true)
	serve(b, s.query.Handler, func() *http.Request { return httptest.NewRequest("GET", "/v1/balances/"+holder.Hex(), nil) })
}

func BenchmarkBalanceAnonymousBloomNegative(b *testing.B) {
	s := benchServer(b, false)
	serve(b, s.query.Handler, func() *http.Request { return httptest.NewRequest("GET", "/v1/balances/"+never.Hex(), nil) })
}

func BenchmarkBalanceSignedCacheHit(b *testing.B) {
	s := benchServer(b, false)
	path := "/v1/balances/" + holder.Hex()
	i := 0
	serve(b, s.query.Handler, func() *http.Request { i++; return signedGet(path, i) })
}

// The same two answers asked on every core at once: what the state
// requests share (the replay cache, the client's bucket and counters, the
// metrics, the access log) costs when they meet.
func BenchmarkBalanceSignedParallel(b *testing.B) {
	s := benchServer(b, false)
	path := "/v1/balances/" + holder.Hex()
	serveParallel(b, s.query.Handler, func(i int) *http.Request { return signedGet(path, i) })
}

func BenchmarkBalanceAnonymousParallel(b *testing.B) {
	s := benchServer(b, false)
	serveParallel(b, s.query.Handler, func(int) *http.Request { return httptest.NewRequest("GET", "/v1/balances/"+holder.Hex(), nil) })
}

// serveParallel serves b.N requests, made beforehand, from GOMAXPROCS
// goroutines.
func serveParallel(b *testing.B, h http.Handler, newReq func(i int) *http.Request) {
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = newReq(i)
		reqs[i].RemoteAddr = "192.0.2.1:1234"
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{header: http.Header{}}
		for pb.Next() {
			w.reset()
			h.ServeHTTP(w, reqs[next.Add(1)-1])
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}

// signedGet is a GET of path signed by the "wallet" client with nonce number i.
func signedGet(path string, i int) *http.Request {
	r := httptest.NewRequest("GET", path, nil)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := "bench-nonce-" + strconv.Itoa(1_000_000_000+i)
	r.Header.Set(HeaderClientID, "wallet")
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, Sign([]byte(secret1), "GET", path, "", ts, nonce, nil))
	return r
}

// BenchmarkBalanceSignedHotSet asks, signed, for addresses drawn at random
// from hotSetAccounts cached accounts, as the HTTP benchmark does: the
// cache, the Bloom filter and the entries are out of the CPU caches, as they
// are in production, unlike in BenchmarkBalanceSignedCacheHit.
func BenchmarkBalanceSignedHotSet(b *testing.B) {
	const hotSetAccounts = 100_000
	s := benchServer(b, false)
	changes := make([]balidx.Change, 0, 2*hotSetAccounts)
	hot := make([]common.Address, hotSetAccounts)
	for i := range hot {
		hot[i] = common.BigToAddress(new(big.Int).Lsh(big.NewInt(int64(i)+1), 100))
		changes = append(changes,
			balidx.Change{Account: hot[i], Asset: balidx.NativeAsset, Post: *uint256.NewInt(uint64(i) + 1)},
			balidx.Change{Account: hot[i], Asset: tokA, Post: *uint256.NewInt(7)})
	}
	balidx.SortChanges(changes)
	res, err := s.snap.store.Apply([]balidx.Delta{{ChainID: 1, LastSeq: 3, Block: balidx.Block{Number: 2, Hash: common.Hash{3}, ParentHash: common.Hash{2}, Timestamp: uint64(time.Now().Unix())}, Changes: changes}})
	if err != nil {
		b.Fatal(err)
	}
	s.snap.OnApplied(res)
	w := &discardWriter{header: http.Header{}}
	for _, a := range hot {
		w.reset()
		s.query.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/v1/balances/"+a.Hex(), nil))
		if w.status != http.StatusOK {
			b.Fatalf("warm-up: status %d", w.status)
		}
	}
	s.snap.cache.Wait()
	warm := s.snap.SnapshotReads()
	rng := rand.New(rand.NewPCG(1, 2))
	i := 0
	serve(b, s.query.Handler, func() *http.Request {
		i++
		return signedGet("/v1/balances/"+hot[rng.IntN(len(hot))].Hex(), i)
	})
	b.ReportMetric(float64(s.snap.SnapshotReads()-warm)/float64(b.N), "snapshot-reads/op")
}

func BenchmarkVerifySignature(b *testing.B) {
	s, _ := newSigner(&Clients{Clients: []Client{{ID: "wallet", Secrets: []string{secret1}, Rate: 1, Burst: 1}}}, 0, 0)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	r := &signedRequest{clientID: "wallet", timestamp: ts, nonce: "bench-nonce-0000001", method: "GET", path: "/v1/balances/" + holder.Hex()}
	r.signature = Sign([]byte(secret1), r.method, r.path, "", ts, r.nonce, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.verify(r, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAddress(b *testing.B) {
	s := holder.Hex()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := parseAddress(s); !ok {
			b.Fatal("refused")
		}
	}
}

// serve runs h on requests built outside the timer, 10,000 at a time,
// writing to a reusable writer, so that only the handler chain is timed.
// With b.Loop the benchmark function runs once, not again after a first
// call with b.N = 1: its setup (100,000 accounts for the hot set) once.
func serve(b *testing.B, h http.Handler, newReq func() *http.Request) {
	const batch = 10_000
	reqs := make([]*http.Request, 0, batch)
	next := 0
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if next == len(reqs) {
			b.StopTimer()
			reqs, next = reqs[:0], 0
			for range batch {
				r := newReq()
				r.RemoteAddr = "192.0.2.1:1234"
				reqs = append(reqs, r)
			}
			b.StartTimer()
		}
		w.reset()
		h.ServeHTTP(w, reqs[next])
		next++
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discardWriter is a ResponseWriter that keeps the status and drops the body.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
func (w *discardWriter) reset() {
	clear(w.header)
	w.status = 0
}

// BenchmarkBloomRebuild measures building the filter from a snapshot of
// 200,000 accounts, as at every start (the filter is rebuilt, not stored).
func BenchmarkBloomRebuild(b *testing.B) {
	store, err := storage.Open(storage.Config{Path: filepath.Join(b.TempDir(), "s.db"), ChainID: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	const n = 200_000
	changes := make([]balidx.Change, n)
	for i := range changes {
		changes[i].Account = common.BigToAddress(big.NewInt(int64(i) + 1<<40))
		changes[i].Post = *uint256.NewInt(1)
	}
	if _, err := store.Apply([]balidx.Delta{{ChainID: 1, LastSeq: 1, Block: balidx.Block{Hash: common.Hash{1}}, Changes: changes}}); err != nil {
		b.Fatal(err)
	}
	s := &Snapshot{store: store}
	b.ResetTimer()
	for b.Loop() {
		if err := s.rebuildBloom(n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.bloom.Cap())/8/n, "bytes/account")
}

// BenchmarkRPCGetBalance is one eth_getBalance over POST /rpc, anonymous:
// the JSON-RPC endpoint's own cost (compare BenchmarkBalanceAnonymousCacheHit).
func BenchmarkRPCGetBalance(b *testing.B) {
	benchRPC(b, 1)
}

// BenchmarkRPCGetBalanceBatch100 is a batch of 100 eth_getBalance, of 100
// addresses (one known), per request.
func BenchmarkRPCGetBalanceBatch100(b *testing.B) {
	benchRPC(b, 100)
}

func benchRPC(b *testing.B, calls int) {
	s := benchServer(b, false)
	body := call("eth_getBalance", holder, "latest")
	if calls > 1 {
		parts := make([]string, calls)
		for i := range parts {
			a := holder
			if i > 0 {
				a = common.BigToAddress(big.NewInt(int64(i)))
			}
			parts[i] = call("eth_getBalance", a, "latest")
		}
		body = "[" + strings.Join(parts, ",") + "]"
	}
	serve(b, s.query.Handler, func() *http.Request {
		r := httptest.NewRequest("POST", RPCRoute, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	})
}
