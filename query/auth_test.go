package query

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/testio"
	"github.com/balidx/balidx/query/accesslog"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	secret1 = strings.Repeat("a", 32)
	secret2 = strings.Repeat("b", 40)
)

// fakeClock is a settable clock for time windows.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func authServer(tb testing.TB, clients *Clients, clk *fakeClock, mut func(*Config)) *Server {
	tb.Helper()
	cfg := Config{Clients: clients, Now: clk.now}
	if mut != nil {
		mut(&cfg)
	}
	s, _ := mustServer(tb, 0, cfg)
	return s
}

func twoClients() *Clients {
	return &Clients{Clients: []Client{
		{ID: "wallet", Secrets: []string{secret1, secret2}, Rate: 1000, Burst: 1000},
		{ID: "slow", Secrets: []string{secret1}, Rate: 1, Burst: 2},
	}}
}

// req is a request to send, signed as given.
type req struct {
	method, target, body string
	client, secret       string
	ts                   int64
	nonce                string
	remote               string
	header               map[string]string
	mutate               func(r *http.Request) // after signing
}

var nonceSeq int

func (q req) send(tb testing.TB, s *Server) answer {
	tb.Helper()
	if q.method == "" {
		q.method = "GET"
	}
	r := httptest.NewRequest(q.method, q.target, strings.NewReader(q.body))
	r.RemoteAddr = "192.0.2.1:1234"
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	if q.client != "" {
		if q.nonce == "" {
			nonceSeq++
			q.nonce = fmt.Sprintf("nonce-%016d", nonceSeq)
		}
		ts := strconv.FormatInt(q.ts, 10)
		path, query, _ := strings.Cut(q.target, "?")
		r.Header.Set(HeaderClientID, q.client)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderNonce, q.nonce)
		r.Header.Set(HeaderSignature, Sign([]byte(q.secret), q.method, path, query, ts, q.nonce, []byte(q.body)))
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	if q.mutate != nil {
		q.mutate(r)
	}
	rec := httptest.NewRecorder()
	s.query.Handler.ServeHTTP(rec, r)
	a := answer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Body.Len() > 0 {
		if err := jsonUnmarshal(rec.Body.Bytes(), &a.body); err != nil {
			tb.Fatalf("not JSON: %q", rec.Body.String())
		}
	}
	return a
}

