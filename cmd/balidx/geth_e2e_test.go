package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/internal/testio"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// gethBinary is the geth that `make test` and `make e2e` build and name in
// BALIDX_GETH; without it the test is skipped.
func gethBinary(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv("BALIDX_GETH")
	if bin == "" {
		tb.Skip("BALIDX_GETH is not set: `make test` and `make e2e` build geth and run this test")
	}
	return bin
}

// TestGethE2E runs `balidx run` against a real `geth --dev` (the binary in
// BALIDX_GETH, built by `make e2e` / `make test` from the version go.mod
// pins), started and stopped by the test on loopback, and checks every
// served balance against geth at the answer's block.
func TestGethE2E(t *testing.T) {
	gethBin := gethBinary(t)
	ws := startGeth(t, gethBin, "eth,net,web3,debug")
	rc, eth, dev := dialGeth(t, ws)
	sender := newDevSender(t, rc, eth, dev)
	send := func(to *common.Address, value *big.Int, data []byte) common.Hash {
		return sender.call(t, to, value, data)
	}
	mined := func(h common.Hash) *types.Receipt { return sender.mined(t, h) }
	token := mined(send(nil, nil, devchain.TokenDeployment("E2E Token", 0))).ContractAddress
	feeToken := mined(send(nil, nil, devchain.TokenDeployment("E2E Fee Token", 100))).ContractAddress
	splitter := mined(send(nil, nil, devchain.SplitterDeployment())).ContractAddress
	// The odd tokens: balances that move without a log naming the holder.
	collector := common.HexToAddress("0x00000000000000000000000000000000C011EC70")
	odd := map[string]common.Address{}
	for _, name := range []string{devchain.RebaseToken, devchain.CollectorToken, devchain.InterestToken, devchain.QuietMintToken} {
		odd[name] = mined(send(nil, nil, devchain.Deployment(name, big.NewInt(250), collector))).ContractAddress
	}
	rebase, collecting, interest, quiet := odd[devchain.RebaseToken], odd[devchain.CollectorToken], odd[devchain.InterestToken], odd[devchain.QuietMintToken]
	mined(send(&quiet, nil, devchain.TokenCall("mint", dev, big.NewInt(1e18)))) // no log: the token is not seen yet

	b := startBalidx(t, "run", "--rpc", ws, "--data", t.TempDir(), "--confirmations", "2")
	defer b.stop(t)

	rng := rand.New(rand.NewPCG(3, 4))
	holders := []common.Address{dev, collector}
	var last common.Hash
	for i := range 12 {
		to := common.BigToAddress(big.NewInt(int64(rng.Uint32()) + 1<<40))
		other := common.BigToAddress(big.NewInt(int64(rng.Uint32()) + 1<<41))
		holders = append(holders, to, other)
		amount := big.NewInt(int64(1 + rng.IntN(1_000_000_000)))
		send(&to, amount, nil)
		send(&splitter, amount, devchain.SplitCall(to, other))
		send(&token, nil, devchain.TokenCall("mint", to, amount))
		send(&feeToken, nil, devchain.TokenCall("mint", dev, amount))
		send(&feeToken, nil, devchain.TokenCall("transfer", other, big.NewInt(int64(i+1)*1000)))
		send(&rebase, nil, devchain.TokenCall("mint", to, amount))
		send(&collecting, nil, devchain.TokenCall("mint", dev, amount))
		send(&collecting, nil, devchain.TokenCall("transfer", other, big.NewInt(int64(i+1)*1000)))
		send(&interest, nil, devchain.TokenCall("mint", to, amount))
		if i == 0 {
			send(&quiet, nil, devchain.TokenCall("transfer", other, big.NewInt(1000))) // the quiet token and dev seen
		} else {
			send(&quiet, nil, devchain.TokenCall("mint", to, amount))
		}
		last = send(&rebase, nil, devchain.RebaseCall(int64(rng.IntN(300))-50))
	}
	lastBlock := mined(last).BlockNumber.Uint64()
	var st query.Status
	poll.Until(t, 60*time.Second, func() error {
		b.checkRunning(t)
		if err := getJSON("http://"+b.http+"/v1/status", &st); err != nil {
			return err
		}
		if st.Trusted.Number < lastBlock {
			return fmt.Errorf("trusted %d, waiting for %d", st.Trusted.Number, lastBlock)
		}
		return nil
	})
	if !st.Coverage.Full {
		t.Fatalf("coverage %+v: want full (genesis listed by the node)", st.Coverage)
	}
	checkEveryBalance(t, chainView{eth: eth, rpc: rc, tokens: []common.Address{token, feeToken, rebase, collecting, interest, quiet},
		withheld: map[common.Address]balidx.Reason{interest: balidx.TimeDependent}, holders: holders}, b.http, st)
}

