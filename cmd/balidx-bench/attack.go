package main

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// attackRounds is how many times the legitimate load is measured alone and
// then under attack, one right after the other, so that a drift in the
// machine's speed falls on both alike.
const attackRounds = 3

// underAttack runs the legitimate load (known addresses, signed) alone and
// then while attackers, each paced so that they do not simply take the load
// generator's CPU, send the seed's attack mix: random unknown addresses,
// 1 MiB addresses, forged and replayed signatures, and a signed client far
// over its quota. It reports the medians of attackRounds pairs.
func underAttack(ctx context.Context, b *bench, legit *target, s *summary) error {
	server := legit.server
	var sent, refused atomic.Int64
	statuses := sync.Map{}
	count := func(kind string, code int) {
		v, _ := statuses.LoadOrStore(kind+" → "+strconv.Itoa(code), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	unknownPath := func(rng *rand.Rand) string { return fmt.Sprintf("/v1/balances/0x%x", unknownAddress(rng)) }
	ts := func() string { return strconv.FormatInt(time.Now().Unix(), 10) }
	// Made once, and sent on a new connection each time: the server answers
	// 431 and closes it.
	huge := plainGet(server.host, "/v1/balances/0x"+strings.Repeat("a", 1<<20))

	// attack starts the attackers; stop ends them and closes their connections.
	rounds := 0
	attack := func() (stop func()) {
		rounds++
		ctx, cancel := context.WithCancel(ctx)
		var attackers sync.WaitGroup
		var conns []*keepAlive
		paced := func(kind string, perSecond int, send func(rng *rand.Rand, n int) ([]int, error)) {
			attackers.Add(1)
			go func() {
				defer attackers.Done()
				pace(ctx, perSecond, send, func(n int, codes []int) {
					sent.Add(int64(n))
					refused.Add(int64(n - len(codes)))
					for _, code := range codes {
						count(kind, code)
					}
				})
			}()
		}
		// onConn pipelines the requests next makes on a keep-alive
		// connection of the attacker's own.
		onConn := func(next func(rng *rand.Rand) []byte) func(rng *rand.Rand, n int) ([]int, error) {
			c := &keepAlive{host: server.host}
			conns = append(conns, c)
			return func(rng *rand.Rand, n int) ([]int, error) {
				reqs := make([][]byte, n)
				for i := range reqs {
					reqs[i] = next(rng)
				}
				return c.statuses(reqs)
			}
		}
		paced("unknown address", 2000, onConn(func(rng *rand.Rand) []byte { return plainGet(server.host, unknownPath(rng)) }))
		paced("1 MiB address", 20, func(*rand.Rand, int) ([]int, error) {
			code, err := rawStatus(server.host, huge)
			if err != nil {
				return nil, err
			}
			return []int{code}, nil
		})
		paced("forged signature", 500, onConn(func(rng *rand.Rand) []byte {
			return signedGet(server.host, unknownPath(rng), benchClient, "not-the-secret-of-the-bench-client", ts(), fmt.Sprintf("forged-%016x", rng.Uint64()))
		}))
		// One request of the legitimate client, captured and sent again and again.
		replayed := signedGet(server.host, unknownPath(rand.New(rand.NewPCG(1, 1))), benchClient, benchSecret, ts(), fmt.Sprintf("captured-request-%04d", rounds))
		paced("replayed signature", 300, onConn(func(*rand.Rand) []byte { return replayed }))
		paced("over-quota client", 500, onConn(func(rng *rand.Rand) []byte {
			return signedGet(server.host, unknownPath(rng), "greedy", greedySecret, ts(), fmt.Sprintf("greedy-%016x", rng.Uint64()))
		}))
		return func() {
			cancel()
			attackers.Wait()
			for _, c := range conns {
				c.close()
			}
		}
	}

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
	// The access log's growth while under attack, flushed (every 200 ms)
	// before each measure of its size.
	logSize := func() int64 {
		time.Sleep(300 * time.Millisecond)
		fi, err := os.Stat(b.accessLog)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	var logBytes int64
	var attackTime time.Duration
	var alone, loaded []result
	var attackCores, goroutines float64
	for range attackRounds {
		r, err := b.measure(ctx, legit, b.cfg.conns, b.cfg.duration)
		if err != nil {
			return err
		}
		alone = append(alone, r)
		size0, t0 := logSize(), time.Now()
		stop := attack()
		// The attack is under way for a second before the measurement;
		// this process runs nothing else meanwhile: its CPU is the
		// attackers'.
		cpu, start := selfCPU(), time.Now()
		time.Sleep(time.Second)
		attackCores = max(attackCores, (selfCPU()-cpu).Seconds()/time.Since(start).Seconds())
		r, err = b.measure(ctx, legit, b.cfg.conns, b.cfg.duration)
		var g float64
		if err == nil {
			g, err = server.metric(ctx, "go_goroutines")
		}
		stop()
		logBytes += logSize() - size0
		attackTime += time.Since(t0)
		if err != nil {
			return err
		}
		loaded = append(loaded, r)
		goroutines = max(goroutines, g)
	}
	readsAfter, rss, err := serverState()
	if err != nil {
		return err
	}
	unloaded, attacked := median(alone), median(loaded)

	w := b.out
	fmt.Fprintf(w, "\nUnder attack, medians of %d runs alone and %d under attack, alternating (%d attack requests during them, %d refused at the transport):\n\n",
		attackRounds, attackRounds, sent.Load(), refused.Load())
	fmt.Fprintf(w, "| legitimate load | req/s | p50 | p99 | p99.9 | non-2xx | socket errors |\n|---|---|---|---|---|---|---|\n")
	for _, r := range []struct {
		name string
		r    result
	}{{"alone", unloaded}, {"under attack", attacked}} {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %d | %d |\n", r.name, r.r.rps, ms(r.r.p50), ms(r.r.p99), ms(r.r.p999), r.r.non2xx, r.r.errs)
	}
	fmt.Fprintf(w, "\nThe attackers used up to %.2f of a core; the balidx server %s µs of CPU per legitimate request under attack (the attack's included), %s alone.\n",
		attackCores, us(attacked.serverCPU), us(unloaded.serverCPU))
	fmt.Fprintf(w, "RSS of the balidx server %.0f MB before the attacks, %.0f MB after; at most %.0f goroutines under attack\n", rssBefore, rss, goroutines)
	logKinds := make([]string, 0, 4)
	for _, kind := range []string{"full", "folded", "summary", "dropped"} {
		n, err := server.metric(ctx, `balidx_access_log_lines_total{kind="`+kind+`"}`)
		if err != nil {
			return err
		}
		logKinds = append(logKinds, fmt.Sprintf("%s %.0f", kind, n))
	}
	logPerMinute := float64(logBytes) / attackTime.Minutes() / 1e6
	fmt.Fprintf(w, "access log: %.2f MB a minute while under attack (%d bytes in %s, the legitimate load's lines included); lines since the start: %s\n",
		logPerMinute, logBytes, attackTime.Round(time.Millisecond), strings.Join(logKinds, ", "))
	var lines []string
	statuses.Range(func(k, v any) bool {
		lines = append(lines, fmt.Sprintf("%s: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(lines)
	fmt.Fprintf(w, "attack answers: %s\n", strings.Join(lines, ", "))

	s.add("legitimate throughput under attack ÷ alone", attacked.rps/unloaded.rps, ">=", 0.8)
	s.add("legitimate p99 under attack ÷ alone", float64(attacked.p99)/float64(unloaded.p99), "", 0)
	s.add("legitimate errors and non-2xx under attack", float64(attacked.non2xx+attacked.errs), "<=", 0)
	s.add("snapshot reads for unknown addresses during the attack", readsAfter-readsBefore, "<=", 0)
	// The log's worst case, whatever the load: 1,000 full lines a second
	// and 4,096 + ~40 summaries every 10 s, ~330 bytes each (README).
	s.add("access log written under attack, MB a minute (worst case by design: 28)", logPerMinute, "<=", 28)
	// What traffic can make grow is capped: the replay cache (2Mi pairs,
	// ~96 MB), the per-IP anonymous and failed-authentication tables (100k
	// buckets each, ~21 MB each, measured), 512 requests in flight (8 KiB headers,
	// 16 KiB bodies: ~12 MB) and the cache (64 MB).
	s.add("RSS growth during the attack, MB (bound: replay cache, per-IP tables, in-flight requests, cache)", rss-rssBefore, "<=", 214)
	return nil
}

// pace sends perSecond requests a second with send, in bursts every 10 ms
// (or one at a time, below 100 a second: with a wake-up and a round trip
// per request, the fastest attackers fell far below their pace), and
// records each burst's answers (what was not answered counts as refused)
// until ctx ends. A burst cut off by the end is not recorded.
func pace(ctx context.Context, perSecond int, send func(rng *rand.Rand, n int) ([]int, error), record func(n int, codes []int)) {
	burst := max(1, perSecond/100)
	rng := rand.New(rand.NewPCG(uint64(perSecond), uint64(time.Now().UnixNano())))
	t := time.NewTicker(time.Second * time.Duration(burst) / time.Duration(perSecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		codes, _ := send(rng, burst)
		if ctx.Err() != nil {
			return
		}
		record(burst, codes)
	}
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
	resp, err := readAnswer(bufio.NewReader(conn))
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// keepAlive is an attacker's connection: bursts of raw requests pipelined
// on one keep-alive connection, dialled again after a failure. Attackers
// share the two cores with the server they attack; this keeps what they
// spend per request small, so that what is measured is what the server
// spends.
type keepAlive struct {
	host string
	conn net.Conn
	r    *bufio.Reader
}

// statuses writes reqs at once and returns the statuses of the answers
// read before the first failure, if any.
func (k *keepAlive) statuses(reqs [][]byte) ([]int, error) {
	if k.conn == nil {
		c, err := net.DialTimeout("tcp", k.host, 5*time.Second)
		if err != nil {
			return nil, err
		}
		k.conn, k.r = c, bufio.NewReader(c)
	}
	codes, err := k.roundTrips(reqs)
	if err != nil {
		k.close()
	}
	return codes, err
}

func (k *keepAlive) roundTrips(reqs [][]byte) ([]int, error) {
	if err := k.conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	n := len(reqs)
	if _, err := (*net.Buffers)(&reqs).WriteTo(k.conn); err != nil { // consumes reqs
		return nil, err
	}
	codes := make([]int, 0, n)
	for range n {
		resp, err := readAnswer(k.r)
		if err != nil {
			return codes, err
		}
		codes = append(codes, resp.StatusCode)
		if resp.Close { // the server closes: the rest of the burst is lost
			return codes, errors.New("connection closed by the server")
		}
	}
	return codes, nil
}

func (k *keepAlive) close() {
	if k.conn != nil {
		k.conn.Close()
		k.conn = nil
	}
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readAnswer reads the next answer on r, its body read and dropped, so
// that the one after it can be read.
func readAnswer(r *bufio.Reader) (*http.Response, error) {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}
