package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/internal/testio"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// TestPipeline runs `balidx run` against a simulated chain served over
// WebSocket (new heads pushed), then over HTTP (polled), makes blocks of random traffic (ETH transfers, transfers by
// internal calls, ERC-20 mints, burns and transfers, a fee-on-transfer
// token, a rebasing token, a token whose fees go to a collector no log
// names, a token minting without logs, an interest-bearing token,
// withdrawals), and checks every balance served over HTTP against the
// chain's own answer at the block the answer names — with a rebase in that
// very block — and that the interest-bearing token is withheld. Half-way it stops the
// whole system, makes blocks while it is down, and starts it again on the
// same data directory.
func TestPipeline(t *testing.T) {
	ctx := context.Background()
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 6, Seed: 7, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	dir := t.TempDir()

	b := startBalidx(t, "run", "--rpc", demo.Chain.WSEndpoint(), "--data", dir, "--confirmations", "2")
	steps(t, demo, 27)
	rebaseLast(t, demo, 2)
	st := b.waitCaughtUp(t, demo, 2)
	checkEveryBalance(t, demoView(demo), b.http, st)
	checkCommands(t, b, demo.Accounts[0].Hex(), st)
	// Tokens first seen with every holder named are fully covered; the
	// quiet token, held before its first Transfer log, is not.
	full := fullTokenSet(st)
	if !full[demo.Token] || !full[demo.FeeToken] || full[demo.Odd[devchain.QuietMintToken]] {
		t.Fatalf("full tokens %v: want the plain and the fee token, not the quiet one", st.Coverage.FullTokens)
	}
	checkServedAgainstChain(t, demo, b.http, st, full)
	b.stop(t)

	steps(t, demo, 22) // while nothing indexes
	rebaseLast(t, demo, 2)

	b = startBalidx(t, "run", "--rpc", demo.Chain.HTTPEndpoint(), "--data", dir, "--confirmations", "2")
	defer b.stop(t)
	st = b.waitCaughtUp(t, demo, 2)
	if st.Trusted.Number < 55 {
		t.Fatalf("trusted block %d: want at least 55 blocks indexed", st.Trusted.Number)
	}
	checkEveryBalance(t, demoView(demo), b.http, st)
}

// TestIndexerAndQueryApart runs `balidx indexer` (with the embedded NATS
// server) and `balidx query` (connected to it) as two parts, as on two
// machines, and checks every served balance against the chain.
func TestIndexerAndQueryApart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 4, Seed: 9, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	natsAddr, ixAdmin, indexerStopped := startIndexer(t, ctx, demo)
	defer func() {
		cancel()
		if err := indexerStopped(); err != nil {
			t.Error(err)
		}
	}()
	q := startBalidx(t, "query", "--nats", "nats://"+natsAddr, "--data", t.TempDir(), "--chain-id", "1337")
	defer q.stop(t)
	steps(t, demo, 12)
	st := q.waitCaughtUp(t, demo, 1)
	checkEveryBalance(t, demoView(demo), q.http, st)

	// A second query node starts from the first one's snapshot and catches
	// up from the stream position stored in it.
	file := filepath.Join(t.TempDir(), "export.db")
	var out bytes.Buffer
	if err := run(ctx, []string{"snapshot", "export", "--admin", q.admin, file}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	data2 := t.TempDir()
	if err := run(ctx, []string{"snapshot", "import", "--data", data2, file}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"snapshot", "import", "--data", data2, file}, func(string) string { return "" }, &out, io.Discard); err == nil {
		t.Fatal("import over an existing snapshot succeeded")
	}
	steps(t, demo, 3)
	q2 := startBalidx(t, "query", "--nats", "nats://"+natsAddr, "--data", data2, "--chain-id", "1337")
	st2 := q2.waitCaughtUp(t, demo, 1)
	st = q.waitCaughtUp(t, demo, 1)
	if st2.Trusted != st.Trusted || st2.Snapshot.Digest != st.Snapshot.Digest {
		t.Fatalf("the imported node is at %+v %s, the first at %+v %s", st2.Trusted, st2.Snapshot.Digest, st.Trusted, st.Snapshot.Digest)
	}

	// Rebuilt from the whole stream, the second node's snapshot has the same
	// digest as the live first one at the same block.
	q2.stop(t)
	out.Reset()
	if err := run(ctx, []string{"rebuild", "--data", data2, "--nats", "nats://" + natsAddr}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out.String())
	}
	st = q.waitCaughtUp(t, demo, 1)
	if want := fmt.Sprintf("block %d %s, stream seq", st.Trusted.Number, st.Trusted.Hash); !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "digest "+st.Snapshot.Digest) {
		t.Fatalf("rebuild says %q; the live node is at block %d with digest %s", out.String(), st.Trusted.Number, st.Snapshot.Digest)
	}

	resp, err := http.Get("http://" + ixAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("balidx_indexer_published_block %d", st.Trusted.Number); !strings.Contains(string(body), want) {
		t.Fatalf("indexer metrics lack %q", want)
	}
}

