package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/balidx/balidx/query"
)

// underAttack runs the legitimate load (known addresses, signed) again while
// attackers, each paced so that they do not simply take the load generator's
// CPU, send the seed's attack mix: random unknown addresses, 1 MiB
// addresses, forged and replayed signatures, and a signed client far over
// its quota. It reports the legitimate load against the unloaded run.
func underAttack(ctx context.Context, b *bench, legit *target, unloaded result, s *summary) error {
	server := legit.server
	base := "http://" + server.host
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var sent, refused atomic.Int64
	statuses := sync.Map{}
	count := func(kind string, code int) {
		v, _ := statuses.LoadOrStore(kind+" → "+strconv.Itoa(code), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	var attackers sync.WaitGroup
	paced := func(kind string, perSecond int, do func(rng *rand.Rand) (int, error)) {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			rng := rand.New(rand.NewPCG(uint64(perSecond), 9))
			t := time.NewTicker(time.Second / time.Duration(perSecond))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				code, err := do(rng)
				if ctx.Err() != nil { // cut off by the end of the run: not an answer
					return
				}
				sent.Add(1)
				if err != nil {
					refused.Add(1)
					continue
				}
				count(kind, code)
			}
		}()
	}
	get := func(path string, header http.Header) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return 0, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	signed := func(client, secret, path, nonce string) http.Header {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		h := http.Header{}
		h.Set(query.HeaderClientID, client)
		h.Set(query.HeaderTimestamp, ts)
		h.Set(query.HeaderNonce, nonce)
		h.Set(query.HeaderSignature, query.Sign([]byte(secret), "GET", path, "", ts, nonce, nil))
		return h
	}
	hexAddr := func(rng *rand.Rand) string { return fmt.Sprintf("0x%x", unknownAddress(rng)) }

	// What the attack must not make grow: the server's reads of unknown
	// addresses from bbolt, and (within its bound) its RSS.
	serverState := func() (unknownReads, rss float64, err error) {
		if unknownReads, err = server.metric(ctx, "balidx_snapshot_unknown_reads_total"); err != nil {
			return 0, 0, err
		}
		rss, err = server.rssMB()
		return unknownReads, rss, err
	}
	readsBefore, rssBefore, err := serverState()
	if err != nil {
		return err
	}
	paced("unknown address", 2000, func(rng *rand.Rand) (int, error) { return get("/v1/balances/"+hexAddr(rng), nil) })
	// Made once and written on a raw connection: building and parsing a
	// 1 MiB URL per request would cost the attacker's CPU, which here is
	// the server's too.
	huge := []byte("GET /v1/balances/0x" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: " + server.host + "\r\n\r\n")
	paced("1 MiB address", 20, func(*rand.Rand) (int, error) { return rawStatus(server.host, huge) })
	paced("forged signature", 500, func(rng *rand.Rand) (int, error) {
		path := "/v1/balances/" + hexAddr(rng)
		return get(path, signed(benchClient, "not-the-secret-of-the-bench-client", path, fmt.Sprintf("forged-%016x", rng.Uint64())))
	})
	// One request of the legitimate client, captured and sent again and again.
	replayPath := "/v1/balances/" + hexAddr(rand.New(rand.NewPCG(1, 1)))
	replayed := signed(benchClient, benchSecret, replayPath, "captured-request-0001")
	paced("replayed signature", 300, func(*rand.Rand) (int, error) { return get(replayPath, replayed) })
	paced("over-quota client", 500, func(rng *rand.Rand) (int, error) {
		path := "/v1/balances/" + hexAddr(rng)
		return get(path, signed("greedy", greedySecret, path, fmt.Sprintf("greedy-%016x", rng.Uint64())))
	})
	time.Sleep(time.Second) // the attack is under way before the measurement
	loaded, err := b.measure(ctx, legit, b.cfg.conns, b.cfg.duration)
	if err != nil {
		return err
	}
	readsAfter, rss, err := serverState()
	if err != nil {
		return err
	}
	goroutines, err := server.metric(ctx, "go_goroutines")
	if err != nil {
		return err
	}
	cancel()
	attackers.Wait()

	w := b.out
	fmt.Fprintf(w, "\nUnder attack (%d attack requests during the run, %d refused at the transport):\n\n", sent.Load(), refused.Load())
	fmt.Fprintf(w, "| legitimate load | req/s | p50 | p99 | p99.9 | non-2xx | socket errors |\n|---|---|---|---|---|---|---|\n")
	for _, r := range []struct {
		name string
		r    result
	}{{"unloaded (median)", unloaded}, {"under attack", loaded}} {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %d | %d |\n", r.name, r.r.rps, ms(r.r.p50), ms(r.r.p99), ms(r.r.p999), r.r.non2xx, r.r.errs)
	}
	fmt.Fprintf(w, "\nRSS of the balidx server %.0f MB before the attack, %.0f MB after; %.0f goroutines at the end of it\n", rssBefore, rss, goroutines)
	var lines []string
	statuses.Range(func(k, v any) bool {
		lines = append(lines, fmt.Sprintf("%s: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(lines)
	fmt.Fprintf(w, "attack answers: %s\n", strings.Join(lines, ", "))

	s.add("legitimate throughput under attack ÷ unloaded", loaded.rps/unloaded.rps, ">=", 0.8)
	s.add("legitimate p99 under attack ÷ unloaded", float64(loaded.p99)/float64(unloaded.p99), "", 0)
	s.add("legitimate errors and non-2xx under attack", float64(loaded.non2xx+loaded.errs), "<=", 0)
	s.add("snapshot reads for unknown addresses during the attack", readsAfter-readsBefore, "<=", 0)
	// What traffic can make grow is capped: the replay cache (2Mi pairs,
	// ~96 MB), the per-IP anonymous and failed-authentication tables (100k
	// buckets each, ~21 MB each, measured), 512 requests in flight (8 KiB headers,
	// 16 KiB bodies: ~12 MB) and the cache (64 MB).
	s.add("RSS growth during the attack, MB (bound: replay cache, per-IP tables, in-flight requests, cache)", rss-rssBefore, "<=", 214)
	return nil
}

// rawStatus sends req on a new connection and returns the answer's status.
// The server may answer and close before it has read everything.
func rawStatus(host string, req []byte) (int, error) {
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	go conn.Write(req) // fails once the server has closed: the answer is what counts
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
