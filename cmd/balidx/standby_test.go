package main

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/events/eventstest"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/internal/testio"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// Two `balidx indexer` processes follow a real geth --dev through a
// 3-node JetStream cluster of real nats-server processes. One publishes;
// SIGKILLed, the other takes over within its lease; SIGSTOPped past its
// lease while the first, started again, takes over, it stands down once
// continued instead of publishing. At the end the stream holds every block
// once, in order, each the chain's.
func TestStandbyIndexerTakesOver(t *testing.T) {
	gethBin := gethBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := startDeployment(t, ctx, gethBin)
	cluster, bin, ws, eth, nl, board, chainID := d.cluster, d.bin, d.ws, d.eth, d.nl, d.board, d.chainID

	const ttl = 2 * time.Second
	type proc struct {
		name, admin string
		cmd         *exec.Cmd
		logs        *testio.Buffer
	}
	start := func(name string) *proc {
		p := &proc{name: name, admin: testaddr.Free(t)}
		p.cmd, p.logs = startProcess(t, bin, "indexer", "--rpc", ws, "--nats", cluster.URLs(), "--replicas", "3",
			"--data", filepath.Join(t.TempDir(), name), "--admin", p.admin, "--confirmations", "1",
			"--indexer-name", name, "--lease-ttl", ttl.String(), "--log-level", "info")
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		return p
	}
	active := func() (string, time.Time) {
		s, err := board.Get(ctx, chainID.Uint64())
		if err != nil || s == nil {
			return "", time.Time{}
		}
		return s.ActiveIndexer, s.ActiveSince
	}
	lastBlock := func() uint64 {
		d, _, err := nl.Last(ctx, chainID.Uint64())
		if err != nil || d == nil {
			return 0
		}
		return d.Number
	}
	waitActive := func(want string, after time.Time) time.Time {
		var since time.Time
		poll.Until(t, time.Minute, func() error {
			name, s := active()
			if name != want || !s.After(after) {
				return fmt.Errorf("active indexer %q since %s, want %s", name, s, want)
			}
			since = s
			return nil
		})
		return since
	}
	waitBlocksAfter := func(n uint64) {
		poll.Until(t, time.Minute, func() error {
			if b := lastBlock(); b < n+3 {
				return fmt.Errorf("stream at block %d, want past %d", b, n+2)
			}
			return nil
		})
	}

	a := start("indexer-a")
	waitActive("indexer-a", time.Time{})
	b := start("indexer-b")
	waitBlocksAfter(lastBlock())
	if name, _ := active(); name != "indexer-a" {
		t.Fatalf("active indexer %q with a standby started: want indexer-a", name)
	}

	// SIGKILL the active: the standby takes over within its lease.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	since := waitActive("indexer-b", killed.Add(-time.Second))
	took := since.Sub(killed)
	t.Logf("takeover after SIGKILL: %s (lease TTL %s)", took.Round(time.Millisecond), ttl)
	if took > ttl+ttl/4+ttl/3+time.Second {
		t.Fatalf("takeover took %s, bound %s", took, ttl+ttl/4+ttl/3)
	}
	waitBlocksAfter(lastBlock())

	// SIGSTOP the active past its lease; the first, started again, takes
	// over; continued, the paused one must stand down, not publish.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	a = start("indexer-a")
	waitActive("indexer-a", time.Now().Add(-time.Second))
	waitBlocksAfter(lastBlock())
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, func() error {
		if !strings.Contains(b.logs.String(), "standing down") {
			return fmt.Errorf("indexer-b has not stood down: %s", tail(b.logs.String()))
		}
		return nil
	})
	t.Logf("indexer-b stood down: %s", firstLine(b.logs.String(), "standing down"))
	waitBlocksAfter(lastBlock())
	if name, _ := active(); name != "indexer-a" {
		t.Fatalf("active indexer %q after b stood down", name)
	}
	if b.cmd.ProcessState != nil {
		t.Fatalf("indexer-b exited: %s", tail(b.logs.String()))
	}
	if m := metricValue(t, b.admin, "balidx_indexer_stand_downs_total"); m < 1 {
		t.Fatalf("indexer-b's stand-downs: %v", m)
	}

	deltas := checkStreamIsChain(t, ctx, nl, eth, chainID.Uint64())
	t.Logf("%d blocks published by two indexers, each once", len(deltas))
}

// deployment is what the multi-process tests share: a 3-node NATS
// cluster, this command built, a geth --dev, the log (R3) and the status
// board on the cluster, and the chain's id.
type deployment struct {
	cluster *eventstest.Cluster
	bin, ws string
	rc      *rpc.Client
	eth     *ethclient.Client
	dev     common.Address
	nl      *events.Log
	board   *events.StatusBoard
	chainID *big.Int
}

func startDeployment(t *testing.T, ctx context.Context, gethBin string) *deployment {
	t.Helper()
	d := &deployment{cluster: eventstest.StartCluster(t), bin: buildBalidx(t), ws: startGeth(t, gethBin, "eth,net,web3,debug")}
	d.rc, d.eth, d.dev = dialGeth(t, d.ws)
	var err error
	if d.chainID, err = d.eth.ChainID(ctx); err != nil {
		t.Fatal(err)
	}
	if d.nl, err = events.Open(ctx, events.Config{URL: d.cluster.URLs(), Replicas: 3, Name: t.Name()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.nl.Close)
	if d.board, err = d.nl.StatusBoard(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// startProcess starts bin with args, its output in logs; it dies with the
// test process, however that ends.
func startProcess(tb testing.TB, bin string, args ...string) (*exec.Cmd, *testio.Buffer) {
	tb.Helper()
	logs := &testio.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd, logs
}

// checkStreamIsChain checks that the stream holds every block of chainID
// once, in order from block 0, each with the chain's hash, and returns
// them.
func checkStreamIsChain(tb testing.TB, ctx context.Context, nl *events.Log, eth *ethclient.Client, chainID uint64) []*events.BlockDelta {
	tb.Helper()
	deltas := eventstest.Deltas(tb, nl, chainID)
	for i, d := range deltas {
		if d.Number != uint64(i) {
			tb.Fatalf("stream message %d is block %d: a gap or a duplicate", i, d.Number)
		}
		h, err := eth.HeaderByNumber(ctx, new(big.Int).SetUint64(d.Number))
		if err != nil {
			tb.Fatal(err)
		}
		if h.Hash() != d.Hash {
			tb.Fatalf("block %d: published %s, the chain has %s", d.Number, d.Hash, h.Hash())
		}
	}
	return deltas
}

// buildBalidx builds this command into the test's directory.
func buildBalidx(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("BALIDX_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(tb.TempDir(), "balidx")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// metricValue reads an unlabelled metric from an admin listener.
func metricValue(tb testing.TB, admin, name string) float64 {
	tb.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	tb.Fatalf("metric %s not found", name)
	return 0
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func firstLine(s, containing string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, containing) {
			return l
		}
	}
	return ""
}
