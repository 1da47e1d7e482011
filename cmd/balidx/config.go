package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/query/accesslog"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"sigs.k8s.io/yaml"
)

// config is every option of the serving commands. Each field is a flag;
// the config file and the environment use the same names (docs/CONFIG.md).
type config struct {
	RPC           string
	NATS          string
	NATSListen    string
	Data          string
	HTTP          string
	Admin         string
	Confirmations uint64
	Trust         string
	Genesis       string
	StartBlock    uint64
	Seed          bool
	SeedTokens    string
	SeedLogSpan   uint64
	SeedPage      int
	SeedWorkers   int
	SeedRate      float64
	MaxRefresh    int
	IndexerName   string
	LeaseTTL      time.Duration
	ChainID       uint64
	Clients       string
	CORSOrigins   string
	TrustProxies  string
	Multicall3    string
	MaxInFlight   int
	// MaxInFlightPerClient and MaxInFlightPerIP: 0 takes the query
	// package's defaults (half and an eighth of MaxInFlight).
	MaxInFlightPerClient int
	MaxInFlightPerIP     int
	MaxConns             int
	MaxConnsPerIP        int
	MaxNonces            int
	CacheMB              int
	AccessLog            bool
	AccessLogFile        string
	AccessLogRate        int
	AccessLogMaxRate     int
	AccessLogFold        time.Duration
	StaleAfter           time.Duration
	MaxLag               uint64
	ReplicaName          string
	SnapshotEvery        uint64
	Bootstrap            bool
	StreamMaxAge         time.Duration
	MaxStaleness         time.Duration
	Replicas             int
	LogLevel             string
	DemoAccounts         int
	BlockInterval        time.Duration

	// Parsed by validate, from CORSOrigins, TrustProxies, Multicall3 and
	// SeedTokens.
	origins    []string
	proxies    []*net.IPNet
	multicall3 common.Address
	seedTokens []indexer.SeedToken
}

// maxConfigFile bounds the config file.
const maxConfigFile = 1 << 20

// maxCacheMB bounds --cache-mb (64 GiB).
const maxCacheMB = 64 << 10

// newCommandFlags is a command's flag set, with --config: every command
// takes its flags from a file too (parseFlags).
func newCommandFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "YAML config file with any of these flags as keys")
	return fs
}

