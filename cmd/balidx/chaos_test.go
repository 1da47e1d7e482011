package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/balidx/balidx/events/eventstest"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/internal/testio"
	"github.com/balidx/balidx/query/client"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// The whole deployment on one machine, as separate processes: three
// nats-server nodes (R3), geth --dev making a block a second, two indexers
// and three query replicas, with a signed client load through the Go
// client over the three. Then, in random order, each fault BALIDX_CHAOS_ROUNDS
// times (make test: once; make chaos: more): SIGKILL the stream's leader,
// the active indexer, a query replica (the first time with an empty data
// directory, so that it starts from the object store), and SIGSTOP the
// active indexer past its lease. At the end the stream holds every block
// once, in order, each the chain's; every replica has the same digest;
// every balance asked equals the chain's at the answer's block; the client
// saw no failure after its retries.
func TestChaos(t *testing.T) {
	gethBin := os.Getenv("BALIDX_GETH")
	if gethBin == "" || os.Getenv(eventstest.NATSServerEnv) == "" {
		t.Skip("BALIDX_GETH and BALIDX_NATS_SERVER are not set: make test builds them")
	}
	rounds := 1
	if n := os.Getenv("BALIDX_CHAOS_ROUNDS"); n != "" {
		fmt.Sscan(n, &rounds)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	d := startDeployment(t, ctx, gethBin)
	cluster, bin, ws, rc, eth, dev, nl, board, chainID := d.cluster, d.bin, d.ws, d.rc, d.eth, d.dev, d.nl, d.board, d.chainID
	const ttl = 2 * time.Second
	clients := testClientsFile(t)

	type proc struct {
		name, http, admin, data string
		args                    func() []string
		cmd                     *exec.Cmd
		logs                    *testio.Buffer
	}
	start := func(p *proc) {
		p.cmd, p.logs = startProcess(t, bin, p.args()...)
	}
	kill := func(p *proc) {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	var indexers []*proc
	for i := range 2 {
		p := &proc{name: fmt.Sprintf("indexer-%d", i), admin: testaddr.Free(t), data: t.TempDir()}
		p.args = func() []string {
			return []string{"indexer", "--rpc", ws, "--nats", cluster.URLs(), "--replicas", "3", "--data", p.data, "--admin", p.admin,
				"--confirmations", "1", "--indexer-name", p.name, "--lease-ttl", ttl.String(), "--log-level", "info"}
		}
		start(p)
		indexers = append(indexers, p)
	}
	var replicas []*proc
	for i := range 3 {
		p := &proc{name: fmt.Sprintf("query-%d", i), http: testaddr.Free(t), admin: testaddr.Free(t), data: t.TempDir()}
		p.args = func() []string {
			args := []string{"query", "--nats", cluster.URLs(), "--replicas", "3", "--chain-id", chainID.String(), "--data", p.data,
				"--http", p.http, "--admin", p.admin, "--clients", clients, "--replica-name", p.name, "--log-level", "warn"}
			if p.name == "query-0" {
				args = append(args, "--snapshot-every", "5")
			}
			return args
		}
		start(p)
		replicas = append(replicas, p)
	}
	defer func() {
		for _, p := range slices.Concat(indexers, replicas) {
			kill(p)
		}
	}()
	lastBlock := func() uint64 {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		d, _, err := nl.Last(ctx, chainID.Uint64())
		if err != nil || d == nil {
			return 0
		}
		return d.Number
	}
	active := func() string {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := board.Get(ctx, chainID.Uint64())
		if err != nil || s == nil {
			return ""
		}
		return s.ActiveIndexer
	}
	// A start that never reaches block 3 says why: the stream's block and
	// the processes' logs (less the replicas' access log).
	started := false
	defer func() {
		if !started && t.Failed() {
			t.Logf("stream at block %d", lastBlock())
			for _, p := range slices.Concat(indexers, replicas) {
				t.Logf("%s's log:\n%s", p.name, tail(withoutAccessLog(p.logs.String())))
			}
		}
	}()
	poll.Until(t, 2*time.Minute, func() error {
		for _, p := range replicas {
			var st struct{ Trusted struct{ Number uint64 } }
			if err := getJSON("http://"+p.http+"/v1/status", &st); err != nil || st.Trusted.Number < 3 {
				return fmt.Errorf("%s at block %d (status: %v)", p.name, st.Trusted.Number, err)
			}
		}
		return nil
	})
	started = true

	// The chain moves: value to 40 accounts from geth's dev account.
	holders := []common.Address{dev}
	for i := range 40 {
		holders = append(holders, common.BigToAddress(big.NewInt(int64(i)+1<<50)))
	}
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		rng := rand.New(rand.NewPCG(3, 3))
		for ctx.Err() == nil {
			tx := map[string]any{"from": dev, "to": holders[1+rng.IntN(40)], "value": (*hexutil.Big)(big.NewInt(int64(1 + rng.IntN(1e9))))}
			_ = rc.CallContext(ctx, nil, "eth_sendTransaction", tx)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// The client load: signed, over the three replicas.
	var bases []string
	for _, p := range replicas {
		bases = append(bases, "http://"+p.http)
	}
	cl, err := client.New(client.Config{BaseURLs: bases, ClientID: "tester", Secret: testSecret, MaxAttempts: 10, MaxWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var failures []error
	var answers []client.Balance
	loadCtx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		rng := rand.New(rand.NewPCG(5, 5))
		for loadCtx.Err() == nil {
			begin := time.Now()
			b, err := cl.Balance(loadCtx, holders[rng.IntN(len(holders))].Hex())
			mu.Lock()
			switch {
			case err == nil:
				latencies = append(latencies, time.Since(begin))
				if len(answers) < 2000 {
					answers = append(answers, *b)
				}
			case loadCtx.Err() == nil:
				failures = append(failures, err)
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	waitAdvance := func() {
		from := lastBlock()
		poll.Until(t, 2*time.Minute, func() error {
			if n := lastBlock(); n < from+3 {
				return fmt.Errorf("stream at block %d, want past %d", n, from+2)
			}
			return nil
		})
	}
	byName := func(name string) *proc {
		for _, p := range indexers {
			if p.name == name {
				return p
			}
		}
		t.Fatalf("no indexer %q", name)
		return nil
	}
	var takeovers, stalls []time.Duration
	faults := []string{}
	for range rounds {
		faults = append(faults, "nats-leader", "indexer", "replica", "pause")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })
	var emptied *proc // the replica restarted with an empty data directory
	for _, fault := range faults {
		waitAdvance()
		switch fault {
		case "nats-leader":
			ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
			info, err := nl.Stream().Info(ictx)
			icancel()
			if err != nil {
				t.Fatal(err)
			}
			i := cluster.Index(info.Cluster.Leader)
			before, killedAt := lastBlock(), time.Now()
			cluster.Kill(t, i)
			poll.Until(t, 2*time.Minute, func() error {
				if lastBlock() <= before {
					return errors.New("no block published since the leader was killed")
				}
				return nil
			})
			stalls = append(stalls, time.Since(killedAt))
			cluster.Start(t, i)
			cluster.WaitReady(t, i)
		case "indexer":
			was := active()
			p := byName(was)
			killedAt := time.Now()
			kill(p)
			poll.Until(t, time.Minute, func() error {
				if now := active(); now == was || now == "" {
					var logs string
					for _, ix := range indexers {
						logs += ix.name + ":\n" + tail(ix.logs.String()) + "\n"
					}
					return fmt.Errorf("active indexer still %q\n%s", now, logs)
				}
				return nil
			})
			takeovers = append(takeovers, time.Since(killedAt))
			start(p)
		case "replica":
			p := replicas[1+rng.IntN(2)] // not query-0, which publishes the snapshots
			kill(p)
			if emptied == nil {
				emptied = p
				os.RemoveAll(p.data)
				p.data = t.TempDir() // starts from the object store's newest snapshot
			}
			start(p)
		case "pause":
			p := byName(active())
			if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * ttl)
			if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("fault %s done; stream at block %d, active indexer %s", fault, lastBlock(), active())
	}
	waitAdvance()
	stopLoad()
	<-loaded

	// Every replica reaches the same block with the same digest.
	var digest string
	var at uint64
	from := lastBlock()
	poll.Until(t, 2*time.Minute, func() error {
		numbers, digests := map[uint64]bool{}, map[string]bool{}
		for _, p := range replicas {
			var st struct {
				Trusted  struct{ Number uint64 }
				Snapshot struct{ Digest string }
			}
			if err := getJSON("http://"+p.http+"/v1/status", &st); err != nil {
				return fmt.Errorf("%s: %v\n%s", p.name, err, tail(p.logs.String()))
			}
			if st.Trusted.Number < from {
				return fmt.Errorf("%s at block %d, the stream at %d", p.name, st.Trusted.Number, from)
			}
			numbers[st.Trusted.Number], digests[st.Snapshot.Digest] = true, true
			digest, at = st.Snapshot.Digest, st.Trusted.Number
		}
		if len(numbers) != 1 || len(digests) != 1 {
			return fmt.Errorf("the replicas are at blocks %v with digests %v", numbers, digests)
		}
		return nil
	})

	// The replica restarted empty started from a snapshot, not block 0.
	if emptied != nil {
		if applied := metricValue(t, emptied.admin, "balidx_applier_blocks_total"); applied >= float64(at) {
			t.Fatalf("%s, restarted empty, applied %v blocks to reach %d: it did not start from the object store", emptied.name, applied, at)
		} else {
			t.Logf("%s, restarted empty, started from a snapshot: %v blocks applied to reach %d", emptied.name, applied, at)
		}
	}

	deltas := checkStreamIsChain(t, ctx, nl, eth, chainID.Uint64())
	// Every answer the client got equals the chain at its block.
	for _, b := range answers {
		want, err := eth.BalanceAt(ctx, common.HexToAddress(b.Address), new(big.Int).SetUint64(b.Block.Number))
		if err != nil {
			t.Fatal(err)
		}
		if want.String() != b.Native {
			t.Fatalf("%s at block %d: served %s, the chain has %s", b.Address, b.Block.Number, b.Native, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed after the client's retries; the first: %v", len(failures), failures[0])
	}
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[min(len(latencies)-1, int(q*float64(len(latencies))))] }
	t.Logf("%d faults over %d blocks; every replica at block %d, digest %s", len(faults), len(deltas), at, digest)
	t.Logf("client: %d answers, 0 failures, p50 %s, p99 %s, max %s; %d answers checked against the chain",
		len(latencies), p(0.5), p(0.99), latencies[len(latencies)-1], len(answers))
	t.Logf("indexer takeover after SIGKILL: %s (lease TTL %s); publish stall after killing the stream leader: %s",
		durations(takeovers), ttl, durations(stalls))
}

// withoutAccessLog drops the access log's lines from a query process's
// output.
func withoutAccessLog(out string) string {
	var kept []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, `"msg":"request"`) {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

// durations prints p50 and max of ds.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	return "p50 " + ds[len(ds)/2].Round(time.Millisecond).String() + ", max " + ds[len(ds)-1].Round(time.Millisecond).String() + " (" + strconv.Itoa(len(ds)) + ")"
}
