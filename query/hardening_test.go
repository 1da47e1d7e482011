package query

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The attacks of the black-box probe (issue 16), each on a real listener
// on loopback. The attacker speaks from 127.0.0.2, the well-behaved client
// from 127.0.0.1: per-IP limits tell them apart as they would two hosts.

var attackerAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// liveServer serves mustServer's snapshot on free loopback ports until the
// test ends.
func liveServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, _ := mustServer(tb, 0, cfg)
	if err := s.Listen(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return s
}

var hardeningClients = &Clients{Clients: []Client{
	{ID: "good", Secrets: []string{secret1}, Rate: 1000, Burst: 1000},
	{ID: "other", Secrets: []string{secret2}, Rate: 1000, Burst: 1000},
}}

// goodClient asks for a balance, signed, every few milliseconds until stop
// is closed, from 127.0.0.1 over a fresh connection each time (as a client
// whose connections are being refused would have to), and reports its
// answers: how many were 200 within 1 s, and the 99th percentile.
type goodClient struct {
	ok, total int
	latencies []time.Duration
}

func runGoodClient(tb testing.TB, addr, id, secret string, stop <-chan struct{}) <-chan goodClient {
	out := make(chan goodClient, 1)
	go func() {
		var g goodClient
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		path := "/v1/balances/" + holder.Hex()
		for {
			select {
			case <-stop:
				out <- g
				return
			case <-time.After(5 * time.Millisecond):
			}
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			signRequest(req, id, secret, path, nil)
			start := time.Now()
			resp, err := hc.Do(req)
			took := time.Since(start)
			g.total++
			g.latencies = append(g.latencies, took)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && took < time.Second {
				g.ok++
			}
		}
	}()
	return out
}

func (g goodClient) p99() time.Duration {
	if len(g.latencies) == 0 {
		return 0
	}
	l := slices.Clone(g.latencies)
	slices.Sort(l)
	return l[len(l)*99/100]
}

// check fails unless every answer was a 200 within 1 s.
func (g goodClient) check(tb testing.TB, during string) {
	tb.Helper()
	tb.Logf("%s: the good client got %d of %d answers 200 within 1 s, p99 %s", during, g.ok, g.total, g.p99().Round(time.Microsecond))
	if g.total < 10 || g.ok != g.total {
		tb.Errorf("%s: the good client got %d of %d answers 200 within 1 s", during, g.ok, g.total)
	}
}

func signRequest(req *http.Request, id, secret, path string, body []byte) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := fmt.Sprintf("n%016x%016x", rand.Uint64(), rand.Uint64())
	req.Header.Set(HeaderClientID, id)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, Sign([]byte(secret), req.Method, path, req.URL.RawQuery, ts, nonce, body))
}

// dialFrom opens a connection to addr from the attacker's address.
func dialFrom(local *net.TCPAddr, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// processFigures logs what the attack left behind.
func processFigures(tb testing.TB) {
	tb.Helper()
	runtime.GC()
	rss := "?"
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				rss = strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
			}
		}
	}
	tb.Logf("at the end: RSS %s, %d goroutines", rss, runtime.NumGoroutine())
}