func TestSignatures(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	now := clk.t.Unix()
	path := "/v1/balances/" + holder.Hex()
	batch := `{"addresses":["` + holder.Hex() + `"]}`
	tests := []struct {
		name string
		req  req
		code string // "" means 200
	}{
		{"signed GET", req{target: path, client: "wallet", secret: secret1, ts: now}, ""},
		{"signed GET with query", req{target: path + "?limit=2", client: "wallet", secret: secret1, ts: now}, ""},
		{"signed POST", req{method: "POST", target: "/v1/balances", body: batch, client: "wallet", secret: secret1, ts: now}, ""},
		{"second secret (rotation)", req{target: path, client: "wallet", secret: secret2, ts: now}, ""},
		{"status is signed too", req{target: "/v1/status", client: "wallet", secret: secret1, ts: now}, ""},
		{"no credentials, no anonymous tier", req{target: path}, "missing_credentials"},
		{"a header missing", req{target: path, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) { r.Header.Del(HeaderNonce) }}, "missing_credentials"},
		{"unknown client", req{target: path, client: "nobody", secret: secret1, ts: now}, "unknown_client"},
		{"wrong secret", req{target: path, client: "wallet", secret: strings.Repeat("c", 32), ts: now}, "invalid_signature"},
		{"method changed", req{target: path, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) { r.Method = "POST" }}, "invalid_signature"},
		{"path changed", req{target: path, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) {
			r.RequestURI = "/v1/balances/" + never.Hex()
			r.URL.Path = r.RequestURI
		}}, "invalid_signature"},
		{"query changed", req{target: path + "?limit=2", client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) {
			r.URL.RawQuery = "limit=3"
			r.RequestURI = path + "?limit=3"
		}}, "invalid_signature"},
		{"body changed", req{method: "POST", target: "/v1/balances", body: batch, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) {
			other := `{"addresses":["` + never.Hex() + `"]}`
			r.Body = http.NoBody
			r.Body = nopCloser(other)
			r.ContentLength = int64(len(other))
		}}, "invalid_signature"},
		{"timestamp changed", req{target: path, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) { r.Header.Set(HeaderTimestamp, strconv.FormatInt(now-1, 10)) }}, "invalid_signature"},
		{"nonce changed", req{target: path, client: "wallet", secret: secret1, ts: now, nonce: "aaaaaaaaaaaaaaaa", mutate: func(r *http.Request) { r.Header.Set(HeaderNonce, "aaaaaaaaaaaaaaab") }}, "invalid_signature"},
		{"signature upper-case hex", req{target: path, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) {
			r.Header.Set(HeaderSignature, strings.ToUpper(r.Header.Get(HeaderSignature)))
		}}, "invalid_signature"},
		{"30 s old: accepted", req{target: path, client: "wallet", secret: secret1, ts: now - 30}, ""},
		{"31 s old: stale", req{target: path, client: "wallet", secret: secret1, ts: now - 31}, "stale_request"},
		{"30 s ahead: accepted", req{target: path, client: "wallet", secret: secret1, ts: now + 30}, ""},
		{"31 s ahead: stale", req{target: path, client: "wallet", secret: secret1, ts: now + 31}, "stale_request"},
		{"short nonce", req{target: path, client: "wallet", secret: secret1, ts: now, nonce: "short"}, "invalid_request"},
		{"nonce with a bad character", req{target: path, client: "wallet", secret: secret1, ts: now, nonce: "nonce/with/slashes"}, "invalid_request"},
		{"timestamp not a number", req{target: path, client: "wallet", secret: secret1, ts: now, mutate: func(r *http.Request) { r.Header.Set(HeaderTimestamp, "soon") }}, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := authServer(t, twoClients(), clk, nil)
			a := tt.req.send(t, s)
			want := 200
			switch {
			case tt.code == "invalid_request":
				want = 400
			case tt.code != "":
				want = 401
			}
			if a.status != want || a.code() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %s", a.status, a.code(), want, tt.code, a.raw)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, twoClients(), clk, nil)
	r := req{target: "/v1/balances/" + holder.Hex(), client: "wallet", secret: secret1, ts: clk.t.Unix(), nonce: "replay-me-0000001"}
	if a := r.send(t, s); a.status != 200 {
		t.Fatalf("first: got %d %s", a.status, a.raw)
	}
	if a := r.send(t, s); a.code() != "replayed_request" {
		t.Fatalf("replay: got %d %q, want replayed_request", a.status, a.code())
	}
	// Still refused at the edge of the window, when the timestamp is still fresh.
	clk.t = clk.t.Add(30 * time.Second)
	if a := r.send(t, s); a.code() != "replayed_request" {
		t.Fatalf("replay 30 s later: got %d %q, want replayed_request", a.status, a.code())
	}
	// Another client may use the same nonce.
	other := r
	other.client = "slow"
	if a := other.send(t, s); a.status != 200 {
		t.Fatalf("same nonce, other client: got %d %s", a.status, a.raw)
	}
}

