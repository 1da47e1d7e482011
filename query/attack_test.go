package query

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// TestUnderAttack runs the seed's attack mix against a real listener while a
// well-behaved client keeps asking: a flood of unknown addresses, oversized
// addresses, forged signatures and a client far over its quota.
func TestUnderAttack(t *testing.T) {
	clients := &Clients{
		Clients: []Client{
			{ID: "good", Secrets: []string{secret1}, Rate: 1000, Burst: 1000},
			{ID: "greedy", Secrets: []string{secret2}, Rate: 5, Burst: 5},
		},
		Anonymous: Anonymous{Enabled: true, Rate: 1e6, Burst: 1e6}, // the flood is not throttled: the Bloom filter must hold alone
	}
	s, snap := mustServer(t, 0, Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Clients: clients})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + s.Addr()
	hc := &http.Client{Timeout: 10 * time.Second}

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]map[int]int{}
	count := func(who string, status int) {
		mu.Lock()
		defer mu.Unlock()
		if statuses[who] == nil {
			statuses[who] = map[int]int{}
		}
		statuses[who][status]++
	}
	get := func(who, path, id, secret string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if id != "" {
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			nonce := fmt.Sprintf("%s-%016x", who, rand.Uint64())
			req.Header.Set(HeaderClientID, id)
			req.Header.Set(HeaderTimestamp, ts)
			req.Header.Set(HeaderNonce, nonce)
			req.Header.Set(HeaderSignature, Sign([]byte(secret), "GET", path, "", ts, nonce, nil))
		}
		resp, err := hc.Do(req)
		if err != nil {
			count(who, -1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		count(who, resp.StatusCode)
	}
	attack := func(who string, n int, f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				f(i)
			}
		}()
	}
	get("warm-up", "/v1/balances/"+holder.Hex(), "good", secret1) // the holder is cached from here on
	snap.cache.Wait()
	readsBefore := snap.SnapshotReads()
	rng := rand.New(rand.NewPCG(1, 2))
	unknown := make([]string, 5000)
	for i := range unknown {
		var a common.Address
		for j := range a {
			a[j] = byte(rng.Uint32())
		}
		unknown[i] = "/v1/balances/" + a.Hex()
	}
	start := time.Now()
	attack("flood", len(unknown)/2, func(i int) { get("flood", unknown[i], "", "") })
	attack("flood", len(unknown)/2, func(i int) { get("flood", unknown[len(unknown)/2+i], "", "") })
	attack("forger", 200, func(int) { get("forger", "/v1/balances/"+holder.Hex(), "good", strings.Repeat("z", 32)) })
	attack("greedy", 200, func(int) { get("greedy", "/v1/balances/"+holder.Hex(), "greedy", secret2) })
	attack("huge", 20, func(int) { count("huge", rawStatus(t, s.Addr(), "/v1/balances/0x"+strings.Repeat("a", 1<<20))) })
	attack("good", 100, func(int) {
		get("good", "/v1/balances/"+holder.Hex(), "good", secret1)
		time.Sleep(2 * time.Millisecond)
	})
	wg.Wait()
	elapsed := time.Since(start)

	t.Logf("statuses by caller after %s: %v", elapsed.Round(time.Millisecond), statuses)
	if st := statuses["good"]; st[200] != 100 {
		t.Errorf("the well-behaved client got %v, want 100 × 200", st)
	}
	if st := statuses["flood"]; st[200] != len(unknown) {
		t.Errorf("unknown addresses (full coverage: a vouched zero) got %v", st)
	}
	// greedy's bucket: 5 at once, then 5 a second, whatever the speed here.
	if st, allowed := statuses["greedy"], 5+int(5*elapsed.Seconds())+1; st[200] > allowed || st[200]+st[429] != 200 || st[429] == 0 {
		t.Errorf("the over-quota client got %v, want at most %d × 200 and the rest 429", st, allowed)
	}
	if st := statuses["forger"]; st[401]+st[429] != 200 || st[429] == 0 {
		t.Errorf("forged signatures got %v, want 401 then 429 once the IP is throttled", st)
	}
	if st := statuses["huge"]; st[431] != 20 {
		t.Errorf("1 MB addresses got %v, want 431 (refused before parsing)", st)
	}
	if reads := snap.SnapshotReads() - readsBefore; reads != 0 {
		t.Errorf("the attack caused %d snapshot reads, want 0 (the holder is cached, unknown addresses stop at the Bloom filter)", reads)
	}
}

// rawStatus sends a GET for path over a raw connection (an http.Client
// would refuse to build such a request) and returns the status code.
func rawStatus(tb testing.TB, addr, path string) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path) // the server may answer before reading it all
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return -1
	}
	var proto string
	var code int
	fmt.Sscanf(line, "%s %d", &proto, &code)
	return code
}