// checkCommands runs `balidx get` (signed) and `balidx status` against b.
func checkCommands(tb testing.TB, b *instance, address string, st query.Status) {
	tb.Helper()
	env := map[string]string{"BALIDX_HTTP": b.http, "BALIDX_CLIENT_ID": "tester", "BALIDX_CLIENT_SECRET": testSecret}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"get", "--json", address}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		tb.Fatal(err)
	}
	var got struct {
		Address string `json:"address"`
		Native  string `json:"native"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Address != address || got.Native == "" {
		tb.Fatalf("balidx get: %q (%v)", out.String(), err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"status"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(out.String(), "digest "+st.Snapshot.Digest) {
		tb.Fatalf("balidx status: %q", out.String())
	}
	env["BALIDX_CLIENT_SECRET"] = strings.Repeat("x", 40)
	err := run(context.Background(), []string{"get", address}, func(k string) string { return env[k] }, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "invalid_signature") {
		tb.Fatalf("balidx get with a wrong secret: %v", err)
	}
}

type instance struct {
	http, admin string
	cancel      func()
	done        chan error
	stderr      *testio.Buffer
}

// startBalidx calls run with the given command and free loopback ports,
// and waits for /healthz. A port found free can be taken again before
// balidx binds it (the embedded NATS server asks the kernel for any free
// port too): a start that fails on a taken address is tried again with
// other ports.
func startBalidx(tb testing.TB, cmd string, args ...string) *instance {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		b := &instance{http: testaddr.Free(tb), admin: testaddr.Free(tb), done: make(chan error, 1), stderr: &testio.Buffer{}}
		full := append([]string{cmd, "--http", b.http, "--admin", b.admin, "--nats-listen", "127.0.0.1:0", "--log-level", "warn"}, args...)
		if cmd != "indexer" && !slices.Contains(args, "--clients") {
			full = append(full, "--clients", testClientsFile(tb))
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel = cancel
		go func() { b.done <- run(ctx, full, func(string) string { return "" }, io.Discard, b.stderr) }()
		err := b.waitHealthy(60 * time.Second)
		if err == nil {
			return b
		}
		cancel()
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		tb.Fatalf("%v\n%s", err, b.stderr)
	}
}

// waitHealthy waits for /healthz, or returns why balidx exited.
func (b *instance) waitHealthy(total time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(total)
	for {
		select {
		case err := <-b.done:
			return fmt.Errorf("balidx exited: %w", err)
		default:
		}
		if resp, err := hc.Get("http://" + b.admin + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no /healthz after %s", total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRunning fails the test at once if balidx has exited.
func (b *instance) checkRunning(tb testing.TB) {
	tb.Helper()
	select {
	case err := <-b.done:
		tb.Fatalf("balidx exited: %v\n%s", err, b.stderr)
	default:
	}
}

// testClientsFile issues one signing client and opens the anonymous tier
// wide: the pipeline tests poll freely; the defences have their own tests.
func testClientsFile(tb testing.TB) string {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), "clients.yaml")
	data := "clients:\n  - {id: tester, secrets: [\"" + testSecret + "\"], rate: 1000, burst: 1000}\nanonymous: {enabled: true, rate: 100000, burst: 100000}\n"
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

const testSecret = "a-test-secret-that-is-long-enough-0123456789"

func (b *instance) stop(tb testing.TB) {
	tb.Helper()
	b.cancel()
	if err := <-b.done; err != nil {
		tb.Fatalf("balidx: %v\n%s", err, b.stderr)
	}
}

func steps(tb testing.TB, demo *devchain.Demo, n int) {
	tb.Helper()
	for range n {
		if _, err := demo.Step(context.Background()); err != nil {
			tb.Fatal(err)
		}
	}
}

// rebaseLast makes a block that rebases the rebasing token (every holder's
// balance changes, no log), then confirmations more: the rebase is in the
// trusted block a check then looks at.
func rebaseLast(tb testing.TB, demo *devchain.Demo, confirmations int) {
	tb.Helper()
	if err := demo.Rebase(context.Background(), 33); err != nil {
		tb.Fatal(err)
	}
	steps(tb, demo, 1+confirmations)
}

// waitCaughtUp waits until the served trusted block is head − confirmations.
func (b *instance) waitCaughtUp(tb testing.TB, demo *devchain.Demo, confirmations uint64) query.Status {
	tb.Helper()
	head, err := demo.Chain.Client.BlockNumber(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	var st query.Status
	poll.Until(tb, 60*time.Second, func() error {
		b.checkRunning(tb)
		if err := getJSON("http://"+b.http+"/v1/status", &st); err != nil {
			return err
		}
		if st.Trusted.Number != head-confirmations {
			return fmt.Errorf("trusted %d, want %d", st.Trusted.Number, head-confirmations)
		}
		return nil
	})
	return st
}

// chainView is how a test asks the chain itself.
type chainView struct {
	eth    *ethclient.Client
	rpc    *rpc.Client
	tokens []common.Address
	// withheld: the tokens that must be withheld, with the reason.
	withheld map[common.Address]balidx.Reason
	// holders: token holders that may have no account in the state (no
	// coin, no nonce), to check besides the accounts the node lists.
	holders []common.Address
}

func demoView(demo *devchain.Demo) chainView {
	return chainView{eth: demo.Chain.Client, rpc: demo.Chain.RPC, tokens: demo.Tokens(),
		withheld: map[common.Address]balidx.Reason{demo.Odd[devchain.InterestToken]: balidx.TimeDependent},
		holders:  demo.Holders()}
}

// checkEveryBalance lists every account of the chain at the trusted block
// (the node's own debug_accountRange) and compares what balidx serves for
// each with eth_getBalance and balanceOf at the block the answer names;
// the tokens chain.withheld names must be withheld, with their reason, in
// the status and in every answer, never served.
func checkEveryBalance(tb testing.TB, chain chainView, addr string, st query.Status) {
	tb.Helper()
	ctx := context.Background()
	withheld := map[common.Address]balidx.Reason{}
	for _, w := range st.WithheldTokens {
		withheld[common.HexToAddress(w.Contract)] = w.Reason
	}
	if fmt.Sprint(withheld) != fmt.Sprint(chain.withheld) {
		tb.Fatalf("withheld tokens %v, want %v", withheld, chain.withheld)
	}
	trusted := chain.canonicalHash(tb, st.Trusted.Number)
	if trusted.Hex() != st.Trusted.Hash {
		tb.Fatalf("trusted block %d: served hash %s, chain has %s", st.Trusted.Number, st.Trusted.Hash, trusted.Hex())
	}
	accounts := chain.accounts(tb, trusted)
	for _, h := range chain.holders {
		if !slices.Contains(accounts, h) {
			accounts = append(accounts, h)
		}
	}
	accounts = append(accounts, common.HexToAddress("0x00000000000000000000000000000000deadbeef")) // never used
	var checked, nonZeroTokens int
	for lo := 0; lo < len(accounts); lo += query.MaxBatchAddresses {
		batch := accounts[lo:min(lo+query.MaxBatchAddresses, len(accounts))]
		var req struct {
			Addresses []string `json:"addresses"`
		}
		for _, a := range batch {
			req.Addresses = append(req.Addresses, a.Hex())
		}
		var ans batchAnswer
		if err := postJSON("http://"+addr+"/v1/balances", req, &ans); err != nil {
			tb.Fatal(err)
		}
		if ans.Block.Number < st.Trusted.Number || chain.canonicalHash(tb, ans.Block.Number).Hex() != ans.Block.Hash {
			tb.Fatalf("batch answered at block %d %s: not canonical, or older than the status", ans.Block.Number, ans.Block.Hash)
		}
		listed := map[common.Address]balidx.Reason{}
		for _, w := range ans.Withheld {
			listed[common.HexToAddress(w.Contract)] = w.Reason
		}
		if fmt.Sprint(listed) != fmt.Sprint(withheld) {
			tb.Errorf("batch at block %d lists withheld %v, the status %v", ans.Block.Number, listed, withheld)
		}
		at := new(big.Int).SetUint64(ans.Block.Number)
		for i, a := range batch {
			got := ans.Balances[i]
			if got.Error != nil {
				tb.Fatalf("%s: error %+v", a.Hex(), got.Error)
			}
			if got.Address != a.Hex() {
				tb.Fatalf("entry %d: got address %s, want %s", i, got.Address, a.Hex())
			}
			want, err := chain.eth.BalanceAt(ctx, a, at)
			if err != nil {
				tb.Fatal(err)
			}
			if got.Native != want.String() {
				tb.Errorf("%s native at block %d: served %s, chain %s", a.Hex(), at, got.Native, want)
			}
			served := map[common.Address]string{}
			for _, t := range got.Tokens {
				served[common.HexToAddress(t.Contract)] = t.Amount
			}
			for _, tok := range chain.tokens {
				if withheld[tok] != "" {
					if amount, listed := served[tok]; listed {
						tb.Errorf("%s: withheld token %s served with amount %s", a.Hex(), tok.Hex(), amount)
					}
					continue
				}
				want := chain.balanceOf(tb, tok, a, at)
				have, listed := served[tok]
				if !listed {
					have = "0"
				}
				if have != want.String() {
					tb.Errorf("%s token %s at block %d: served %s, chain %s", a.Hex(), tok.Hex(), at, have, want)
				}
				if want.Sign() > 0 {
					nonZeroTokens++
				}
			}
			checked++
		}
	}
	if checked < 10 || (len(chain.tokens) > 0 && nonZeroTokens < 5) {
		tb.Fatalf("checked %d accounts and %d token balances: too few to mean anything", checked, nonZeroTokens)
	}
	tb.Logf("block %d: %d accounts and %d non-zero token balances equal the chain", st.Trusted.Number, checked, nonZeroTokens)
}

func (c chainView) canonicalHash(tb testing.TB, n uint64) common.Hash {
	tb.Helper()
	h, err := c.eth.HeaderByNumber(context.Background(), new(big.Int).SetUint64(n))
	if err != nil {
		tb.Fatal(err)
	}
	return h.Hash()
}

func (c chainView) balanceOf(tb testing.TB, token, holder common.Address, at *big.Int) *big.Int {
	tb.Helper()
	out, err := c.eth.CallContract(context.Background(), ethereum.CallMsg{To: &token, Data: devchain.TokenCall("balanceOf", holder)}, at)
	if err != nil {
		tb.Fatal(err)
	}
	return new(big.Int).SetBytes(out)
}

// accounts lists every account of the state at block hash.
func (c chainView) accounts(tb testing.TB, hash common.Hash) []common.Address {
	tb.Helper()
	var out []common.Address
	start := hexutil.Bytes{}
	for {
		var dump struct {
			Accounts map[string]json.RawMessage `json:"accounts"`
			Next     hexutil.Bytes              `json:"next"`
		}
		err := c.rpc.Call(&dump, "debug_accountRange", rpc.BlockNumberOrHashWithHash(hash, false), start, 256, true, true, false)
		if err != nil {
			tb.Fatal(err)
		}
		for k := range dump.Accounts {
			if !common.IsHexAddress(k) {
				tb.Fatalf("the node lists %s without its address", k)
			}
			out = append(out, common.HexToAddress(k))
		}
		if len(dump.Next) == 0 {
			return out
		}
		start = dump.Next
	}
}

type batchAnswer struct {
	ChainID uint64 `json:"chain_id"`
	Block   struct {
		Number uint64 `json:"number"`
		Hash   string `json:"hash"`
	} `json:"block"`
	Balances []struct {
		Address string `json:"address"`
		Native  string `json:"native"`
		Tokens  []struct {
			Contract string `json:"contract"`
			Amount   string `json:"amount"`
		} `json:"tokens"`
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	} `json:"balances"`
	Withheld []struct {
		Contract string        `json:"contract"`
		Reason   balidx.Reason `json:"reason"`
	} `json:"withheld"`
}

func getJSON(url string, into any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, into)
}

func postJSON(url string, body, into any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	return decodeAnswer(resp, into)
}

func decodeAnswer(resp *http.Response, into any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, into)
}

// The NATS server goes away and comes back (same store, same port): the
// indexer's publishing and the applier resume without loss or duplication.
func TestNATSOutage(t *testing.T) {
	ctx := context.Background()
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 4, Seed: 13, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	natsDir := t.TempDir()
	natsAddr := testaddr.Free(t)
	startNATS := func() *events.Embedded {
		srv, err := events.StartEmbedded(events.EmbeddedConfig{StoreDir: natsDir, Listen: natsAddr})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := startNATS()
	url := srv.URL()
	b := startBalidx(t, "run", "--rpc", demo.Chain.WSEndpoint(), "--nats", url, "--data", t.TempDir(), "--confirmations", "1")
	defer b.stop(t)
	steps(t, demo, 5)
	b.waitCaughtUp(t, demo, 1)

	srv.Close()
	steps(t, demo, 5) // blocks made while NATS is down
	srv = startNATS()
	defer srv.Close()
	steps(t, demo, 3)
	st := b.waitCaughtUp(t, demo, 1)
	checkEveryBalance(t, demoView(demo), b.http, st)
}

// startIndexer runs `balidx indexer` against demo until ctx ends, its
// embedded NATS server on a free port (natsAddr), its admin listener on
// another; stopped waits for it to end and returns its error, with its log.
func startIndexer(t *testing.T, ctx context.Context, demo *devchain.Demo) (natsAddr, admin string, stopped func() error) {
	t.Helper()
	natsAddr, admin = testaddr.Free(t), testaddr.Free(t)
	done := make(chan error, 1)
	logs := &testio.Buffer{}
	go func() {
		done <- run(ctx, []string{"indexer", "--rpc", demo.Chain.WSEndpoint(), "--data", t.TempDir(),
			"--nats-listen", natsAddr, "--admin", admin, "--confirmations", "1", "--log-level", "warn"}, func(string) string { return "" }, io.Discard, logs)
	}()
	poll.Until(t, 30*time.Second, func() error {
		c, err := net.Dial("tcp", natsAddr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return natsAddr, admin, func() error {
		if err := <-done; err != nil {
			return fmt.Errorf("indexer: %w\n%s", err, logs)
		}
		return nil
	}
}