func TestReloadClients(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, twoClients(), clk, nil)
	target := "/v1/balances/" + holder.Hex()
	s.ReloadClients(&Clients{Clients: []Client{{ID: "wallet", Secrets: []string{secret2}, Rate: 10, Burst: 10}}})
	if a := (req{target: target, client: "wallet", secret: secret1, ts: clk.t.Unix()}).send(t, s); a.code() != "invalid_signature" {
		t.Fatalf("retired secret: got %d %q", a.status, a.code())
	}
	if a := (req{target: target, client: "wallet", secret: secret2, ts: clk.t.Unix()}).send(t, s); a.status != 200 {
		t.Fatalf("kept secret: got %d %s", a.status, a.raw)
	}
	if a := (req{target: target, client: "slow", secret: secret1, ts: clk.t.Unix()}).send(t, s); a.code() != "unknown_client" {
		t.Fatalf("removed client: got %d %q", a.status, a.code())
	}
}

func TestClientQuota(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, twoClients(), clk, nil)
	target := "/v1/balances/" + holder.Hex()
	for i := range 2 {
		if a := (req{target: target, client: "slow", secret: secret1, ts: clk.t.Unix()}).send(t, s); a.status != 200 {
			t.Fatalf("request %d within the burst: got %d", i, a.status)
		}
	}
	a := req{target: target, client: "slow", secret: secret1, ts: clk.t.Unix()}.send(t, s)
	if a.status != 429 || a.code() != "rate_limited" || a.header.Get("Retry-After") != "1" {
		t.Fatalf("over quota: got %d %q Retry-After %q", a.status, a.code(), a.header.Get("Retry-After"))
	}
	if p, l := a.header.Get("RateLimit-Policy"), a.header.Get("RateLimit"); p != `"client";q=2;w=2` || l != `"client";r=0;t=1` {
		t.Fatalf("RateLimit-Policy %q RateLimit %q", p, l)
	}
	if b := (req{target: target, client: "wallet", secret: secret1, ts: clk.t.Unix()}).send(t, s); b.status != 200 {
		t.Fatalf("a well-behaved client: got %d", b.status)
	}
	clk.t = clk.t.Add(time.Second)
	if c := (req{target: target, client: "slow", secret: secret1, ts: clk.t.Unix()}).send(t, s); c.status != 200 {
		t.Fatalf("after a second: got %d", c.status)
	}
}

// Failed authentications are counted per IP: past the allowance, guesses
// get 429 and no reason, while valid signatures — from that IP too — pass.
func TestFailedAuthIsThrottledPerIP(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, twoClients(), clk, nil)
	target := "/v1/balances/" + holder.Hex()
	guess := req{target: target, client: "wallet", secret: strings.Repeat("x", 32), ts: clk.t.Unix()}
	for range defaultFailedAuthBurst {
		if a := guess.send(t, s); a.code() != "invalid_signature" {
			t.Fatalf("guess: got %q", a.code())
		}
	}
	if a := guess.send(t, s); a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("guess after %d failures: got %d, want 429 with Retry-After", defaultFailedAuthBurst, a.status)
	}
	if a := (req{target: target, client: "wallet", secret: secret1, ts: clk.t.Unix()}).send(t, s); a.status != 200 {
		t.Fatalf("a valid signature from the same IP: got %d", a.status)
	}
	other := guess
	other.remote = "198.51.100.7:1"
	if a := other.send(t, s); a.code() != "invalid_signature" {
		t.Fatalf("a guess from another IP: got %d %q", a.status, a.code())
	}
	clk.t = clk.t.Add(time.Second)
	guess.ts = clk.t.Unix()
	if a := guess.send(t, s); a.code() != "invalid_signature" {
		t.Fatalf("a second later: got %d %q", a.status, a.code())
	}
}

