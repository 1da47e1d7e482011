package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/query/accesslog"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type address = common.Address

// account is one genesis allocation.
type account struct {
	addr    address
	balance uint64
}

// genesisAccounts makes n random accounts, the same ones every run.
func genesisAccounts(n int) []account {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	out := make([]account, n)
	for i := range out {
		for j := range out[i].addr {
			out[i].addr[j] = byte(rng.Uint32())
		}
		out[i].balance = rng.Uint64N(1<<60) + 1
	}
	return out
}

// writeGenesis writes a post-merge genesis allocating accounts, for `geth init`.
func writeGenesis(file string, accounts []account) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, `{"config":{"chainId":31337,"homesteadBlock":0,"eip150Block":0,"eip155Block":0,"eip158Block":0,`+
		`"byzantiumBlock":0,"constantinopleBlock":0,"petersburgBlock":0,"istanbulBlock":0,"berlinBlock":0,"londonBlock":0,`+
		`"mergeNetsplitBlock":0,"shanghaiTime":0,"cancunTime":0,"terminalTotalDifficulty":0,`+
		`"blobSchedule":{"cancun":{"target":3,"max":6,"baseFeeUpdateFraction":3338477}}},`+
		`"difficulty":"0x0","gasLimit":"0x1c9c380","alloc":{`)
	for i, a := range accounts {
		if i > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(w, `"%x":{"balance":"0x%x"}`, a.addr, a.balance)
	}
	fmt.Fprint(w, "}}\n")
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// startBareEcho serves body, a constant, with a bare echo handler on an
// http.Server set as balidx's (timeouts, header limit): the physical limit
// of the framework for an answer of that size. fields, if not nil, are set
// on every answer as well (balidx's own header fields: the limit for an
// answer of that size and shape).
func startBareEcho(ctx context.Context, body []byte, fields http.Header) (string, error) {
	// A list, not the map: balidx assigns its fields one by one, without
	// iterating over a map for each answer.
	type field struct {
		key    string
		values []string // never mutated: net/http copies them when the status is written
	}
	var set []field
	for k, v := range fields {
		set = append(set, field{k, v})
	}
	e := echo.New()
	e.GET("/v1/balances/:address", func(c echo.Context) error {
		if len(set) > 0 {
			h := c.Response().Header()
			for _, f := range set {
				h[f.key] = f.values
			}
		}
		return c.JSONBlob(http.StatusOK, body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := query.NewHTTPServer(e)
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return ln.Addr().String(), nil
}

// startProfiler serves the process's CPU profile at /debug/pprof/profile,
// as balidx's admin listener does, and returns its address.
func startProfiler(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := query.NewHTTPServer(mux)
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return ln.Addr().String(), nil
}

// answer is balidx's answer for a, fetched once without a signature, and
// the header fields balidx set on it (net/http's own, Date and
// Content-Length, and the Content-Type every handler sets, left out): what
// the bare handlers return, so that all send bodies of one size, and one
// of them the same fields.
func answer(ctx context.Context, host string, a address) ([]byte, http.Header, error) {
	var fields http.Header
	body, err := getWith(ctx, &http.Client{Timeout: 10 * time.Second}, fmt.Sprintf("http://%s/v1/balances/%s", host, a.Hex()), &fields)
	for _, k := range []string{"Date", "Content-Length", "Content-Type"} {
		delete(fields, k)
	}
	return body, fields, err
}

// writeAnswer writes the answer's body and its header fields (an HTTP
// header block) for the bare handlers' processes.
func writeAnswer(bodyFile, fieldsFile string, body []byte, fields http.Header) error {
	var b bytes.Buffer
	if err := fields.Write(&b); err != nil {
		return err
	}
	b.WriteString("\r\n")
	return errors.Join(os.WriteFile(bodyFile, body, 0o600), os.WriteFile(fieldsFile, b.Bytes(), 0o600))
}

// get returns the body of a 200 answer to GET url (at most 16 MiB).
func get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	return getWith(ctx, hc, url, nil)
}

// getWith is get that also keeps the answer's header fields in *fields
// (fields nil: not kept).
func getWith(ctx context.Context, hc *http.Client, url string, fields *http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if fields != nil {
		*fields = resp.Header
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("balidx answered %s: %s", resp.Status, body)
	}
	return body, nil
}

// The signing client the load uses, and one far over its quota for the
// attack.
const (
	benchClient  = "bench"
	benchSecret  = "bench-client-secret-0123456789abcdef"
	greedySecret = "greedy-client-secret-0123456789abcdef"
)

// buildStore writes a snapshot file holding the accounts (their native
// balance and a token balance each), for the balidx server processes.
func buildStore(file string, accounts []account) error {
	store, err := storage.Open(storage.Config{Path: file, ChainID: 1})
	if err != nil {
		return err
	}
	token := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	changes := make([]balidx.Change, 0, 2*len(accounts))
	for _, a := range accounts {
		changes = append(changes, balidx.Change{Account: a.addr, Asset: balidx.NativeAsset, Post: *uint256.NewInt(a.balance)})
		changes = append(changes, balidx.Change{Account: a.addr, Asset: token, Post: *uint256.NewInt(7)})
	}
	balidx.SortChanges(changes) // sequential inserts: minutes → seconds for 1M accounts
	if _, err := store.Apply([]balidx.Delta{{ChainID: 1, LastSeq: 1, Block: balidx.Block{Hash: common.Hash{1}, Timestamp: uint64(time.Now().Unix())}, Changes: changes}}); err != nil {
		store.Close()
		return err
	}
	return store.Close()
}

// startBalidx serves the store through the whole query tier with the
// product's defaults (signed requests, quotas, the in-flight cap, the
// replay cache, metrics, the access log with its default rates appended to
// accessLog unless it is "-") and its own Bloom filter and cache of
// cacheBytes. It returns the query and admin addresses, and a channel
// closed once, ctx ended, the server has stopped and written its log out.
func startBalidx(ctx context.Context, store *storage.Store, cacheBytes int64, accessLog string) (host, admin string, served <-chan struct{}, err error) {
	snap, err := query.NewSnapshot(query.SnapshotConfig{Store: store, CacheBytes: cacheBytes, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return "", "", nil, err
	}
	var log *accesslog.Log
	if accessLog != "-" {
		f, err := os.OpenFile(accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return "", "", nil, err
		}
		log = accesslog.New(accesslog.Config{Out: f})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	// The bench client's quota is above what two cores serve (~40k
	// requests/s, ~300k JSON-RPC calls/s in batches: each call spends one),
	// and the replay cache holds its share at that rate (rate × 61 s +
	// burst pairs; they take memory only as nonces come).
	srv, err := query.New(query.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Snapshot: snap, Registry: reg, MaxNonces: 1 << 26,
		AccessLog: log,
		Clients: &query.Clients{
			Clients: []query.Client{
				{ID: benchClient, Secrets: []string{benchSecret}, Rate: 1_000_000, Burst: 1_000_000},
				{ID: "greedy", Secrets: []string{greedySecret}, Rate: 5, Burst: 5},
			},
			Anonymous: query.Anonymous{Enabled: true, Rate: 1_000_000, Burst: 1_000_000},
		}})
	if err != nil {
		return "", "", nil, err
	}
	if err := srv.Listen(); err != nil {
		return "", "", nil, err
	}
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	return srv.Addr(), srv.AdminAddr(), done, nil
}

// startGethDev runs geth --dev: a tiny chain, geth's best case.
func startGethDev(ctx context.Context, bin, dir string) (*proc, error) {
	return startGeth(ctx, bin, "--dev", "--datadir", dir)
}

// startGethWithGenesis initialises geth with a genesis of the accounts and
// serves it (no consensus client: the state is the genesis). The hash
// scheme, not geth's default path: path is ready ~40 s sooner but starts
// cold (6k, then 10k and 13k req/s over three passes, p99 up to 490 ms),
// where hash, having read its whole state to build its snapshot, answers
// at one steady rate from the first pass.
func startGethWithGenesis(ctx context.Context, bin, dir string, accounts []account) (*proc, error) {
	genesis := dir + ".json"
	if err := writeGenesis(genesis, accounts); err != nil {
		return nil, err
	}
	// With the accounts' preimages, and the debug API: the seed's read of
	// the whole state (seed.go) asks this node too.
	if out, err := exec.CommandContext(ctx, bin, "init", "--datadir", dir, "--state.scheme", "hash", "--cache.preimages", genesis).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("geth init: %v: %s", err, tail(out))
	}
	return startGethAPI(ctx, bin, "eth,debug", "--datadir", dir, "--state.scheme", "hash", "--cache.preimages", "--networkid", "31337")
}

func startGeth(ctx context.Context, bin string, args ...string) (*proc, error) {
	return startGethAPI(ctx, bin, "eth", args...)
}

// startGethAPI is startGeth serving the JSON-RPC namespaces apis.
func startGethAPI(ctx context.Context, bin, apis string, args ...string) (*proc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, append(args, "--http", "--http.addr", "127.0.0.1", "--http.port", strconv.Itoa(port),
		"--http.api", apis, "--nodiscover", "--maxpeers", "0", "--ipcdisable", "--port", "0", "--authrpc.port", "0", "--verbosity", "1")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with this process, however it ends
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &proc{host: "127.0.0.1:" + strconv.Itoa(port), pid: cmd.Process.Pid, cmd: cmd}
	if err := g.waitAnswer(ctx); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

// waitAnswer waits for an RPC answer. geth on the 1M genesis then builds
// its state snapshot (~25 s of one core), while balidx's snapshot is
// written and its caches warmed: run waits for every server to go idle
// before the first measurement.
func (g *proc) waitAnswer(ctx context.Context) error {
	url := "http://" + g.host
	deadline := time.Now().Add(5 * time.Minute)
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := hc.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}`))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("geth did not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