// Row 1: 520 connections that declare a body and never send it hold no
// serving slot, and the good client keeps getting 200: the probe's mix
// (unknown client ids, a known id with a zero signature, a GET declaring a
// body — the unknown ids use up the address's failures, and then no body
// is read at all), and 520 bodies of a known id alone, each read until the
// read timeout.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	for _, tt := range []struct {
		name     string
		from     *net.TCPAddr
		knownID  bool // every connection names a known client
		openMost bool // most connections stay open, reading their body
	}{
		{"the probe's mix", attackerAddr, false, false},
		{"a known client id only", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 4)}, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := liveServer(t, Config{Clients: hardeningClients, MaxConnsPerIP: 1000})
			stop := make(chan struct{})
			good := runGoodClient(t, s.Addr(), "good", secret1, stop)
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range 520 {
				c, err := dialFrom(tt.from, s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				id, method, path := "nobody", "POST", "/v1/balances"
				switch {
				case tt.knownID || i%3 == 1:
					id = "other" // known, with a zero signature
				case i%3 == 2:
					method, path = "GET", "/v1/status"
				}
				fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nX-Client-ID: %s\r\nX-Timestamp: %d\r\nX-Nonce: %s\r\nX-Request-Signature: %s\r\nContent-Length: 16000\r\n\r\n{\"addresses\":[",
					method, path, id, time.Now().Unix(), fmt.Sprintf("attack%012d", i), strings.Repeat("0", 64))
			}
			time.Sleep(time.Second) // the attack goes on while the good client asks
			open := s.qconns.open.Load()
			t.Logf("during the attack: %d connections open, %d requests in flight, %d goroutines", open, s.guard.inFlight.n.Load(), runtime.NumGoroutine())
			if n := s.guard.inFlight.n.Load(); n > 1 {
				t.Errorf("%d requests hold serving slots during the attack, want at most the good client's", n)
			}
			if tt.openMost && open < 500 {
				t.Errorf("%d connections open: the attack did not hold its bodies open (the test proves nothing)", open)
			}
			close(stop)
			(<-good).check(t, "520 slow bodies, "+tt.name)
			processFigures(t)
		})
	}
}

