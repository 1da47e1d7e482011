// Command balidx-bench measures the query tier over real HTTP with wrk, in
// one run, against baselines measured in the same run: a bare echo handler
// returning a balance-sized JSON answer (the physical limit of the framework
// on this machine) and geth answering eth_getBalance, on a tiny dev chain
// and on a genesis of a million accounts that balidx holds too, each server
// in a process of its own. It runs the legitimate load again under the
// seed's attack mix, can plot latency against load, and ends with one
// summary table of ratios against the targets (make bench).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/storage"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		err = serveMain(os.Args[2:], os.Stdout)
	} else {
		err = run(context.Background(), os.Args[1:], os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "balidx-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	geth      string
	balidx    string
	accounts  int
	duration  time.Duration
	runs      int
	conns     int
	profile   string
	plot      string
	goBench   string
	hot       int
	rest      bool
	rounds    int
	processes int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("balidx-bench", flag.ContinueOnError)
	fs.StringVar(&cfg.geth, "geth", "bin/geth", "geth binary for the eth_getBalance baselines (empty: skip them)")
	fs.StringVar(&cfg.balidx, "balidx", "", "balidx binary: times `balidx run --seed` of geth's whole state (empty: the read alone)")
	fs.IntVar(&cfg.accounts, "accounts", 1_000_000, "accounts in the genesis geth and balidx both hold (queried at random)")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "each wrk run")
	fs.IntVar(&cfg.runs, "runs", 3, "passes over every target but the margins' (medians are reported)")
	fs.IntVar(&cfg.rounds, "rounds", 6, "rounds of the margins' loads (bare echo, bare echo with balidx's header fields, balidx signed, anonymous, access log off), each seconds long; a margin is the median of its rounds' ratios")
	fs.IntVar(&cfg.processes, "processes", 3, "processes each margins' configuration runs in, a round on each in turn")
	fs.IntVar(&cfg.conns, "connections", 64, "wrk connections (2 threads)")
	fs.StringVar(&cfg.profile, "cpuprofile", "", "write a CPU profile of the balidx server while wrk asks it for known addresses, signed, one of it on the anonymous tier to FILE.anonymous and one of the bare handler to FILE.bare (their pprof, of the first round; -duration under 10s)")
	fs.StringVar(&cfg.plot, "plot", "", "also write an SVG of p99 latency against throughput at rising load")
	fs.IntVar(&cfg.hot, "hot", 100_000, "the active accounts (a random sample of them) that known-address loads ask for; balidx's cache is warmed with them first")
	fs.BoolVar(&cfg.rest, "rest", false, "only the margins' rounds, no other load and no attack: for iterating on the query path")
	fs.StringVar(&cfg.goBench, "go-bench", "", "output of `go test -bench` (storage, pipeline, query) to fold into the summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.accounts < 1 || cfg.hot < 1:
		return errors.New("-accounts and -hot must be at least 1")
	case cfg.runs < 1 || cfg.rounds < 1 || cfg.processes < 1:
		return errors.New("-runs, -rounds and -processes must be at least 1")
	case cfg.conns < wrkThreads:
		return fmt.Errorf("-connections must be at least %d (one a wrk thread)", wrkThreads)
	case cfg.duration < time.Second:
		return errors.New("-duration must be at least 1s (wrk counts in seconds)")
	case cfg.profile != "" && cfg.duration >= 10*time.Second:
		return errors.New("-cpuprofile needs a -duration under 10s (the admin listener's write timeout)")
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

	b := &bench{dir: dir, cfg: cfg, out: out}
	accounts := genesisAccounts(cfg.accounts)
	var gethDev, gethState *proc
	if cfg.geth != "" {
		fmt.Fprintf(out, "geth: initialising a genesis of %d accounts (about 1.5 min a million here)…\n", len(accounts))
		if gethState, err = startGethWithGenesis(ctx, cfg.geth, filepath.Join(dir, "geth-state"), accounts); err != nil {
			return err
		}
		defer gethState.stop()
		if gethDev, err = startGethDev(ctx, cfg.geth, filepath.Join(dir, "geth-dev")); err != nil {
			return err
		}
		defer gethDev.stop()
	}
	fmt.Fprintf(out, "balidx: building a snapshot of the same %d accounts…\n", len(accounts))
	snapshot := filepath.Join(dir, storage.FileName)
	if err := buildStore(snapshot, accounts); err != nil {
		return err
	}
	var servers []*proc
	defer func() {
		for _, p := range servers {
			p.stop()
		}
	}()
	serve := func(args ...string) (*proc, error) {
		p, err := startServer(args...)
		if err == nil {
			servers = append(servers, p)
		}
		return p, err
	}
	// The query tiers run as `balidx run` does, access log included,
	// appended to a file as --access-log-file does, and the same without
	// it (what the log costs), each in cfg.processes processes (margins).
	m := &margins{}
	for i := range cfg.processes {
		node, err := serve("balidx", snapshot, strconv.FormatInt(query.DefaultCacheBytes, 10), filepath.Join(dir, fmt.Sprintf("access-%d.log", i)))
		if err != nil {
			return err
		}
		quiet, err := serve("balidx", snapshot, strconv.FormatInt(query.DefaultCacheBytes, 10), "-")
		if err != nil {
			return err
		}
		m.nodes, m.quiets = append(m.nodes, node), append(m.quiets, quiet)
	}
	node := m.nodes[0] // also under the other loads on known or unknown addresses, and the attack
	b.accessLog = filepath.Join(dir, "access-0.log")
	// Loads over all the accounts go to a second query tier on the same
	// snapshot, so that they do not evict the active set from the first
	// one's cache. Its cache is sized for every account, 512 bytes each (as
	// `--cache-mb 512` would be for a million), as an operator would size it.
	nodeAll, err := serve("balidx", snapshot, strconv.FormatInt(max(query.DefaultCacheBytes, int64(len(accounts))*512), 10), filepath.Join(dir, "access-all.log"))
	if err != nil {
		return err
	}
	hot := make([]address, min(cfg.hot, len(accounts)))
	for i := range hot {
		hot[i] = accounts[i].addr // accounts are random: the first ones are a random sample
	}
	known := func(rng *randSource) address { return hot[rng.IntN(len(hot))] }
	anyAccount := func(rng *randSource) address { return accounts[rng.IntN(len(accounts))].addr }
	body, fields, err := answer(ctx, node.host, hot[0])
	if err != nil {
		return err
	}
	bodyFile, fieldsFile := filepath.Join(dir, "answer.json"), filepath.Join(dir, "answer.fields")
	if err := writeAnswer(bodyFile, fieldsFile, body, fields); err != nil {
		return err
	}
	for range cfg.processes {
		bare, err := serve("bare", bodyFile)
		if err != nil {
			return err
		}
		fielded, err := serve("bare", bodyFile, fieldsFile)
		if err != nil {
			return err
		}
		m.bares, m.fieldeds = append(m.bares, bare), append(m.fieldeds, fielded)
	}
	fmt.Fprintf(out, "balidx: warming the first tiers' caches (%d processes) with the %d active accounts…\n", 2*cfg.processes, len(hot))
	for _, p := range append(slices.Clone(m.nodes), m.quiets...) {
		if err := warmUp(ctx, p.host, hot); err != nil {
			return err
		}
	}
	all := make([]address, len(accounts))
	for i, a := range accounts {
		all[i] = a.addr
	}
	fmt.Fprintf(out, "balidx: warming the second tier's cache with all %d accounts…\n", len(all))
	if err := warmUp(ctx, nodeAll.host, all); err != nil {
		return err
	}
	idle := slices.Clone(servers)
	if cfg.geth != "" {
		idle = append(idle, gethState, gethDev)
	}
	for _, p := range idle {
		if err := p.waitIdle(ctx, time.Now().Add(5*time.Minute)); err != nil {
			return err
		}
	}
	m.bare = &target{name: "bare echo (baseline)", requests: signedGets(known), once: true}
	m.fielded = &target{name: "bare echo, balidx's header fields", requests: signedGets(known), once: true}
	m.signed = &target{name: "balidx, known addresses", requests: signedGets(known), once: true}
	m.anonymous = &target{name: "balidx, known addresses, anonymous", requests: plainGets(known)}
	m.quiet = &target{name: "balidx, known addresses, access log off", requests: signedGets(known), once: true}
	m.use(0)
	var others []*target // every other load, in passes
	var anyOf *target
	if !cfg.rest {
		anyOf = &target{name: fmt.Sprintf("balidx, any of the %d accounts", len(accounts)), server: nodeAll, requests: signedGets(anyAccount), once: true}
		others = append(others, &target{name: "balidx, unknown addresses", server: node, requests: signedGets(unknownAddress), once: true}, anyOf)
	}
	// The same protocol as geth's: eth_getBalance over JSON-RPC, signed,
	// one call and batches, on the same addresses.
	everyone := fmt.Sprintf("any of the %d accounts", len(accounts))
	rpcTarget := func(server *proc, pick func(*randSource) address, addresses string, calls int, signed bool) *target {
		name := "balidx POST /rpc eth_getBalance"
		if !signed {
			name = "geth eth_getBalance"
		}
		if calls > 1 {
			name += fmt.Sprintf(" ×%d", calls)
		}
		return &target{name: name + ", " + addresses, server: server, requests: rpcCalls(pick, calls, signed), once: signed, calls: calls}
	}
	rpcKnown, rpcKnown100 := rpcTarget(node, known, "known addresses", 1, true), rpcTarget(node, known, "known addresses", 100, true)
	rpcAll := []*target{rpcTarget(nodeAll, anyAccount, everyone, 1, true), rpcTarget(nodeAll, anyAccount, everyone, 10, true), rpcTarget(nodeAll, anyAccount, everyone, 100, true)}
	if !cfg.rest {
		others = append(others, rpcKnown, rpcKnown100)
		others = append(others, rpcAll...)
	}
	var comparisons []comparison
	var gethOnState *target // geth's single calls on the large state, plotted
	if gethDev != nil && !cfg.rest {
		gethTiny, gethTiny100 := rpcTarget(gethDev, known, "tiny dev chain", 1, false), rpcTarget(gethDev, known, "tiny dev chain", 100, false)
		gethAll := []*target{rpcTarget(gethState, anyAccount, everyone, 1, false), rpcTarget(gethState, anyAccount, everyone, 10, false), rpcTarget(gethState, anyAccount, everyone, 100, false)}
		others = append(others, gethTiny, gethTiny100)
		others = append(others, gethAll...)
		gethOnState = gethAll[0]
		comparisons = []comparison{
			{"GET /v1/balances ÷ geth eth_getBalance, tiny dev chain", m.signed, gethTiny, 2},
			{"GET /v1/balances ÷ geth eth_getBalance, " + everyone, anyOf, gethAll[0], 3},
			{"POST /rpc ÷ geth, eth_getBalance calls/s, tiny dev chain", rpcKnown, gethTiny, 0},
			{"POST /rpc ÷ geth, eth_getBalance calls/s, batches of 100, tiny dev chain", rpcKnown100, gethTiny100, 0},
			{"POST /rpc ÷ geth, eth_getBalance calls/s, " + everyone, rpcAll[0], gethAll[0], 3},
			{"POST /rpc ÷ geth, eth_getBalance calls/s, batches of 10, " + everyone, rpcAll[1], gethAll[1], 0},
			{"POST /rpc ÷ geth, eth_getBalance calls/s, batches of 100, " + everyone, rpcAll[2], gethAll[2], 10},
		}
	}
	if err := m.measure(ctx, b); err != nil {
		return err
	}
	// Passes over every other target in turn, every other pass in reverse
	// order, so that a drift in the machine's speed falls on all of them alike.
	for pass := 0; pass < cfg.runs; pass++ {
		order := slices.Clone(others)
		if pass%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			r, err := b.measure(ctx, t, cfg.conns, cfg.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			t.results = append(t.results, r)
			fmt.Fprintf(out, "pass %d  %-45s %8.0f req/s  p99 %s  steal %v\n", pass+1, t.name, r.rps, r.p99.Round(time.Microsecond), r.steal)
		}
	}
	s := summary{}
	report(out, append(m.targets(), others...), m, comparisons, cfg, &s)
	if cfg.rest {
		s.print(out)
		return nil
	}
	if err := underAttack(ctx, b, m.signed, &s); err != nil {
		return err
	}
	if cfg.plot != "" {
		// bare echo, balidx and geth on the large state
		plotted := []*target{m.bare, m.signed}
		if gethOnState != nil {
			plotted = append(plotted, gethOnState)
		}
		if err := latencyVsLoad(ctx, b, plotted, cfg.plot); err != nil {
			return err
		}
	}
	if gethState != nil {
		if err := seedRead(ctx, gethState.host, out, &s); err != nil {
			return err
		}
		if cfg.balidx != "" {
			if err := seedRun(ctx, cfg.balidx, gethState.host, dir, len(accounts), out, &s); err != nil {
				return err
			}
		}
	}
	if cfg.goBench != "" {
		if err := s.addGoBench(cfg.goBench); err != nil {
			return err
		}
	}
	fi, err := os.Stat(snapshot)
	if err != nil {
		return err
	}
	s.add("snapshot file (a native and a token balance each), MB per million accounts (mapped)", float64(fi.Size())/float64(len(accounts)), "", 0)
	s.print(out)
	return nil
}

// bench holds what every measurement shares.
type bench struct {
	dir     string
	cfg     config
	out     io.Writer
	runs    int     // request sets written so far: every set has its own nonces
	maxRPS  float64 // the fastest run so far, to size single-use request sets
	profile string  // if set, a CPU profile of the next run goes there
	// accessLog is the file the first query tier's access log goes to.
	accessLog string
}

// target is one server under load.
type target struct {
	name     string
	server   *proc // the process under load (the margins' loads take theirs round by round)
	requests func(host string, run int) requests
	once     bool // each request may be sent once (a signed nonce)
	calls    int  // JSON-RPC calls a request (0: not JSON-RPC, one answer a request)
	results  []result
}

// comparison is a balidx load against geth's on the same addresses, and
// the throughput ratio (calls/s) the issues ask for (0: none).
type comparison struct {
	what         string
	balidx, geth *target
	want         float64
}

// maxBatchCallsPerSecond sizes the single-use request sets of JSON-RPC
// batches: beyond it, wrk would send a nonce twice (401s, which the summary
// counts as failures).
const maxBatchCallsPerSecond = 300_000

// measure runs wrk once against t with a fresh request set.
func (b *bench) measure(ctx context.Context, t *target, conns int, d time.Duration) (result, error) {
	b.runs++
	perThread := 20_000
	if t.once { // enough for the fastest rate seen, with room
		rate := b.maxRPS
		if rate == 0 {
			rate = 100_000
		}
		if t.calls > 1 { // batches: sized for 300k calls a second at most
			rate = max(rate, maxBatchCallsPerSecond) / float64(t.calls)
		}
		perThread = int(rate*d.Seconds()*1.3)/wrkThreads + 1000
	}
	prefix := filepath.Join(b.dir, "requests")
	if err := writeRequests(prefix, perThread, t.requests(t.server.host, b.runs)); err != nil {
		return result{}, err
	}
	profiled := make(chan error, 1)
	if file := b.profile; file != "" {
		b.profile = ""
		go func() { profiled <- t.server.profileCPU(ctx, d, file) }()
	} else {
		profiled <- nil
	}
	r, err := runWrk(ctx, b.dir, "http://"+t.server.host, prefix, conns, d, t.server.cpu)
	if err == nil && t.calls <= 1 && r.rps > b.maxRPS {
		b.maxRPS = r.rps
	}
	return r, errors.Join(err, <-profiled)
}