// X-Forwarded-For names the client only when the direct peer is a proxy
// the operator trusts; otherwise anyone could pick their own rate bucket.
func TestForwardedForCannotBeSpoofed(t *testing.T) {
	anon := &Clients{Anonymous: Anonymous{Enabled: true, Rate: 1, Burst: 1}}
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	target := "/v1/balances/" + holder.Hex()
	t.Run("untrusted peer", func(t *testing.T) {
		s := authServer(t, anon, clk, nil)
		first := req{target: target, header: map[string]string{"X-Forwarded-For": "203.0.113.1"}}.send(t, s)
		second := req{target: target, header: map[string]string{"X-Forwarded-For": "203.0.113.2"}}.send(t, s)
		if first.status != 200 || second.status != 429 {
			t.Fatalf("got %d then %d: a forged X-Forwarded-For bought a new bucket", first.status, second.status)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		_, proxies, _ := net.ParseCIDR("10.0.0.0/8")
		s := authServer(t, anon, clk, func(c *Config) { c.TrustedProxies = []*net.IPNet{proxies} })
		first := req{target: target, remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": "203.0.113.1"}}.send(t, s)
		second := req{target: target, remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": "203.0.113.2"}}.send(t, s)
		third := req{target: target, remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": "203.0.113.2"}}.send(t, s)
		if first.status != 200 || second.status != 200 || third.status != 429 {
			t.Fatalf("got %d %d %d: want two clients behind the proxy, the second over its quota", first.status, second.status, third.status)
		}
	})
}

func TestLoadShedding(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, &Clients{Anonymous: Anonymous{Enabled: true, Rate: 100, Burst: 100}}, clk, func(c *Config) { c.MaxInFlight = 1 })
	var other atomic.Int64
	if !s.guard.inFlight.enter(&other, 1) { // one request being served
		t.Fatal("could not enter")
	}
	a := req{target: "/v1/balances/" + holder.Hex()}.send(t, s)
	if a.status != 503 || a.code() != "overloaded" || a.header.Get("Retry-After") == "" {
		t.Fatalf("got %d %q, want 503 overloaded with Retry-After", a.status, a.code())
	}
	s.guard.inFlight.leave(&other)
	if a := (req{target: "/v1/balances/" + holder.Hex()}).send(t, s); a.status != 200 {
		t.Fatalf("after the other request left: got %d", a.status)
	}
}

func TestCORS(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, &Clients{Anonymous: Anonymous{Enabled: true, Rate: 100, Burst: 100}}, clk, func(c *Config) { c.CORSOrigins = []string{"https://wallet.example"} })
	target := "/v1/balances/" + holder.Hex()
	ok := req{target: target, header: map[string]string{"Origin": "https://wallet.example"}}.send(t, s)
	if ok.status != 200 || ok.header.Get("Access-Control-Allow-Origin") != "https://wallet.example" || !strings.Contains(strings.Join(ok.header.Values("Vary"), ","), "Origin") {
		t.Fatalf("allowed origin: got %d, headers %v", ok.status, ok.header)
	}
	for _, origin := range []string{"https://attacker.example", "null", "https://wallet.example.attacker.example"} {
		if a := (req{target: target, header: map[string]string{"Origin": origin}}).send(t, s); a.status != 403 || a.code() != "origin_not_allowed" || a.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("origin %q: got %d %q", origin, a.status, a.code())
		}
	}
	pre := req{method: "OPTIONS", target: target, header: map[string]string{"Origin": "https://wallet.example", "Access-Control-Request-Method": "GET"}}.send(t, s)
	if pre.status != 204 || !strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), HeaderSignature) {
		t.Fatalf("preflight: got %d %v", pre.status, pre.header)
	}
	if none := (req{target: target}).send(t, s); none.status != 200 || none.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("no Origin: got %d", none.status)
	}
}

