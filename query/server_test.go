package query

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
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

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

var (
	holder = common.HexToAddress("0x742d35Cc6634C0532925a3b844Bc454e4438f44e")
	tokA   = common.HexToAddress("0x00000000000000000000000000000000000000aa")
	tokB   = common.HexToAddress("0x00000000000000000000000000000000000000bb")
	tokC   = common.HexToAddress("0x00000000000000000000000000000000000000cc")
	never  = common.HexToAddress("0x1111111111111111111111111111111111111111")
)

// mustServer serves a snapshot holding holder's balances at block first+1
// (first = 0: indexed from genesis, full coverage).
// openSnapshot is an empty snapshot of chain 1, and its store.
func openSnapshot(tb testing.TB) (*storage.Store, *Snapshot) {
	tb.Helper()
	store, err := storage.Open(storage.Config{Path: filepath.Join(tb.TempDir(), "s.db"), ChainID: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	snap, err := NewSnapshot(SnapshotConfig{Store: store})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(snap.Close)
	return store, snap
}

func mustServer(tb testing.TB, first uint64, cfg Config) (*Server, *Snapshot) {
	tb.Helper()
	store, snap := openSnapshot(tb)
	if first != ^uint64(0) {
		u := func(v uint64) uint256.Int { return *uint256.NewInt(v) }
		blocks := []balidx.Delta{
			{ChainID: 1, Block: balidx.Block{Number: first, Hash: common.Hash{1}, Timestamp: uint64(time.Now().Unix())}, LastSeq: 1,
				Changes: []balidx.Change{{Account: holder, Asset: balidx.NativeAsset, Post: u(5)}}},
			{ChainID: 1, Block: balidx.Block{Number: first + 1, Hash: common.Hash{2}, ParentHash: common.Hash{1}, Timestamp: uint64(time.Now().Unix())}, LastSeq: 2,
				Changes: []balidx.Change{
					{Account: holder, Asset: balidx.NativeAsset, Pre: u(5), Post: u(1000)},
					{Account: holder, Asset: tokA, Post: u(1)}, {Account: holder, Asset: tokB, Post: u(2)}, {Account: holder, Asset: tokC, Post: u(3)},
				}},
		}
		res, err := store.Apply(blocks)
		if err != nil {
			tb.Fatal(err)
		}
		snap.OnApplied(res)
	}
	cfg.Snapshot = snap
	if cfg.Clients == nil { // these tests are about answers: an open anonymous tier
		cfg.Clients = &Clients{Anonymous: Anonymous{Enabled: true, Rate: 1e6, Burst: 1e6}}
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s, snap
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(tb testing.TB, s *Server, method, target, body string, header ...string) answer {
	tb.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.query.Handler.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &a.body); err != nil {
			tb.Fatalf("%s %s: answer is not JSON: %q", method, target, rec.Body.String())
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			tb.Fatalf("%s %s: Content-Type %q", method, target, ct)
		}
	}
	return a
}

func (a answer) code() string {
	if e, ok := a.body["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	return ""
}

func TestBalanceAnswers(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	lower := strings.ToLower(holder.Hex())
	upper := "0x" + strings.ToUpper(holder.Hex()[2:])
	badSum := strings.Replace(holder.Hex(), "Cc", "cC", 1)
	tests := []struct {
		name, method, target, body string
		status                     int
		code                       string
		native                     string
		tokens                     int
	}{
		{"checksummed", "GET", "/v1/balances/" + holder.Hex(), "", 200, "", "1000", 3},
		{"lower case", "GET", "/v1/balances/" + lower, "", 200, "", "1000", 3},
		{"upper case", "GET", "/v1/balances/" + upper, "", 200, "", "1000", 3},
		{"compatibility route", "GET", "/go/wallet/balance?address=" + holder.Hex(), "", 200, "", "1000", 3},
		{"never seen, full coverage", "GET", "/v1/balances/" + never.Hex(), "", 200, "", "0", 0},
		{"token filter", "GET", "/v1/balances/" + holder.Hex() + "?token=" + tokB.Hex(), "", 200, "", "1000", 1},
		{"bad checksum", "GET", "/v1/balances/" + badSum, "", 400, "invalid_address", "", 0},
		{"too short", "GET", "/v1/balances/0x1234", "", 400, "invalid_address", "", 0},
		{"too long", "GET", "/v1/balances/" + holder.Hex() + "00", "", 400, "invalid_address", "", 0},
		{"not hex", "GET", "/v1/balances/0x742d35Cc6634C0532925a3b844Bc454e4438f44g", "", 400, "invalid_address", "", 0},
		{"no prefix", "GET", "/v1/balances/00742d35Cc6634C0532925a3b844Bc454e4438f44e", "", 400, "invalid_address", "", 0},
		{"compat without address", "GET", "/go/wallet/balance", "", 400, "invalid_address", "", 0},
		{"limit zero", "GET", "/v1/balances/" + holder.Hex() + "?limit=0", "", 400, "invalid_request", "", 0},
		{"limit too large", "GET", "/v1/balances/" + holder.Hex() + "?limit=1001", "", 400, "invalid_request", "", 0},
		{"bad cursor", "GET", "/v1/balances/" + holder.Hex() + "?cursor=zz", "", 400, "invalid_request", "", 0},
		{"too many token filters", "GET", "/v1/balances/" + holder.Hex() + "?" + strings.Repeat("token="+tokA.Hex()+"&", 21), "", 400, "invalid_request", "", 0},
		{"unknown route", "GET", "/v1/nothing", "", 404, "not_found", "", 0},
		{"wrong method", "DELETE", "/v1/balances/" + holder.Hex(), "", 405, "method_not_allowed", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, tt.method, tt.target, tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %s", a.status, a.code(), tt.status, tt.code, a.raw)
			}
			if tt.status != 200 {
				return
			}
			if a.body["native"] != tt.native || len(a.body["tokens"].([]any)) != tt.tokens {
				t.Fatalf("got native %v, %d tokens; want %s, %d: %s", a.body["native"], len(a.body["tokens"].([]any)), tt.native, tt.tokens, a.raw)
			}
			if blk := a.body["block"].(map[string]any); blk["number"] != float64(1) || a.body["chain_id"] != float64(1) {
				t.Fatalf("block %v chain %v: want block 1 of chain 1", blk, a.body["chain_id"])
			}
			want := holder.Hex()
			if tt.native == "0" {
				want = never.Hex()
			}
			if got := a.body["address"]; got != want {
				t.Fatalf("address %v, want %s (EIP-55)", got, want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	var got []string
	cursor := ""
	for range 4 {
		a := do(t, s, "GET", "/v1/balances/"+holder.Hex()+"?limit=2"+cursor, "")
		if a.status != 200 {
			t.Fatalf("got %d: %s", a.status, a.raw)
		}
		for _, tok := range a.body["tokens"].([]any) {
			got = append(got, tok.(map[string]any)["amount"].(string))
		}
		next := a.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = "&cursor=" + next
	}
	if strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("paged amounts %v, want 1,2,3", got)
	}
}

func TestETag(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	a := do(t, s, "GET", "/v1/balances/"+holder.Hex(), "")
	tag := a.header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	if b := do(t, s, "GET", "/v1/balances/"+holder.Hex(), "", "If-None-Match", tag); b.status != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current tag: got %d, want 304", b.status)
	}
	if c := do(t, s, "GET", "/v1/balances/"+never.Hex(), ""); c.header.Get("ETag") == tag {
		t.Fatal("different balances, same ETag")
	}
}

// The ETag buffer holds the largest block number and tag, and the header
// value is a slice of its own: an append by a later handler cannot write
// into another answer's.
func TestETagAtTheLargestValues(t *testing.T) {
	max := strconv.FormatUint(math.MaxUint64, 36)
	h := etagHeader(math.MaxUint64, math.MaxUint64)
	if want := `"` + max + "-" + max + `"`; h[0] != want || len(h) != 1 || cap(h) != 1 {
		t.Fatalf("ETag %q (len %d, cap %d), want %q alone", h[0], len(h), cap(h), want)
	}
	if next := etagHeader(1, math.MaxUint64); next[0] != `"1-`+max+`"` || h[0] == next[0] {
		t.Fatalf("ETag at block 1: %q (at the last block: %q)", next[0], h[0])
	}
}

// An entry gives back what it was made of: the address, the default page
// as appendBalances renders it, and the balances for other pages.
func TestEntryRoundTrip(t *testing.T) {
	for _, tokens := range []int{0, 1, 8, 300} {
		b := storage.Balances{Known: true, Native: *uint256.NewInt(123450000000000000)}
		for i := range tokens {
			b.Tokens = append(b.Tokens, storage.TokenBalance{Contract: common.BigToAddress(big.NewInt(int64(i) + 1)), Amount: *uint256.NewInt(uint64(i) + 7)})
		}
		e := newEntry(holder, b)
		want := appendBalances(nil, &b, defaultPage)
		if string(e.body()) != string(want) || e.address() != holder.Hex() || !e.known() {
			t.Fatalf("%d tokens: body %s address %s known %v, want %s, %s, true", tokens, e.body(), e.address(), e.known(), want, holder.Hex())
		}
		got := e.balances()
		if got.Known != b.Known || got.Native != b.Native || len(got.Tokens) != len(b.Tokens) {
			t.Fatalf("%d tokens: balances %+v, want %+v", tokens, got, b)
		}
		for i := range got.Tokens {
			if got.Tokens[i] != b.Tokens[i] {
				t.Fatalf("%d tokens: token %d is %+v, want %+v", tokens, i, got.Tokens[i], b.Tokens[i])
			}
		}
		other := newEntry(holder, storage.Balances{Known: true, Native: *uint256.NewInt(1)})
		if e.tag() == other.tag() {
			t.Fatalf("%d tokens: the same tag as other balances", tokens)
		}
	}
	unknown := newEntry(common.Address{}, storage.Balances{})
	if unknown.address() != "" || unknown.known() || string(unknown.body()) != `"native":"0","tokens":[],"next_cursor":""` {
		t.Fatalf("unknown entry: address %q known %v body %s", unknown.address(), unknown.known(), unknown.body())
	}
}

// An entry read at a block later than the view a request loaded was cached
// after a block landed: it must not be answered as true at the older view.
func TestEntryFromALaterBlockIsNotAnsweredAtAnOlderOne(t *testing.T) {
	s, snap := mustServer(t, 0, Config{})
	v := snap.current()
	later := newEntry(holder, storage.Balances{Known: true, Native: *uint256.NewInt(999)})
	snap.cache.Set(string(holder[:]), cached{entry: later, readAt: v.meta.Trusted.Number + 1}, int64(cap(later))+cacheItemBytes)
	snap.cache.Wait()
	a := do(t, s, "GET", "/v1/balances/"+holder.Hex(), "")
	if a.status != 200 || a.body["native"] != "1000" || a.body["block"].(map[string]any)["number"] != float64(v.meta.Trusted.Number) {
		t.Fatalf("got %d %s, want native 1000 at block %d (the snapshot's)", a.status, a.raw, v.meta.Trusted.Number)
	}
	if reads := snap.SnapshotReads(); reads != 1 {
		t.Fatalf("%d snapshot reads, want 1 (the entry's block is not the view's)", reads)
	}
}

func TestCoverageRule(t *testing.T) {
	s, _ := mustServer(t, 100, Config{}) // indexed from block 100: partial
	if a := do(t, s, "GET", "/v1/balances/"+never.Hex(), ""); a.status != 404 || a.code() != "not_indexed" {
		t.Fatalf("unknown address under partial coverage: got %d %q, want 404 not_indexed", a.status, a.code())
	}
	if a := do(t, s, "GET", "/v1/balances/"+holder.Hex(), ""); a.status != 200 {
		t.Fatalf("known address: got %d", a.status)
	}
}

func TestUnavailable(t *testing.T) {
	s, _ := mustServer(t, ^uint64(0), Config{}) // nothing applied
	for _, target := range []string{"/v1/balances/" + holder.Hex(), "/v1/status"} {
		a := do(t, s, "GET", target, "")
		if a.status != 503 || a.code() != "unavailable" || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s: got %d %q Retry-After %q, want 503 unavailable with Retry-After", target, a.status, a.code(), a.header.Get("Retry-After"))
		}
	}
	if a := do(t, s, "POST", "/v1/balances", `{"addresses":["`+holder.Hex()+`"]}`); a.status != 503 {
		t.Fatalf("batch: got %d, want 503", a.status)
	}
}

func TestMaxStaleness(t *testing.T) {
	s, _ := mustServer(t, 0, Config{MaxStaleness: time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if a := do(t, s, "GET", "/v1/balances/"+holder.Hex(), ""); a.status != 503 || a.code() != "unavailable" {
		t.Fatalf("got %d %q, want 503 unavailable", a.status, a.code())
	}
	if a := do(t, s, "GET", "/v1/status", ""); a.status != 200 || a.body["stale"] != true {
		t.Fatalf("status: got %d stale %v, want 200 and stale", a.status, a.body["stale"])
	}
	rec := httptest.NewRecorder()
	s.admin.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "unavailable") {
		t.Fatalf("readyz past the hard bound: got %d %s", rec.Code, rec.Body.String())
	}
}

func TestReadyzReportsStaleness(t *testing.T) {
	s, _ := mustServer(t, 0, Config{StaleAfter: time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	rec := httptest.NewRecorder()
	s.admin.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"stale":true`) {
		t.Fatalf("readyz of a stale node without a hard bound: got %d %s, want 200 saying stale", rec.Code, rec.Body.String())
	}
}

func TestBatch(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	many := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"addresses":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q", holder.Hex())
		}
		return b.String() + "]}"
	}
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"mixed entries", `{"addresses":["` + holder.Hex() + `","0xnope","` + never.Hex() + `"]}`, 200, ""},
		{"101 addresses", many(101), 413, "request_too_large"},
		{"body over 16 KiB", `{"addresses":["` + strings.Repeat("a", MaxBatchBody) + `"]}`, 413, "request_too_large"},
		{"not json", `nope`, 400, "invalid_request"},
		{"unknown field", `{"addresses":[],"x":1}`, 400, "invalid_request"},
		{"empty", `{"addresses":[]}`, 400, "invalid_request"},
		{"two objects", `{"addresses":["` + holder.Hex() + `"]} {}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, "POST", "/v1/balances", tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %.300s", a.status, a.code(), tt.status, tt.code, a.raw)
			}
		})
	}
	a := do(t, s, "POST", "/v1/balances", tests[0].body)
	bals := a.body["balances"].([]any)
	first, second, third := bals[0].(map[string]any), bals[1].(map[string]any), bals[2].(map[string]any)
	if first["native"] != "1000" || second["error"].(map[string]any)["code"] != "invalid_address" || third["native"] != "0" {
		t.Fatalf("entries: %s", a.raw)
	}
}

// An address the snapshot has never seen is answered by the Bloom filter:
// it reaches neither the cache nor bbolt.
func TestUnknownAddressesNeverReachTheSnapshot(t *testing.T) {
	s, snap := mustServer(t, 0, Config{})
	do(t, s, "GET", "/v1/balances/"+holder.Hex(), "") // fills the cache
	before := snap.SnapshotReads()
	for i := range 2000 {
		a := common.Address{0x22, byte(i >> 8), byte(i)}
		do(t, s, "GET", "/v1/balances/"+a.Hex(), "")
	}
	// The false-positive rate is 0.1%: a handful may pass the filter.
	if reads := snap.SnapshotReads() - before; reads > 10 {
		t.Fatalf("2000 unknown addresses caused %d snapshot reads", reads)
	}
	before = snap.SnapshotReads()
	do(t, s, "GET", "/v1/balances/"+holder.Hex(), "")
	if snap.SnapshotReads() != before {
		t.Fatal("a cached address was read from the snapshot again")
	}
}

func TestStatus(t *testing.T) {
	ix := &balidx.IndexerStatus{ChainID: 1, Head: 13, Policy: balidx.Policy{Confirmations: 12}}
	s, _ := mustServer(t, 0, Config{IndexerStatus: func() *balidx.IndexerStatus { return ix }})
	a := do(t, s, "GET", "/v1/status", "")
	if a.status != 200 || a.body["lag_blocks"] != float64(12) || a.body["trust_violation"] != nil {
		t.Fatalf("got %s", a.raw)
	}
	if a.header.Get(HeaderBlock) != "1" || a.header.Get(HeaderBlockHash) != (common.Hash{2}).Hex() {
		t.Fatalf("block headers: %v", a.header)
	}
	snapshot := a.body["snapshot"].(map[string]any)
	if snapshot["accounts"] != float64(1) || snapshot["token_balances"] != float64(3) || len(snapshot["digest"].(string)) != 66 {
		t.Fatalf("snapshot %v", snapshot)
	}
	if cov := a.body["coverage"].(map[string]any); cov["full"] != true {
		t.Fatalf("coverage %v", cov)
	}
	if w, ok := a.body["withheld_tokens"].([]any); !ok || len(w) != 0 {
		t.Fatalf("withheld_tokens: got %v, want []", a.body["withheld_tokens"])
	}
}

// A withheld token leaves every answer at once — cached ones included —
// and every answer lists it with its reason (whether the snapshot ever held
// an amount of it for the address or not), as does the status.
func TestWithheldTokens(t *testing.T) {
	s, snap := mustServer(t, 0, Config{})
	target := "/v1/balances/" + holder.Hex()
	if a := do(t, s, "GET", target, ""); a.status != 200 || len(a.body["tokens"].([]any)) != 3 || a.body["withheld"] != nil {
		t.Fatalf("before: got %s", a.raw) // and now cached
	}
	res, err := snap.store.Apply([]balidx.Delta{{ChainID: 1, Block: balidx.Block{Number: 2, Hash: common.Hash{3}, ParentHash: common.Hash{2}, Timestamp: uint64(time.Now().Unix())}, LastSeq: 3,
		Withheld: []balidx.Withheld{{Asset: tokB, Reason: balidx.TimeDependent}}}})
	if err != nil {
		t.Fatal(err)
	}
	snap.OnApplied(res)
	withheld := `"withheld":[{"contract":"` + tokB.Hex() + `","reason":"time_dependent","since_block":2}]`
	want := `"tokens":[{"contract":"` + tokA.Hex() + `","amount":"1"},{"contract":"` + tokC.Hex() + `","amount":"3"}],"next_cursor":"",` + withheld + `,"coverage":{"full_tokens":[]}}`
	for _, target := range []string{target, target + "?limit=5", "/go/wallet/balance?address=" + holder.Hex()} {
		if a := do(t, s, "GET", target, ""); a.status != 200 || !strings.HasSuffix(a.raw, want) {
			t.Fatalf("%s: got %s, want it to end with %s", target, a.raw, want)
		}
	}
	if a := do(t, s, "GET", "/v1/balances/"+never.Hex(), ""); a.status != 200 || !strings.HasSuffix(a.raw, `"tokens":[],"next_cursor":"",`+withheld+`,"coverage":{"full_tokens":[]}}`) {
		t.Fatalf("an address never seen: got %s", a.raw)
	}
	if a := do(t, s, "GET", target+"?token="+tokA.Hex(), ""); a.status != 200 || a.body["withheld"] != nil {
		t.Fatalf("filtered to another token: got %s", a.raw)
	}
	if a := do(t, s, "POST", "/v1/balances", `{"addresses":["`+holder.Hex()+`","`+never.Hex()+`"]}`); a.status != 200 || !strings.HasSuffix(a.raw, `"next_cursor":""}],`+withheld+`,"coverage":{"full_tokens":[]}}`) {
		t.Fatalf("batch: got %s", a.raw)
	}
	a := do(t, s, "GET", "/v1/status", "")
	if w := a.body["withheld_tokens"].([]any); len(w) != 1 || fmt.Sprint(w[0]) != fmt.Sprint(map[string]any{"contract": tokB.Hex(), "reason": "time_dependent", "since_block": float64(2)}) {
		t.Fatalf("status: got %s", a.raw)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func nopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// Filled to its capacity, the filter lets through about one unknown address
// in a million (BloomFalsePositiveRate), not more.
func TestBloomFalsePositiveRateAtCapacity(t *testing.T) {
	const capacity, probes = 1 << 17, 4_000_000
	f := newBloomFilter(capacity)
	rng := rand.New(rand.NewPCG(3, 4))
	var a common.Address
	random := func() []byte {
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		return a[:]
	}
	for range capacity {
		f.Add(random())
	}
	passed := 0
	for range probes {
		if f.Test(random()) {
			passed++
		}
	}
	// Expected 3.6 (9e-7 × 4M); a filter at 1e-5 would pass ~40.
	if passed > 15 {
		t.Fatalf("%d of %d unknown addresses passed the filter (rate %.1e, want ≤ %.0e)", passed, probes, float64(passed)/probes, BloomFalsePositiveRate)
	}
}

// Every balance answer names the block it is true at in headers; min_block
// above the trusted block is 503 behind (a replica behind), at or below it
// an answer; /readyz fails while the applier lags past MaxLag.
func TestReplicaAgreement(t *testing.T) {
	var lag atomic.Uint64
	s, snap := mustServer(t, 0, Config{StreamLag: lag.Load, MaxLag: 10})
	v := snap.current()
	number, hash := strconv.FormatUint(v.meta.Trusted.Number, 10), v.meta.Trusted.Hash.Hex()
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/v1/balances/" + holder.Hex(), ""},
		{"GET", "/v1/balances/" + never.Hex(), ""},
		{"GET", "/go/wallet/balance?address=" + holder.Hex(), ""},
		{"POST", "/v1/balances", `{"addresses":["` + holder.Hex() + `"]}`},
		{"GET", "/v1/balances/" + holder.Hex() + "?min_block=" + number, ""},
	} {
		a := do(t, s, r.method, r.target, r.body)
		if a.status != 200 || a.header.Get(HeaderBlock) != number || a.header.Get(HeaderBlockHash) != hash {
			t.Fatalf("%s %s: %d, block headers %q %q, want 200 at %s %s", r.method, r.target, a.status,
				a.header.Get(HeaderBlock), a.header.Get(HeaderBlockHash), number, hash)
		}
	}
	ahead := strconv.FormatUint(v.meta.Trusted.Number+1, 10)
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/v1/balances/" + holder.Hex() + "?min_block=" + ahead, ""},
		{"GET", "/v1/balances/" + never.Hex() + "?min_block=" + ahead, ""},
		{"POST", "/v1/balances?min_block=" + ahead, `{"addresses":["` + holder.Hex() + `"]}`},
	} {
		a := do(t, s, r.method, r.target, r.body)
		if a.status != 503 || a.code() != "behind" || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: got %d %q (Retry-After %q), want 503 behind", r.method, r.target, a.status, a.code(), a.header.Get("Retry-After"))
		}
	}
	for _, q := range []string{"min_block=-1", "min_block=x", "min_block=1&min_block=2", "min_block="} {
		if a := do(t, s, "GET", "/v1/balances/"+holder.Hex()+"?"+q, ""); a.status != 400 || a.code() != "invalid_request" {
			t.Fatalf("%s: got %d %q, want 400 invalid_request", q, a.status, a.code())
		}
	}
	readyz := func() int {
		rec := httptest.NewRecorder()
		s.admin.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	if code := readyz(); code != 200 {
		t.Fatalf("readyz caught up: %d", code)
	}
	lag.Store(11)
	if code := readyz(); code != 503 {
		t.Fatalf("readyz 11 messages behind a bound of 10: %d, want 503", code)
	}
}