// Row 2: thousands of idle keep-alive connections from one IP stop at the
// per-IP cap (the rest are told 503 and closed); the good client and the
// admin listener still answer; a throttled answer closes its connection.
func TestIdleConnectionsAreCapped(t *testing.T) {
	clients := &Clients{Clients: []Client{hardeningClients.Clients[0], {ID: "idler", Secrets: []string{secret2}, Rate: 1e5, Burst: 1e5}},
		Anonymous: Anonymous{Enabled: true, Rate: 2, Burst: 5}}
	s := liveServer(t, Config{Clients: clients, MaxNonces: 1 << 24})
	stop := make(chan struct{})
	good := runGoodClient(t, s.Addr(), "good", secret1, stop)
	// 2,000 connections (4,000 descriptors in this process, both ends), or
	// what the file limit allows: enough to pass the per-IP cap well.
	attempts := 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && int(lim.Cur) < 2*attempts+512 {
		attempts = (int(lim.Cur) - 512) / 2
	}
	if attempts < 2*DefaultMaxConnsPerIP {
		t.Skipf("the file limit allows %d connections: too few to pass the per-IP cap of %d twice", attempts, DefaultMaxConnsPerIP)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused, answered := 0, 0
	for range attempts {
		c, err := dialFrom(attackerAddr, s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// Signed and within its quota: each connection stays open, idle.
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/v1/status", nil)
		signRequest(req, "idler", secret2, "/v1/status", nil)
		req.Write(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer on connection %d: %v", len(conns), err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 503 && resp.Close:
			refused++
		case resp.StatusCode == 200 && !resp.Close:
			answered++
		default:
			t.Fatalf("connection %d: %d (close %v)", len(conns), resp.StatusCode, resp.Close)
		}
	}
	if answered != DefaultMaxConnsPerIP || refused != attempts-DefaultMaxConnsPerIP {
		t.Errorf("%d connections answered, %d refused at accept; want at most %d answered", answered, refused, DefaultMaxConnsPerIP)
	}
	resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + s.AdminAddr() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin /healthz during the attack: %v %v", resp, err)
	}
	resp.Body.Close()
	close(stop)
	(<-good).check(t, fmt.Sprintf("%d idle connections from one IP", attempts))
	if got := counterValue(t, s, "balidx_connections_refused_total"); got < float64(refused) {
		t.Errorf("balidx_connections_refused_total %v, want at least %d", got, refused)
	}
	processFigures(t)

	// A throttled answer closes its connection: the anonymous tier allows
	// 127.0.0.3 a burst of 5.
	c, err := dialFrom(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 6 {
		fmt.Fprintf(c, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode == 429 {
			if !resp.Close {
				t.Fatal("a 429 keeps its connection open")
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("after a 429 the server did not close the connection: %v", err)
			}
			return
		}
	}
	t.Fatal("the anonymous quota never answered 429")
}

// counterValue sums a counter of s's registry.
func counterValue(tb testing.TB, s *Server, name string) float64 {
	tb.Helper()
	mfs, err := s.cfg.Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Row 3: the replay cache holds every client's share (refused at start and
// at reload otherwise), so one client at its full quota never locks
// another out; a client past its share is refused alone, with a
// Retry-After that says when its first nonce expires.
func TestReplayCacheShares(t *testing.T) {
	clients := &Clients{Clients: []Client{
		{ID: "good", Secrets: []string{secret1}, Rate: 400, Burst: 400}, // more than it asks for
		{ID: "other", Secrets: []string{secret2}, Rate: 50, Burst: 50},
	}}
	shares := 400*(2*30+1) + 400 + 50*(2*30+1) + 50
	if _, err := New(Config{Snapshot: mustSnapshot(t), Clients: clients, MaxNonces: shares - 1}); !errors.Is(err, ErrNonceCacheTooSmall) {
		t.Fatalf("a cache one pair short of the shares: got %v, want ErrNonceCacheTooSmall", err)
	}
	s := liveServer(t, Config{Clients: clients, MaxNonces: shares})
	bigger := &Clients{Clients: []Client{clients.Clients[0], {ID: "other", Secrets: []string{secret2}, Rate: 51, Burst: 50}}}
	if err := s.ReloadClients(bigger); !errors.Is(err, ErrNonceCacheTooSmall) {
		t.Fatalf("reload past the cache: got %v, want ErrNonceCacheTooSmall", err)
	}

	stop := make(chan struct{})
	good := runGoodClient(t, s.Addr(), "good", secret1, stop)
	var wg sync.WaitGroup
	var limited, overloaded atomic.Int64
	for range 4 { // "other" at and past its quota, as fast as it can
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			path := "/v1/balances/" + holder.Hex()
			for range 300 {
				req, _ := http.NewRequest("GET", "http://"+s.Addr()+path, nil)
				signRequest(req, "other", secret2, path, nil)
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 429:
					limited.Add(1)
				case 503:
					overloaded.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	(<-good).check(t, "another client at its full quota")
	if overloaded.Load() != 0 || limited.Load() == 0 {
		t.Errorf("the greedy client got %d × 429 and %d × 503; want 429s only", limited.Load(), overloaded.Load())
	}

	// Past its share (only a client whose quota was raised under load can
	// get there): refused alone, until its first pair expires.
	n := newNonceCache(30*time.Second, 100)
	small, other := n.newShare(0, 3), n.newShare(0, 3)
	now := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if ok, err := n.add("a", "nonce-a-"+strconv.Itoa(i), now.Unix()-10, now, small); !ok || err != nil {
			t.Fatalf("pair %d within the share: %v %v", i, ok, err)
		}
	}
	_, err := n.add("a", "nonce-a-3", now.Unix(), now, small)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.RetryAfter != 21 {
		t.Fatalf("past the share: got %v, want 429 with Retry-After 21 (the first pair expires 20 s from now)", err)
	}
	if ok, err := n.add("b", "nonce-b-0", now.Unix(), now, other); !ok || err != nil {
		t.Fatalf("another client: %v %v", ok, err)
	}
	later := now.Add(21 * time.Second)
	if ok, err := n.add("a", "nonce-a-3", later.Unix(), later, small); !ok || err != nil {
		t.Fatalf("after its first pairs expired: %v %v", ok, err)
	}
}

// mustSnapshot is an empty snapshot, for servers that are only built.
func mustSnapshot(tb testing.TB) *Snapshot {
	tb.Helper()
	_, snap := mustServer(tb, ^uint64(0), Config{})
	return snap
}

// Rows 4–9: the exact status, headers and connection behaviour of each
// malformed request, over a raw connection.
func TestMalformedRequests(t *testing.T) {
	s := liveServer(t, Config{Clients: &Clients{Anonymous: Anonymous{Enabled: true, Rate: 1e6, Burst: 1e6}}})
	tag := func() string {
		resp, err := http.Get("http://" + s.Addr() + "/v1/balances/" + holder.Hex())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("ETag")
	}()
	big := strings.Repeat("a", 12_000)
	fits := strings.Repeat("a", 7_000)
	path := "/v1/balances/" + holder.Hex()
	tests := []struct {
		name, request string
		status        int
		code          string // the JSON error code; "" for a success or a plain-text answer of net/http
		closes        bool
		mention       string // what the message must name
	}{
		{"row 4: Content-Length and chunked", "POST /v1/balances HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}  \r\n0\r\n\r\n", 400, "invalid_request", true, ""},
		{"row 4: chunked alone", "POST /v1/balances HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400, "invalid_request", true, ""},
		{"row 5: 100 MB declared, 2 bytes sent", "POST /v1/balances HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{\"", 413, "request_too_large", true, ""},
		{"row 5: a GET declaring a body", "GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 400, "invalid_request", true, ""},
		{"row 6: one 12,000-byte header", "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431, "", true, ""},
		{"row 6: a 7,000-byte header fits", "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Big: " + fits + "\r\n\r\n", 200, "", false, ""},
		{"row 7: If-None-Match *", "GET " + path + " HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n", 304, "", false, ""},
		{"row 7: a list holding the tag", "GET " + path + " HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\", " + tag + "\r\n\r\n", 304, "", false, ""},
		{"row 7: the weak form", "GET " + path + " HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/" + tag + "\r\n\r\n", 304, "", false, ""},
		{"row 7: another tag", "GET " + path + " HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\"\r\n\r\n", 200, "", false, ""},
		{"row 8: min_block past the trusted block (issue 19: a replica behind)", "GET " + path + "?min_block=999999999 HTTP/1.1\r\nHost: x\r\n\r\n", 503, "behind", true, "min_block"},
		{"row 8: block", "GET " + path + "?block=5 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, `\"block\"`},
		{"row 8: unknown parameter", "GET " + path + "?foo=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, `\"foo\"`},
		{"row 8: limit twice", "GET " + path + "?limit=1&limit=2 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, `\"limit\" given 2 times`},
		{"row 8: address twice", "GET /go/wallet/balance?address=" + holder.Hex() + "&address=" + never.Hex() + " HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, `\"address\" given 2 times`},
		{"row 8: a parameter on status", "GET /v1/status?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, ""},
		{"row 8: ADDRESSES", batchRequest(`{"ADDRESSES":["` + holder.Hex() + `"]}`), 400, "invalid_request", false, `\"ADDRESSES\"`},
		{"row 8: duplicate key", batchRequest(`{"addresses":["` + holder.Hex() + `"],"addresses":["` + never.Hex() + `"]}`), 400, "invalid_request", false, `given twice`},
		{"row 8: unknown key", batchRequest(`{"addresses":["` + holder.Hex() + `"],"min_block":5}`), 400, "invalid_request", false, `\"min_block\"`},
		{"row 8: a strict batch passes", batchRequest(`{"addresses":["` + holder.Hex() + `"]}`), 200, "", false, ""},
		{"row 9: malformed request line (net/http, plain text)", "GET\r\n\r\n", 400, "", true, ""},
		{"row 9: unsupported Transfer-Encoding (net/http, plain text)", "POST /v1/balances HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "", true, ""},
		{"row 9: unsupported HTTP version (net/http, plain text)", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The server must answer from what it has: without the rest of
			// a body, and before its 10 s read timeout would.
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go io.WriteString(c, tt.request)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.code != "" && (!strings.Contains(string(body), `"code":"`+tt.code+`"`) || resp.Header.Get("Content-Type") != "application/json") {
				t.Fatalf("got %s (%s), want a JSON error %q", body, resp.Header.Get("Content-Type"), tt.code)
			}
			if tt.status >= 400 && tt.code == "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Fatalf("net/http's own answer: Content-Type %q, want text/plain (as API.md documents)", resp.Header.Get("Content-Type"))
			}
			if tt.mention != "" && !strings.Contains(string(body), tt.mention) {
				t.Fatalf("got %s, want a message naming %s", body, tt.mention)
			}
			if !tt.closes {
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // open: the read times out
			}
			_, err = br.ReadByte()
			if closed := errors.Is(err, io.EOF); closed != tt.closes {
				t.Fatalf("connection closed after the answer: %v (%v), want %v", closed, err, tt.closes)
			}
		})
	}
}

func batchRequest(body string) string {
	return "POST /v1/balances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}