func newFlagSet(cmd string, cfg *config, stderr io.Writer) *flag.FlagSet {
	fs := newCommandFlags("balidx "+cmd, stderr)
	p := commands[cmd]
	if p.node {
		fs.StringVar(&cfg.RPC, "rpc", "", "node URL: ws://, wss://, http://, https:// (WebSocket follows new heads; HTTP polls)")
		fs.StringVar(&cfg.Genesis, "genesis", "", "genesis JSON file: seeds the genesis allocation when starting at block 0")
		fs.Uint64Var(&cfg.StartBlock, "start-block", 0, "first block to index on an empty stream (0: from genesis, full coverage)")
		addSeedFlags(fs, cfg)
		fs.StringVar(&cfg.Trust, "trust", "", "trust the node's 'safe' or 'finalized' block instead of counting confirmations")
	}
	if p.indexer {
		def := uint64(indexer.DefaultConfirmations)
		if p.demo {
			def = 2
		}
		fs.Uint64Var(&cfg.Confirmations, "confirmations", def, "a block is trusted once head − number ≥ N")
		fs.IntVar(&cfg.MaxRefresh, "token-refresh-max", indexer.DefaultMaxRefresh, "most holders of one token re-read at one block when state all its balances depend on changes (a rebase); a token needing more is withheld")
		fs.StringVar(&cfg.IndexerName, "indexer-name", defaultProcessName(), "names this indexer among those following the chain (one publishes, holding the lease; the others stand by)")
		fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", events.DefaultLeaseTTL, "a standby takes over publishing within about 1.25× this after the active indexer stops renewing; the same on every indexer")
	}
	fs.StringVar(&cfg.NATS, "nats", "", "NATS server URLs, comma-separated (every node of a cluster); empty starts an embedded server with JetStream")
	defListen := events.DefaultListen
	if p.demo {
		defListen = "127.0.0.1:0" // a free port: dev keeps to itself
	}
	fs.StringVar(&cfg.NATSListen, "nats-listen", defListen, "address of the embedded NATS server (port 0: any free port)")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "stream replicas (3 or 5 on a JetStream cluster)")
	fs.DurationVar(&cfg.StreamMaxAge, "stream-max-age", 0, "drop stream messages older than this (0: keep all); bounded, new replicas start from the object store's snapshots (--snapshot-every), and balidx rebuild needs the whole stream")
	defData := string(defaultDataDir)
	if p.demo {
		defData = ""
	}
	fs.StringVar(&cfg.Data, "data", defData, "directory of the snapshot and the embedded NATS store (dev: a temporary one)")
	fs.StringVar(&cfg.Admin, "admin", query.DefaultAdminAddr, "admin listener: /metrics /healthz (and with the query tier /readyz /debug/pprof/)")
	if p.query || p.node {
		fs.StringVar(&cfg.Multicall3, "multicall3", query.DefaultMulticall3.Hex(), "address of Multicall3 on the chain: POST /rpc answers its getEthBalance and aggregate3, and a token seed reads balances through it where it is deployed")
	}
	if p.query {
		fs.StringVar(&cfg.HTTP, "http", query.DefaultAddr, "query listener")
		fs.StringVar(&cfg.Clients, "clients", "", "clients file (API.md): client ids, secrets, rates; re-read on SIGHUP")
		fs.StringVar(&cfg.CORSOrigins, "cors-origins", "", "exact browser origins allowed, comma-separated (scheme://host[:port])")
		fs.StringVar(&cfg.TrustProxies, "trusted-proxies", "", "CIDRs of proxies whose X-Forwarded-For names the client, comma-separated")
		fs.IntVar(&cfg.MaxInFlight, "max-in-flight", query.DefaultMaxInFlight, "requests served at once; past it, 503 overloaded")
		fs.IntVar(&cfg.MaxInFlightPerClient, "max-in-flight-per-client", 0, "requests of one signed client served at once (0: half of --max-in-flight)")
		fs.IntVar(&cfg.MaxInFlightPerIP, "max-in-flight-per-ip", 0, "anonymous requests of one client IP served at once (0: an eighth of --max-in-flight)")
		fs.IntVar(&cfg.MaxConns, "max-conns", query.DefaultMaxConns(), "connections the query listener holds open (default: ¾ of the file limit less 512, at most 16384)")
		fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", query.DefaultMaxConnsPerIP, "connections from one client IP (trusted proxies exempt)")
		fs.IntVar(&cfg.MaxNonces, "max-nonces", query.DefaultMaxNonces, "(client, nonce) pairs the replay cache holds (~46 bytes each); past it, 503 overloaded")
		fs.IntVar(&cfg.CacheMB, "cache-mb", query.DefaultCacheBytes>>20, "MiB of rendered answers the balance cache holds (~390 bytes an account with one token)")
		fs.BoolVar(&cfg.AccessLog, "access-log", true, "one JSON line per query request (README: Access log)")
		fs.StringVar(&cfg.AccessLogFile, "access-log-file", "", "file the access log is appended to (default: standard error)")
		fs.IntVar(&cfg.AccessLogRate, "access-log-rate", accesslog.DefaultRate, "access lines a second written in full per (client IP, client id, route, status); beyond, folded into a summary")
		fs.IntVar(&cfg.AccessLogMaxRate, "access-log-max-rate", accesslog.DefaultMaxRate, "access lines a second written in full in all; beyond, folded")
		fs.DurationVar(&cfg.AccessLogFold, "access-log-fold-interval", accesslog.DefaultFoldInterval, "how often folded access lines are summarized")
		fs.DurationVar(&cfg.StaleAfter, "stale-after", query.DefaultStaleAfter, "status reports stale when the trusted block is older")
		fs.DurationVar(&cfg.MaxStaleness, "max-staleness", 0, "if set, balances answer 503 when the trusted block is older")
		fs.Uint64Var(&cfg.SnapshotEvery, "snapshot-every", 0, "publish this replica's snapshot to the NATS object store every N blocks, for new replicas to start from (0: never; one replica of a chain is enough)")
		fs.BoolVar(&cfg.Bootstrap, "bootstrap", true, "start from the object store's newest snapshot when the data directory has none, or when the stream no longer holds what follows it")
		fs.StringVar(&cfg.ReplicaName, "replica-name", defaultProcessName(), "names this query replica among those sharing the clients' quotas over NATS")
		fs.Uint64Var(&cfg.MaxLag, "max-lag", query.DefaultMaxLag, "/readyz is 503 while more messages than this wait on the stream to be applied (a load balancer drains a replica catching up); 0: no bound")
	}
	if !p.indexer {
		fs.Uint64Var(&cfg.ChainID, "chain-id", 0, "chain to serve (default: the snapshot's)")
	}
	if p.demo {
		fs.IntVar(&cfg.DemoAccounts, "demo-accounts", 5, "funded demo accounts on the simulated chain")
		fs.DurationVar(&cfg.BlockInterval, "block-interval", time.Second, "time between simulated blocks")
	}
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	return fs
}