// Under a million distinct keys, the limiter and nonce tables stay within
// their bounds.
func TestTablesAreBounded(t *testing.T) {
	table := newLimiterTable("anonymous", 1, 1, 1000)
	for i := range 1_000_000 {
		table.get(strconv.Itoa(i))
	}
	if n := table.lru.Len(); n > 1000 {
		t.Fatalf("limiter table holds %d buckets, bound 1000", n)
	}
	nonces := newNonceCache(time.Minute, 50_000)
	now := time.Unix(1_800_000_000, 0)
	refused := 0
	for i := range 1_000_000 {
		if _, err := nonces.add("c", strconv.Itoa(i), now.Unix(), now, nil); err != nil {
			refused++
		}
	}
	if nonces.len() > 50_000 || refused != 1_000_000-50_000 {
		t.Fatalf("nonce cache holds %d (bound 50000), refused %d", nonces.len(), refused)
	}
	// Once their timestamps are out of the window room is back at once, and
	// the expired pairs are deleted a few a request until none is left.
	later := now.Add(time.Minute + time.Second)
	if ok, err := nonces.add("c", "later", later.Unix(), later, nil); !ok || err != nil {
		t.Fatalf("after expiry: %v %v", ok, err)
	}
	adds := 1
	for ; adds <= 50_000/forgetPerAdd+1; adds++ {
		if ok, err := nonces.add("c", "later-"+strconv.Itoa(adds), later.Unix(), later, nil); !ok || err != nil {
			t.Fatalf("after expiry, add %d: %v %v", adds, ok, err)
		}
	}
	if held := nonces.len(); held != adds {
		t.Fatalf("after %d adds past the expiry, holds %d: expired pairs left", adds, held)
	}
}

// A pair is remembered exactly as long as a request carrying it could pass
// the timestamp check, however far in the window its timestamp lies.
func TestNonceCacheKeepsPairsWhileTheyCanPass(t *testing.T) {
	const window = 30
	nonces := newNonceCache(window*time.Second, 0)
	start := int64(1_800_000_000)
	at := func(sec int64) time.Time { return time.Unix(sec, 900_000_000) } // late in the second
	for _, skew := range []int64{-window, 0, window} {
		ts := start + skew
		nonce := fmt.Sprintf("nonce-skew-%+03d-0000", skew)
		if ok, err := nonces.add("c", nonce, ts, at(start), nil); !ok || err != nil {
			t.Fatalf("skew %d: first use refused: %v %v", skew, ok, err)
		}
		// The last second at which ts+window still passes the check.
		last := ts + window
		for sec := start; sec <= last; sec += 7 {
			if ok, _ := nonces.add("c", nonce, ts, at(sec), nil); ok {
				t.Fatalf("skew %d: replay at +%ds accepted while the timestamp is fresh", skew, sec-start)
			}
		}
		if ok, _ := nonces.add("c", nonce, ts, at(last), nil); ok {
			t.Fatalf("skew %d: replay in the last fresh second accepted", skew)
		}
	}
	// One second after the last expiry nothing is held: the pairs could no
	// longer pass, so remembering them would only cost memory.
	end := at(start + 2*window + 1)
	if ok, _ := nonces.add("c", "probe-at-the-end-0", end.Unix(), end, nil); !ok {
		t.Fatal("fresh nonce at the end refused")
	}
	if held := nonces.len(); held != 1 {
		t.Fatalf("%d pairs held after their timestamps left the window, want only the new one", held)
	}
	// A long idle spell, or a clock stepped back, forgets nothing early.
	if ok, _ := nonces.add("c", "after-idle-0000000", end.Unix()+3600, end.Add(time.Hour), nil); !ok {
		t.Fatal("fresh nonce after idling refused")
	}
	back := end.Add(time.Hour - 10*time.Second)
	if ok, _ := nonces.add("c", "after-idle-0000000", end.Unix()+3600, back, nil); ok {
		t.Fatal("replay accepted after the clock stepped back")
	}
}

// BenchmarkNonceCacheBytesPerPair measures what a remembered pair costs,
// behind the bound the README states.
func BenchmarkNonceCacheBytesPerPair(b *testing.B) {
	const pairs = 1 << 20
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		nonces := newNonceCache(DefaultSignatureWindow, pairs)
		now := time.Unix(1_800_000_000, 0)
		for i := range pairs {
			// Thirty seconds of traffic, as clients with synced clocks send it.
			ts := now.Add(time.Duration(i) * 30 * time.Second / pairs)
			if _, err := nonces.add("wallet-app", "nonce-"+strconv.Itoa(1e9+i), ts.Unix(), ts, nil); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/pairs, "bytes/pair")
		runtime.KeepAlive(nonces)
	}
}

