// Command balidx-bench measures the query tier over real HTTP with wrk, in
// one run, against two baselines measured in the same run: a bare echo
// handler returning a balance-sized JSON answer (the physical limit of the
// framework on this machine) and geth answering eth_getBalance on a dev
// chain. It prints one table of medians with ratios (make bench).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
	"github.com/labstack/echo/v4"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "balidx-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	geth         string
	accounts     int
	duration     time.Duration
	runs         int
	conns        int
	profile      string
	plot         string
	accountsFile string
	gethURL      string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("balidx-bench", flag.ContinueOnError)
	fs.StringVar(&cfg.geth, "geth", "bin/geth", "geth binary for the eth_getBalance baseline (empty: skip)")
	fs.IntVar(&cfg.accounts, "accounts", 100_000, "accounts in the balidx snapshot (queried at random)")
	fs.DurationVar(&cfg.duration, "duration", 8*time.Second, "each wrk run")
	fs.IntVar(&cfg.runs, "runs", 3, "runs per target (the median is reported)")
	fs.IntVar(&cfg.conns, "connections", 64, "wrk connections (2 threads)")
	fs.StringVar(&cfg.profile, "cpuprofile", "", "write a CPU profile of the server while wrk asks for known addresses")
	fs.StringVar(&cfg.plot, "plot", "", "also write an SVG of p99 latency against throughput at rising load")
	fs.StringVar(&cfg.accountsFile, "accounts-file", "", "addresses (40 hex digits a line) for the snapshot and the queries, instead of random ones")
	fs.StringVar(&cfg.gethURL, "geth-url", "", "benchmark this running node's eth_getBalance instead of starting geth --dev (e.g. one initialised with a genesis of -accounts-file)")
	writeGen := fs.String("write-genesis", "", "write a genesis of -accounts random accounts to this file (and their addresses to FILE.addresses), then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *writeGen != "" {
		return writeGenesis(*writeGen, *writeGen+".addresses", cfg.accounts)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found (Debian package wrk)")
	}
	dir, err := os.MkdirTemp("", "balidx-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	addrs := randomAddresses(cfg.accounts)
	if cfg.accountsFile != "" {
		if addrs, err = readAddresses(cfg.accountsFile); err != nil {
			return err
		}
	}
	bare, err := startBareEcho(ctx)
	if err != nil {
		return err
	}
	node, snap, err := startBalidx(ctx, dir, addrs)
	if err != nil {
		return err
	}
	targets := []target{
		{name: "bare echo (baseline)", url: "http://" + bare, script: getScript(dir, "bare", addrs)},
		{name: "balidx GET /v1/balances, known addresses", url: "http://" + node, script: getScript(dir, "known", addrs)},
		{name: "balidx GET /v1/balances, unknown addresses", url: "http://" + node, script: getScript(dir, "unknown", randomAddresses(10_000))},
	}
	switch {
	case cfg.gethURL != "":
		targets = append(targets, target{name: "geth eth_getBalance (" + cfg.gethURL + ")", url: cfg.gethURL, script: rpcScript(dir, addrs[:min(len(addrs), 10_000)])})
	case cfg.geth != "":
		gethURL, stop, err := startGeth(cfg.geth, dir)
		if err != nil {
			return err
		}
		defer stop()
		targets = append(targets, target{name: "geth eth_getBalance (tiny dev chain)", url: gethURL, script: rpcScript(dir, addrs[:10_000])})
	}
	for i := range targets {
		if i == 1 && cfg.profile != "" {
			f, err := os.Create(cfg.profile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		for r := 0; r < cfg.runs; r++ {
			res, err := wrk(ctx, targets[i], cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", targets[i].name, err)
			}
			targets[i].results = append(targets[i].results, res)
		}
		if i == 1 && cfg.profile != "" {
			pprof.StopCPUProfile()
		}
	}
	report(out, targets, cfg)
	if err := underAttack(ctx, targets[1], cfg, snap, median(targets[1].results), out); err != nil {
		return err
	}
	if cfg.plot != "" {
		plotCfg := cfg
		plotCfg.duration = 4 * time.Second
		return latencyVsLoad(ctx, targets, plotCfg, cfg.plot, out)
	}
	return nil
}

type target struct {
	name, url, script string
	results           []result
}

type result struct {
	rps          float64
	p50, p99     time.Duration
	non2xx, errs int
}

func randomAddresses(n int) []common.Address {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	out := make([]common.Address, n)
	for i := range out {
		for j := range out[i] {
			out[i][j] = byte(rng.Uint32())
		}
	}
	return out
}

// readAddresses reads one address (40 hex digits, 0x optional) a line.
func readAddresses(file string) ([]common.Address, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []common.Address
	for _, line := range strings.Fields(string(data)) {
		if !common.IsHexAddress(line) {
			return nil, fmt.Errorf("%s: %q is not an address", file, line)
		}
		out = append(out, common.HexToAddress(line))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// startBareEcho serves a constant balance-sized answer with echo.
func startBareEcho(ctx context.Context) (string, error) {
	e := echo.New()
	body := []byte(`{"address":"0x742d35Cc6634C0532925a3b844Bc454e4438f44e","chain_id":1,"block":{"number":19000000,"hash":"0x1d59ff54b1eb26b013ce3cb5fc9dab3705b415a67127a003c3e61eb445bb8df2","timestamp":1700000000},"native":"123450000000000000","tokens":[],"next_cursor":""}`)
	e.GET("/v1/balances/:address", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	return serveHandler(ctx, e)
}

func serveHandler(ctx context.Context, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return ln.Addr().String(), nil
}

// startBalidx builds a snapshot holding addrs (a native balance and a token
// each) and serves it through the whole query tier, anonymous tier open.
func startBalidx(ctx context.Context, dir string, addrs []common.Address) (string, *query.Snapshot, error) {
	store, err := storage.Open(storage.Config{Path: filepath.Join(dir, "snapshot.db"), ChainID: 1})
	if err != nil {
		return "", nil, err
	}
	token := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	changes := make([]events.Change, 0, 2*len(addrs))
	for i, a := range addrs {
		changes = append(changes, events.Change{Account: a, Asset: events.NativeAsset, Post: *uint256.NewInt(uint64(i) + 1)})
		changes = append(changes, events.Change{Account: a, Asset: token, Post: *uint256.NewInt(7)})
	}
	events.SortChanges(changes) // sequential inserts: minutes → seconds for 1M accounts
	res, err := store.Apply([]storage.Block{{ChainID: 1, LastSeq: 1, Block: events.Block{Hash: common.Hash{1}, Timestamp: uint64(time.Now().Unix())}, Changes: changes}})
	if err != nil {
		return "", nil, err
	}
	snap, err := query.NewSnapshot(query.SnapshotConfig{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return "", nil, err
	}
	snap.OnApplied(res)
	srv, err := query.New(query.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Snapshot: snap, MaxInFlight: 4096,
		Clients: &query.Clients{
			Clients:   []query.Client{{ID: "greedy", Secrets: []string{greedySecret}, Rate: 5, Burst: 5}},
			Anonymous: query.Anonymous{Enabled: true, Rate: 1e9, Burst: 1e9},
		}})
	if err != nil {
		return "", nil, err
	}
	if err := srv.Listen(); err != nil {
		return "", nil, err
	}
	go srv.Serve(ctx)
	return srv.Addr(), snap, nil
}

// startGeth runs geth --dev with HTTP on loopback.
func startGeth(bin, dir string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--dev", "--datadir", filepath.Join(dir, "geth"), "--http", "--http.addr", "127.0.0.1",
		"--http.port", strconv.Itoa(port), "--http.api", "eth", "--nodiscover", "--maxpeers", "0", "--ipcdisable",
		"--authrpc.port", "0", "--verbosity", "1")
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}`))
		if err == nil {
			resp.Body.Close()
			return url, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("geth did not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getScript writes a wrk script that GETs /v1/balances/<random address>.
func getScript(dir, name string, addrs []common.Address) string {
	var b strings.Builder
	b.WriteString("local paths = {")
	for i, a := range addrs[:min(len(addrs), 10_000)] {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", "/v1/balances/"+strings.ToLower(a.Hex()))
	}
	b.WriteString("}\nmath.randomseed(42)\nrequest = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end\n")
	return writeScript(dir, name, b.String())
}

// rpcScript writes a wrk script that POSTs eth_getBalance for a random address.
func rpcScript(dir string, addrs []common.Address) string {
	var b strings.Builder
	b.WriteString("local bodies = {")
	for i, a := range addrs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", `{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["`+strings.ToLower(a.Hex())+`","latest"]}`)
	}
	b.WriteString("}\nmath.randomseed(42)\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nrequest = function() return wrk.format(nil, nil, nil, bodies[math.random(#bodies)]) end\n")
	return writeScript(dir, "rpc", b.String())
}

func writeScript(dir, name, body string) string {
	p := filepath.Join(dir, name+".lua")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		panic(err) // a temporary directory of ours
	}
	return p
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50    = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	reP99    = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reErrs   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrk(ctx context.Context, t target, cfg config) (result, error) {
	out, err := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(cfg.conns), "-d"+cfg.duration.String(), "--latency", "-s", t.script, t.url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	s := string(out)
	var r result
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.p50, r.p99 = duration(reP50.FindStringSubmatch(s)), duration(reP99.FindStringSubmatch(s))
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := reErrs.FindStringSubmatch(s); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.errs += n
		}
	}
	return r, nil
}

func duration(m []string) time.Duration {
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit))
}

func median(rs []result) result {
	rps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	var m result
	for i, r := range rs {
		rps[i], p50[i], p99[i] = r.rps, r.p50, r.p99
		m.non2xx += r.non2xx
		m.errs += r.errs
	}
	slices.Sort(rps)
	slices.Sort(p50)
	slices.Sort(p99)
	m.rps, m.p50, m.p99 = rps[len(rps)/2], p50[len(p50)/2], p99[len(p99)/2]
	return m
}

func report(w io.Writer, targets []target, cfg config) {
	base := median(targets[0].results)
	fmt.Fprintf(w, "\nwrk -t2 -c%d -d%s, median of %d runs, load generator on the same 2 cores\n\n", cfg.conns, cfg.duration, cfg.runs)
	fmt.Fprintf(w, "| target | req/s | × bare echo | p50 | p99 | p99 ÷ bare | non-2xx | socket errors |\n|---|---|---|---|---|---|---|---|\n")
	for _, t := range targets {
		m := median(t.results)
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %s | %s | %.2f | %d | %d |\n", t.name, m.rps, m.rps/base.rps,
			m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond), float64(m.p99)/float64(base.p99), m.non2xx, m.errs)
	}
	for _, t := range targets[1:] {
		if strings.HasPrefix(t.name, "geth") {
			g := median(t.results)
			b := median(targets[1].results)
			fmt.Fprintf(w, "\nbalidx ÷ geth throughput: %.2f\n", b.rps/g.rps)
		}
	}
}