// dialGeth connects to geth at ws (closed when the test ends) and returns
// its funded dev account.
func dialGeth(tb testing.TB, ws string) (*rpc.Client, *ethclient.Client, common.Address) {
	tb.Helper()
	rc, err := rpc.DialContext(context.Background(), ws)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rc.Close)
	return rc, ethclient.NewClient(rc), devAccount(tb, rc)
}

// devAccount is geth --dev's unlocked, funded account.
func devAccount(tb testing.TB, rc *rpc.Client) common.Address {
	tb.Helper()
	var accounts []common.Address
	if err := rc.Call(&accounts, "eth_accounts"); err != nil || len(accounts) == 0 {
		tb.Fatalf("dev account: %v %v", accounts, err)
	}
	return accounts[0]
}

// devSender sends transactions from geth --dev's funded account and numbers
// them itself. Left to geth, a transaction's nonce comes from its pool,
// which counts the previous one only once it has promoted it in the
// background: two sends in quick succession could get the same nonce, and
// the second was refused as "replacement transaction underpriced".
type devSender struct {
	rc    *rpc.Client
	from  common.Address
	nonce uint64
	eth   *ethclient.Client
}

func newDevSender(tb testing.TB, rc *rpc.Client, eth *ethclient.Client, from common.Address) *devSender {
	tb.Helper()
	nonce, err := eth.PendingNonceAt(context.Background(), from)
	if err != nil {
		tb.Fatal(err)
	}
	return &devSender{rc: rc, from: from, nonce: nonce, eth: eth}
}

// call sends value and data to to (nil: a contract creation), with gas
// for a contract's work, and returns the transaction's hash.
func (s *devSender) call(tb testing.TB, to *common.Address, value *big.Int, data []byte) common.Hash {
	tb.Helper()
	tx := map[string]any{"gas": hexutil.Uint64(1_000_000)}
	if to != nil {
		tx["to"] = to
	}
	if value != nil {
		tx["value"] = (*hexutil.Big)(value)
	}
	if data != nil {
		tx["data"] = hexutil.Bytes(data)
	}
	return s.send(tb, tx)
}

// mined waits for transaction h's receipt.
func (s *devSender) mined(tb testing.TB, h common.Hash) *types.Receipt {
	tb.Helper()
	var r *types.Receipt
	poll.Until(tb, 30*time.Second, func() error {
		var err error
		r, err = s.eth.TransactionReceipt(context.Background(), h)
		return err
	})
	return r
}

// send fills in tx's sender and nonce, and returns its hash.
func (s *devSender) send(tb testing.TB, tx map[string]any) common.Hash {
	tb.Helper()
	tx["from"], tx["nonce"] = s.from, hexutil.Uint64(s.nonce)
	var h common.Hash
	if err := s.rc.Call(&h, "eth_sendTransaction", tx); err != nil {
		tb.Fatal(err)
	}
	s.nonce++
	return h
}