func TestSignMatchesAPIExample(t *testing.T) {
	// The six lines of API.md, joined by \n without a trailing newline.
	got := string(appendStringToSign(nil, "GET", "/v1/balances/0xabc", "", "1700000000", "0123456789abcdef", nil))
	empty := fmt.Sprintf("%x", sha256.Sum256(nil))
	want := "GET\n/v1/balances/0xabc\n\n1700000000\n0123456789abcdef\n" + empty
	if got != want {
		t.Fatalf("string to sign:\n%q\nwant\n%q", got, want)
	}
}

// Requests are counted by client once their signature is valid: a forged
// one is not counted for the client it names.
func TestClientRequestsCounted(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, twoClients(), clk, nil)
	target := "/v1/balances/" + never.Hex()
	for range 2 {
		if a := (req{target: target, client: "wallet", secret: secret1, ts: clk.t.Unix()}).send(t, s); a.status != 200 {
			t.Fatalf("signed: got %d", a.status)
		}
	}
	if a := (req{target: target, client: "slow", secret: "not-the-secret", ts: clk.t.Unix()}).send(t, s); a.status != 401 {
		t.Fatalf("forged: got %d", a.status)
	}
	if n := testutil.CollectAndCount(s.metrics.clients); n != 1 {
		t.Fatalf("%d client series, want 1 (wallet)", n)
	}
	if got := testutil.ToFloat64(s.metrics.clients.WithLabelValues("wallet")); got != 2 {
		t.Fatalf("wallet counted %v times, want 2", got)
	}
}

// The access log names who asked and how it went, never the secret or the
// signature; a refused request's line too, written out when the server
// stops (under the flush interval).
func TestAccessLog(t *testing.T) {
	var buf testio.Buffer
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	log := accesslog.New(accesslog.Config{Out: &buf, FlushInterval: time.Hour})
	s := authServer(t, twoClients(), clk, func(c *Config) {
		c.AccessLog, c.Addr, c.AdminAddr = log, "127.0.0.1:0", "127.0.0.1:0"
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- s.Serve(ctx) }()
	r := req{target: "/v1/balances/" + never.Hex(), client: "wallet", secret: secret1, ts: clk.t.Unix(), header: map[string]string{"User-Agent": "wallet/1.0"}}
	if a := r.send(t, s); a.status != 200 {
		t.Fatalf("got %d", a.status)
	}
	forged := r
	forged.secret = "not the secret"
	if a := forged.send(t, s); a.status != 401 {
		t.Fatalf("forged: got %d", a.status)
	}
	if buf.String() != "" {
		t.Fatalf("written before the flush interval: %s", buf.String())
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), buf.String())
	}
	for i, want := range []map[string]any{
		{"client_ip": "192.0.2.1", "user_agent": "wallet/1.0", "client_id": "wallet", "auth_status": "signed", "signature_valid": true, "backend_calls": 0.0, "status": 200.0, "route": "/v1/balances/:address", "method": "GET"},
		{"client_ip": "192.0.2.1", "user_agent": "wallet/1.0", "client_id": "wallet", "auth_status": "invalid_signature", "signature_valid": false, "backend_calls": 0.0, "status": 401.0, "route": "/v1/balances/:address", "method": "GET"},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, lines[i])
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v", i, k, got[k], v)
			}
		}
		if _, ok := got["latency_us"]; !ok {
			t.Errorf("line %d has no latency_us", i)
		}
		if strings.Contains(lines[i], secret1) || strings.Contains(lines[i], "X-Request-Signature") || strings.Contains(strings.ToLower(lines[i]), "signature\":\"") {
			t.Fatalf("log line leaks credentials: %s", lines[i])
		}
	}
}
