package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/balidx/balidx/query"
)

// The requests wrk sends are what the query tier accepts: every signed
// request of a set is answered 200 with the account's balance, and sending
// one again is refused as a replay.
func TestSignedRequestsAreAccepted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accounts := genesisAccounts(50)
	server := serveAccounts(t, accounts)
	host := server.host
	byAddr := map[address]uint64{}
	for _, a := range accounts {
		byAddr[a.addr] = a.balance
	}
	prefix := filepath.Join(t.TempDir(), "requests")
	known := func(rng *randSource) address { return accounts[rng.IntN(len(accounts))].addr }
	if err := writeRequests(prefix, 20, signedGets(known)(host, 1)); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	var r *bufio.Reader
	send := func(raw []byte) (*http.Response, []byte) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for thread := range wrkThreads {
		// A connection of its own, as each wrk thread has: the replayed
		// request below is refused, and the server closes its connection.
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conn, r = c, bufio.NewReader(c)
		data, err := os.ReadFile(prefix + "." + strconv.Itoa(thread))
		if err != nil {
			t.Fatal(err)
		}
		reqs := bytes.Split(bytes.TrimSuffix(data, []byte{0}), []byte{0})
		if len(reqs) != 20 {
			t.Fatalf("thread %d: %d requests, want 20", thread, len(reqs))
		}
		for _, raw := range reqs {
			resp, body := send(raw)
			var ans struct {
				Address string `json:"address"`
				Native  string `json:"native"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ans) != nil {
				t.Fatalf("%s → %d %s", raw, resp.StatusCode, body)
			}
			addrBytes, err := hex.DecodeString(strings.ToLower(strings.TrimPrefix(ans.Address, "0x")))
			var a address
			copy(a[:], addrBytes)
			if want, ok := byAddr[a]; err != nil || !ok || ans.Native != strconv.FormatUint(want, 10) {
				t.Fatalf("%s: native %s, the genesis says %d", ans.Address, ans.Native, want)
			}
		}
		if resp, body := send(reqs[0]); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "replayed_request") {
			t.Fatalf("a request sent twice: %d %s", resp.StatusCode, body)
		}
	}
	// What the attack run reads from the server process: every address
	// asked for is known, and at most the 50 accounts were read from bbolt.
	for name, want := range map[string]func(float64) bool{
		"balidx_snapshot_reads_total":         func(n float64) bool { return n >= 1 && n <= 50 },
		"balidx_snapshot_unknown_reads_total": func(n float64) bool { return n == 0 },
		"go_goroutines":                       func(n float64) bool { return n >= 1 },
	} {
		if n, err := server.metric(ctx, name); err != nil || !want(n) {
			t.Errorf("%s: %v %v", name, n, err)
		}
	}
	if rss, err := server.rssMB(); err != nil || rss <= 0 {
		t.Errorf("server RSS: %v %v", rss, err)
	}
}

// The bare handlers send balidx's answer: the same body, and the second
// the same header fields too (each a process, as the margins run them).
func TestBareHandlersSendBalidxsAnswer(t *testing.T) {
	ctx := context.Background()
	accounts := genesisAccounts(3)
	node := serveAccounts(t, accounts)
	body, fields, err := answer(ctx, node.host, accounts[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Etag", "Cache-Control", "Vary", query.HeaderBlock, query.HeaderBlockHash} {
		if len(fields[k]) == 0 {
			t.Fatalf("balidx's answer has no %s: %v", k, fields)
		}
	}
	dir := t.TempDir()
	bodyFile, fieldsFile := filepath.Join(dir, "answer.json"), filepath.Join(dir, "answer.fields")
	if err := writeAnswer(bodyFile, fieldsFile, body, fields); err != nil {
		t.Fatal(err)
	}
	url := "/v1/balances/" + accounts[1].addr.Hex()
	for _, args := range [][]string{{"bare", bodyFile}, {"bare", bodyFile, fieldsFile}} {
		bare, err := startServer(args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bare.stop)
		var got http.Header
		gotBody, err := getWith(ctx, &http.Client{Timeout: 10 * time.Second}, "http://"+bare.host+url, &got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotBody, body) || got.Get("Content-Type") != "application/json" {
			t.Fatalf("%v: %s %s, want balidx's %s", args, got.Get("Content-Type"), gotBody, body)
		}
		for _, k := range []string{"Date", "Content-Length", "Content-Type"} {
			delete(got, k)
		}
		want := fields
		if len(args) == 2 {
			want = http.Header{}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%v: header fields %v, want %v", args, got, want)
		}
	}
}

// A warm-up reads every address once from bbolt and leaves them all in the
// cache: warming again reads none.
func TestWarmUpFillsTheCache(t *testing.T) {
	ctx := context.Background()
	accounts := genesisAccounts(1000)
	server := serveAccounts(t, accounts)
	addrs := make([]address, len(accounts))
	for i, a := range accounts {
		addrs[i] = a.addr
	}
	for round := 1; round <= 2; round++ {
		if err := warmUp(ctx, server.host, addrs); err != nil {
			t.Fatal(err)
		}
		if n, err := server.metric(ctx, "balidx_snapshot_reads_total"); err != nil || n != float64(len(addrs)) {
			t.Fatalf("after warm-up %d: %v snapshot reads (%v), want %d", round, n, err, len(addrs))
		}
	}
}

// An attacker's burst is pipelined on one connection and every answer is
// read, in order, up to a refusal of the caller (a forged signature),
// after which the server closes the connection; the next burst dials again.
func TestAttackerBurst(t *testing.T) {
	accounts := genesisAccounts(10)
	server := serveAccounts(t, accounts)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	path := "/v1/balances/" + accounts[0].addr.Hex()
	conn := &keepAlive{host: server.host}
	defer conn.close()
	for round := range 2 {
		codes, err := conn.statuses([][]byte{
			plainGet(server.host, path),
			plainGet(server.host, "/v1/balances/0x12"),
			signedGet(server.host, path, benchClient, benchSecret, ts, fmt.Sprintf("honest-nonce-%04d", round)),
			signedGet(server.host, path, benchClient, "not-the-secret", ts, fmt.Sprintf("forged-nonce-%04d", round)),
			plainGet(server.host, path), // lost: the server closed after the refusal
		})
		if want := []int{200, 400, 200, 401}; err == nil || !slices.Equal(codes, want) {
			t.Fatalf("round %d: %v %v, want %v and the connection closed", round, codes, err, want)
		}
		if conn.conn != nil {
			t.Fatalf("round %d: the connection the server closed is kept", round)
		}
	}
}

// serveAccounts runs a balidx server process over a snapshot of accounts
// until the test ends.
func serveAccounts(t *testing.T, accounts []account) *proc {
	t.Helper()
	snapshot := filepath.Join(t.TempDir(), "snapshot.db")
	if err := buildStore(snapshot, accounts); err != nil {
		t.Fatal(err)
	}
	server, err := startServer("balidx", snapshot, strconv.FormatInt(query.DefaultCacheBytes, 10), "-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.stop)
	return server
}

// The test binary is a server process too when started as one (startServer).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		if err := serveMain(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The summary takes the median of repeated `go test -bench` lines.
func TestGoBenchFolded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.txt")
	out := `goos: linux
BenchmarkApply/catch-up-2     	      10	 288872108 ns/op	    173087 changes/s
BenchmarkApply/catch-up-2     	      10	 216429696 ns/op	    231022 changes/s
BenchmarkApply/catch-up-2     	      10	 216429696 ns/op	    250000 changes/s
BenchmarkBareEcho-2   	  200000	       220.6 ns/op	      16 B/op	       1 allocs/op
BenchmarkBalanceSignedCacheHit-2  	  200000	      3448 ns/op	     160 B/op	       3 allocs/op
PASS
`
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := s.addGoBench(file); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range s.rows {
		got[r.what] = r.value
	}
	if v := got["catch-up apply into bbolt, changes/s"]; v != 231022 {
		t.Errorf("catch-up median %v, want 231022", v)
	}
	if v := got["allocations per request beyond echo's, signed, cached"]; v != 2 {
		t.Errorf("allocations beyond echo %v, want 2", v)
	}
}

func TestFlagsRefused(t *testing.T) {
	for _, args := range [][]string{{"-hot", "0"}, {"-accounts", "0"}, {"-runs", "0"}, {"-rounds", "0"}, {"-processes", "0"}, {"-connections", "1"}, {"-duration", "10ms"}} {
		if err := run(context.Background(), args, io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want an error naming %s", args, err, args[0])
		}
	}
}

// wrk's threads load the server together: no request arrives before the
// last thread has read its file, here a large one that takes its init
// about a second (the first thread's is small).
func TestWrkThreadsStartTogether(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (make bench installs it)")
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "requests")
	var early, all atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all.Add(1)
		if _, err := os.Stat(prefix + ".ready"); err != nil {
			early.Add(1)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for thread, n := range []int{100, 300_000} {
		var b bytes.Buffer
		for i := range n {
			b.Write(plainGet(host, fmt.Sprintf("/%d/%d", thread, i)))
			b.WriteByte(0)
		}
		if err := os.WriteFile(prefix+"."+strconv.Itoa(thread), b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := runWrk(context.Background(), dir, srv.URL, prefix, 4, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if all.Load() == 0 || r.rps == 0 {
		t.Fatalf("no load: %d requests, %v req/s", all.Load(), r.rps)
	}
	if early.Load() > 0 {
		t.Errorf("%d of %d requests arrived before the last thread was ready", early.Load(), all.Load())
	}
}

func TestStealOf(t *testing.T) {
	stat := "cpu  313649 0 87215 210740 5784 0 27198 9226 0 0\ncpu0 155695 0 42802 108426 2068 0 13409 4546 0 0\n"
	if got := stealOf(stat); got != 92260*time.Millisecond {
		t.Errorf("steal of %q: %v, want 92.26s", stat, got)
	}
	for _, bad := range []string{"", "intr 1 2 3 4 5 6 7 8 9", "cpu 1 2 3"} {
		if got := stealOf(bad); got != 0 {
			t.Errorf("steal of %q: %v, want 0", bad, got)
		}
	}
}