// A node without the debug API is refused at start, with the flag to add.
func TestGethWithoutDebugAPI(t *testing.T) {
	gethBin := gethBinary(t)
	ws := startGeth(t, gethBin, "eth,net,web3")
	err := run(context.Background(), []string{"indexer", "--rpc", ws, "--data", t.TempDir(), "--nats-listen", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard, io.Discard)
	if !errors.Is(err, indexer.ErrNoDebugAPI) || !strings.Contains(err.Error(), "--ws.api eth,net,web3,debug") {
		t.Fatalf("got %v, want ErrNoDebugAPI naming the flag", err)
	}
}

// startGeth runs geth --dev making a block a second, on loopback only, as an
// archive node (so that balances at any served block can be checked), and
// returns its WebSocket URL. It is stopped when the test ends.
func startGeth(tb testing.TB, bin, apis string) string {
	tb.Helper()
	g := &gethProc{bin: bin, apis: apis, port: freePort(tb), dir: tb.TempDir()}
	g.start(tb)
	tb.Cleanup(func() { g.stop(tb) })
	return g.url()
}

// gethProc is a geth --dev that can be stopped and started again on the
// same data directory and port: a node outage.
type gethProc struct {
	bin, apis, dir string
	port           int
	// onDemand makes a block only when a transaction waits (--dev.period
	// 0), not every second; httpPort, if set, serves HTTP JSON-RPC too.
	onDemand bool
	httpPort int
	// noPreimages runs a full node without --cache.preimages (not an
	// archive): it cannot name the accounts of its state.
	noPreimages bool
	args        []string // more flags
	cmd         *exec.Cmd
	logs        *testio.Buffer
}

func (g *gethProc) url() string { return fmt.Sprintf("ws://127.0.0.1:%d", g.port) }

func (g *gethProc) start(tb testing.TB) {
	tb.Helper()
	period := "1"
	if g.onDemand {
		period = "0"
	}
	args := []string{"--dev", "--dev.period", period,
		"--datadir", g.dir, "--state.scheme", "hash",
		"--ws", "--ws.addr", "127.0.0.1", "--ws.port", fmt.Sprint(g.port), "--ws.api", g.apis,
		"--nodiscover", "--maxpeers", "0", "--ipcdisable", "--authrpc.port", "0", "--verbosity", "2"}
	if g.noPreimages {
		args = append(args, "--gcmode", "full") // an archive records preimages whatever the flag
	} else {
		args = append(args, "--gcmode", "archive", "--cache.preimages")
	}
	if g.httpPort != 0 {
		args = append(args, "--http", "--http.addr", "127.0.0.1", "--http.port", fmt.Sprint(g.httpPort), "--http.api", "eth,net,web3")
	}
	g.cmd = exec.Command(g.bin, append(args, g.args...)...)
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the test, however it ends
	g.logs = &testio.Buffer{}
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	poll.Until(tb, 60*time.Second, func() error {
		c, err := rpc.Dial(g.url())
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
}

func (g *gethProc) stop(tb testing.TB) {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
	if tb.Failed() {
		tb.Logf("geth output:\n%s", g.logs)
	}
	g.cmd = nil
}

// The node goes away and comes back: the query tier keeps answering from
// the last trusted snapshot meanwhile, and the indexer resumes without a gap.
func TestGethOutage(t *testing.T) {
	gethBin := gethBinary(t)
	g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir()}
	g.start(t)
	defer g.stop(t)
	ctx := context.Background()

	b := startBalidx(t, "run", "--rpc", g.url(), "--data", t.TempDir(), "--confirmations", "2")
	defer b.stop(t)
	var before query.Status
	poll.Until(t, 60*time.Second, func() error {
		b.checkRunning(t)
		if err := getJSON("http://"+b.http+"/v1/status", &before); err != nil {
			return err
		}
		if before.Trusted.Number < 3 {
			return fmt.Errorf("trusted %d", before.Trusted.Number)
		}
		return nil
	})

	g.stop(t)
	// The indexer's breaker opens, while the query tier keeps answering.
	poll.Until(t, 90*time.Second, func() error {
		b.checkRunning(t)
		if m := metric(t, b.admin, "balidx_indexer_node_breaker_state"); m != "2" {
			return fmt.Errorf("breaker state %s, want 2 (open)", m)
		}
		return nil
	})
	var during query.Status
	if err := getJSON("http://"+b.http+"/v1/status", &during); err != nil || during.Trusted.Number < before.Trusted.Number {
		t.Fatalf("status while the node is down: %+v, %v", during, err)
	}
	g.start(t)

	rc, err := rpc.DialContext(ctx, g.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	eth := ethclient.NewClient(rc)
	sender := newDevSender(t, rc, eth, devAccount(t, rc))
	var last common.Hash
	for i := range 5 { // new accounts after the outage
		to := common.BigToAddress(big.NewInt(int64(i) + 1<<50))
		last = sender.send(t, map[string]any{"to": to, "value": (*hexutil.Big)(big.NewInt(int64(i+1) * 1e15))})
	}
	var head uint64
	poll.Until(t, 30*time.Second, func() error {
		r, err := eth.TransactionReceipt(ctx, last)
		if err != nil {
			return err
		}
		head = r.BlockNumber.Uint64()
		return nil
	})
	var after query.Status
	poll.Until(t, 90*time.Second, func() error {
		b.checkRunning(t)
		if err := getJSON("http://"+b.http+"/v1/status", &after); err != nil {
			return err
		}
		if after.Trusted.Number < head {
			return fmt.Errorf("trusted %d, waiting for %d", after.Trusted.Number, head)
		}
		return nil
	})
	checkEveryBalance(t, chainView{eth: eth, rpc: rc}, b.http, after)
	if m := metric(t, b.admin, "balidx_indexer_node_breaker_state"); m != "0" {
		t.Fatalf("breaker state %s after recovery, want 0 (closed)", m)
	}
}

// metric reads one unlabelled metric from an admin listener.
func metric(tb testing.TB, admin, name string) string {
	tb.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// freePort is a loopback port free when asked.
func freePort(tb testing.TB) int {
	tb.Helper()
	_, p, _ := net.SplitHostPort(testaddr.Free(tb))
	n, err := strconv.Atoi(p)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