// parseConfig applies defaults, then the config file, then BALIDX_*
// variables, then flags, and validates the result.
func parseConfig(cmd string, args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cmd, cfg, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.validate(cmd)
}

// parseFlags is how every command reads its options: fs's defaults, then
// the file of its --config flag, then BALIDX_<NAME> variables, then the
// command line (each wins over the one before). fs must define "config".
// A key of the file that is not one of fs's flags is an error.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	fromEnv := map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if onCommandLine[f.Name] {
			return
		}
		name := "BALIDX_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			fromEnv[f.Name] = true
		}
	})
	if file := fs.Lookup("config").Value.String(); file != "" {
		if err := applyFile(fs, file, func(name string) bool { return onCommandLine[name] || fromEnv[name] }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func applyFile(fs *flag.FlagSet, file string, overridden func(string) bool) error {
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if fi.Size() > maxConfigFile {
		return fmt.Errorf("config file %s is larger than %d bytes", file, maxConfigFile)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var kv map[string]any
	if err := yaml.Unmarshal(data, &kv); err != nil {
		return fmt.Errorf("config file %s: %w", file, err)
	}
	for k, v := range kv {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return fmt.Errorf("config file %s: unknown key %q for %s", file, k, fs.Name())
		}
		if overridden(k) {
			continue
		}
		text := fmt.Sprint(v)
		if n, ok := v.(float64); ok { // YAML numbers arrive as float64: 2097152, not 2.097152e+06
			text = strconv.FormatFloat(n, 'f', -1, 64)
		}
		if err := fs.Set(k, text); err != nil {
			return fmt.Errorf("config file %s: %s: %w", file, k, err)
		}
	}
	return nil
}

func (c *config) validate(cmd string) error {
	var errs []error
	p := commands[cmd]
	if p.node && c.RPC == "" {
		errs = append(errs, errors.New("--rpc is required: the node to index (ws://… to follow new heads, http://… to poll)"))
	}
	switch c.Trust {
	case "", "safe", "finalized":
	default:
		errs = append(errs, fmt.Errorf("--trust %q: want safe or finalized", c.Trust))
	}
	if c.Trust != "" {
		c.Confirmations = 0
	}
	if c.Confirmations > 10_000 {
		errs = append(errs, fmt.Errorf("--confirmations %d: at most 10000", c.Confirmations))
	}
	if p.indexer && (c.LeaseTTL < time.Second || c.LeaseTTL > 5*time.Minute) {
		errs = append(errs, fmt.Errorf("--lease-ttl %s: want 1s..5m", c.LeaseTTL))
	}
	if p.query && (c.ReplicaName == "" || len(c.ReplicaName) > 128) {
		errs = append(errs, fmt.Errorf("--replica-name %q: want 1..128 characters", c.ReplicaName))
	}
	if p.indexer && (c.IndexerName == "" || len(c.IndexerName) > 128) {
		errs = append(errs, fmt.Errorf("--indexer-name %q: want 1..128 characters", c.IndexerName))
	}
	if p.indexer && (c.MaxRefresh < 1 || c.MaxRefresh > 10_000_000) {
		errs = append(errs, fmt.Errorf("--token-refresh-max %d: want 1..10000000", c.MaxRefresh))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1, 3 or 5", c.Replicas))
	}
	if !p.demo && c.Data == "" {
		errs = append(errs, errors.New("--data is required"))
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > 1_000_000 {
		errs = append(errs, fmt.Errorf("--max-in-flight %d: want 1..1000000", c.MaxInFlight))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"--max-in-flight-per-client", c.MaxInFlightPerClient}, {"--max-in-flight-per-ip", c.MaxInFlightPerIP}} {
		if f.v < 0 || f.v > c.MaxInFlight {
			errs = append(errs, fmt.Errorf("%s %d: want 0 (the default) up to --max-in-flight %d", f.name, f.v, c.MaxInFlight))
		}
	}
	if p.query && (c.MaxConns < 1 || c.MaxConns > 1_000_000 || c.MaxConnsPerIP < 1 || c.MaxConnsPerIP > c.MaxConns) {
		errs = append(errs, fmt.Errorf("--max-conns %d, --max-conns-per-ip %d: want 1 ≤ per IP ≤ total ≤ 1000000", c.MaxConns, c.MaxConnsPerIP))
	}
	if p.query && (c.MaxNonces < 1 || c.MaxNonces > 1<<26) {
		errs = append(errs, fmt.Errorf("--max-nonces %d: want 1..%d", c.MaxNonces, 1<<26))
	}
	if p.query && (c.AccessLogRate < 1 || c.AccessLogMaxRate < c.AccessLogRate || c.AccessLogMaxRate > 1_000_000) {
		errs = append(errs, fmt.Errorf("--access-log-rate %d, --access-log-max-rate %d: want 1 ≤ rate ≤ max rate ≤ 1000000", c.AccessLogRate, c.AccessLogMaxRate))
	}
	if p.query && (c.AccessLogFold < time.Second || c.AccessLogFold > time.Hour) {
		errs = append(errs, fmt.Errorf("--access-log-fold-interval %s: want 1s..1h", c.AccessLogFold))
	}
	if p.node {
		errs = append(errs, c.validateSeed()...)
	}
	if p.query && (c.CacheMB < 1 || c.CacheMB > maxCacheMB) {
		errs = append(errs, fmt.Errorf("--cache-mb %d: want 1..%d", c.CacheMB, maxCacheMB))
	}
	var err error
	if c.origins, err = query.ParseOrigins(c.CORSOrigins); err != nil {
		errs = append(errs, fmt.Errorf("--cors-origins: %w", err))
	}
	if c.proxies, err = parseCIDRs(c.TrustProxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	if p.query || p.node {
		if !common.IsHexAddress(c.Multicall3) {
			errs = append(errs, fmt.Errorf("--multicall3 %q: want 0x and 40 hex digits", c.Multicall3))
		}
		c.multicall3 = common.HexToAddress(c.Multicall3)
	}
	if c.StreamMaxAge < 0 || c.StreamMaxAge > 0 && c.StreamMaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("--stream-max-age %s: want 0 (keep all) or at least 1h", c.StreamMaxAge))
	}
	if c.StaleAfter < 0 || c.MaxStaleness < 0 {
		errs = append(errs, errors.New("staleness bounds must not be negative"))
	}
	if p.demo && (c.DemoAccounts < 2 || c.DemoAccounts > 1000) {
		errs = append(errs, fmt.Errorf("--demo-accounts %d: want 2..1000", c.DemoAccounts))
	}
	if p.demo && c.BlockInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--block-interval %s: at least 10ms", c.BlockInterval))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// parseCIDRs reads a comma-separated list of CIDRs (a bare IP is a /32 or /128).
func parseCIDRs(list string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// dataDir is a node's data directory: its snapshot (storage.FileName) and
// the embedded NATS server's store (events: nats/).
type dataDir string

// defaultDataDir is the data directory unless --data says otherwise.
const defaultDataDir dataDir = "./data"

// snapshot is the path of the snapshot file.
func (d dataDir) snapshot() string { return filepath.Join(string(d), storage.FileName) }

// defaultProcessName is host/pid: unique among the processes of a deployment.
func defaultProcessName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
