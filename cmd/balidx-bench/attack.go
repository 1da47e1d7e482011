package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum/common"
)

const greedySecret = "greedy-client-secret-0123456789abcdef"

// underAttack runs the legitimate wrk load (known addresses, anonymous)
// again while attackers, each paced so that they do not simply take the
// load generator's CPU, send the seed's attack mix: random unknown
// addresses, 64 KiB addresses, forged signatures, and a signed client far
// over its quota. It reports the legitimate load against the unloaded run.
func underAttack(ctx context.Context, legit target, cfg config, snap *query.Snapshot, unloaded result, out io.Writer) error {
	base := legit.url
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var sent, refused atomic.Int64
	statuses := sync.Map{}
	count := func(kind string, code int) {
		v, _ := statuses.LoadOrStore(kind+" "+strconv.Itoa(code), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	paced := func(kind string, perSecond int, do func(rng *rand.Rand) (int, error)) {
		go func() {
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
	randomAddr := func(rng *rand.Rand) string {
		var a common.Address
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		return strings.ToLower(a.Hex())
	}
	readsBefore := snap.SnapshotReads()
	paced("unknown", 2000, func(rng *rand.Rand) (int, error) { return get("/v1/balances/"+randomAddr(rng), nil) })
	paced("64KiB address", 50, func(*rand.Rand) (int, error) {
		return get("/v1/balances/0x"+strings.Repeat("a", 64<<10), nil)
	})
	paced("forged signature", 500, func(rng *rand.Rand) (int, error) {
		h := http.Header{}
		h.Set(query.HeaderClientID, "greedy")
		h.Set(query.HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
		h.Set(query.HeaderNonce, fmt.Sprintf("forged-%016x", rng.Uint64()))
		h.Set(query.HeaderSignature, fmt.Sprintf("%064x", rng.Uint64()))
		return get("/v1/balances/"+randomAddr(rng), h)
	})
	paced("over-quota client", 500, func(rng *rand.Rand) (int, error) {
		path := "/v1/balances/" + randomAddr(rng)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		nonce := fmt.Sprintf("greedy-%016x", rng.Uint64())
		h := http.Header{}
		h.Set(query.HeaderClientID, "greedy")
		h.Set(query.HeaderTimestamp, ts)
		h.Set(query.HeaderNonce, nonce)
		h.Set(query.HeaderSignature, query.Sign([]byte(greedySecret), "GET", path, "", ts, nonce, nil))
		return get(path, h)
	})
	time.Sleep(time.Second) // the attack is under way before the measurement
	loaded, err := wrk(ctx, legit, cfg)
	if err != nil {
		return err
	}
	reads := snap.SnapshotReads() - readsBefore
	rss := vmRSS()
	goroutines := runtime.NumGoroutine()
	cancel()

	fmt.Fprintf(out, "\nUnder attack (%d attack requests sent during the run, %d failed at the transport):\n\n", sent.Load(), refused.Load())
	fmt.Fprintf(out, "| legitimate load | req/s | p50 | p99 | non-2xx | socket errors |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| unloaded | %.0f | %s | %s | %d | %d |\n", unloaded.rps, unloaded.p50.Round(time.Microsecond), unloaded.p99.Round(time.Microsecond), unloaded.non2xx, unloaded.errs)
	fmt.Fprintf(out, "| under attack | %.0f | %s | %s | %d | %d |\n", loaded.rps, loaded.p50.Round(time.Microsecond), loaded.p99.Round(time.Microsecond), loaded.non2xx, loaded.errs)
	fmt.Fprintf(out, "\nlegitimate throughput under attack ÷ unloaded: %.2f; snapshot reads during the attack: %d; RSS %s; goroutines %d\n",
		loaded.rps/unloaded.rps, reads, rss, goroutines)
	var lines []string
	statuses.Range(func(k, v any) bool {
		lines = append(lines, fmt.Sprintf("%s: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	fmt.Fprintf(out, "attack answers: %s\n", strings.Join(sortedStrings(lines), ", "))
	return nil
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// vmRSS is this process's resident set size (server and attackers).
func vmRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
