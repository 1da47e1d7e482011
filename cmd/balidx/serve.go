package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/query/accesslog"
	"github.com/balidx/balidx/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"
)

// parts is what a serving command runs.
type parts struct {
	node    bool // an external node, named by --rpc
	demo    bool // the in-process demo chain
	indexer bool
	query   bool // the applier, the snapshot and the HTTP tier
}

// commands are the serving commands and their parts.
var commands = map[string]parts{
	"dev":     {demo: true, indexer: true, query: true},
	"run":     {node: true, indexer: true, query: true},
	"indexer": {node: true, indexer: true},
	"query":   {query: true},
}

// serve builds the parts a command runs, in dependency order, binding
// their listeners, with no goroutine started: a failure at any step
// returns having started nothing, and the deferred closes release what was
// built. Then it runs them all in one errgroup until ctx ends or one fails,
// waits for every one, and closes the parts in reverse.
func serve(ctx context.Context, cmd string, cfg *config, stdout, stderr io.Writer) error {
	p := commands[cmd]
	log := newLogger(cfg.LogLevel, stderr)
	if p.demo && cfg.Data == "" {
		dir, err := os.MkdirTemp("", "balidx-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Data = dir
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	clients, err := loadClients(cmd, cfg, log)
	if err != nil {
		return err
	}
	var runs []func(context.Context) error // started once everything is built
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The log: NATS JetStream.
	nl, err := openLog(ctx, events.Config{URL: cfg.NATS, DataDir: cfg.Data, Listen: cfg.NATSListen, Replicas: cfg.Replicas,
		MaxAge: cfg.StreamMaxAge, SetMaxAge: true, Name: "balidx " + cmd}, log)
	if err != nil {
		return err
	}
	defer nl.Close()
	board, err := nl.StatusBoard(ctx)
	if err != nil {
		return err
	}

	// The chain side: the node and the indexer.
	chainID := cfg.ChainID
	var demo *devchain.Demo
	if p.indexer {
		var node *indexer.Node
		if p.demo {
			if demo, err = devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: cfg.DemoAccounts, Seed: uint64(time.Now().UnixNano())}); err != nil {
				return err
			}
			defer demo.Close()
			node = indexer.NewNode(demo.Chain.RPC)
		} else {
			if node, err = indexer.Dial(ctx, cfg.RPC); err != nil {
				return err
			}
			defer node.Close()
		}
		ix, err := indexer.New(ctx, indexer.Config{
			Node: node, Events: nl, Board: board,
			Policy:     balidx.Policy{Confirmations: cfg.Confirmations, Tag: cfg.Trust},
			StartBlock: cfg.StartBlock, GenesisFile: cfg.Genesis, Seed: cfg.Seed, SeedTokens: cfg.seedTokens, SeedLogSpan: cfg.SeedLogSpan, Multicall3: cfg.multicall3, SeedPage: cfg.SeedPage, SeedWorkers: cfg.SeedWorkers, SeedRate: cfg.SeedRate, Progress: terminal(stderr), MaxRefresh: cfg.MaxRefresh, Log: log.With("part", "indexer"), Metrics: reg,
		})
		if err != nil {
			return err
		}
		chainID = ix.ChainID()
		lease, err := nl.Lease(ctx, chainID, cfg.IndexerName, cfg.LeaseTTL)
		if err != nil {
			return err
		}
		runs = append(runs, func(ctx context.Context) error { return ix.RunActive(ctx, lease) })
	}

	if !p.query { // the indexer alone: an admin listener of its own
		ln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			return fmt.Errorf("admin listener %s: %w", cfg.Admin, err)
		}
		defer ln.Close() // serveIndexerAdmin closes it too; a failed start leaves it to this
		log.Info("serving", "admin", "http://"+ln.Addr().String())
		runs = append(runs, func(ctx context.Context) error { return serveIndexerAdmin(ctx, ln, reg) })
	}

	// The query side: snapshot, applier, HTTP.
	var srv *query.Server
	if p.query {
		snaps, err := nl.Snapshots(ctx)
		if err != nil {
			return err
		}
		if cfg.Bootstrap {
			if err := bootstrap(ctx, nl, snaps, dataDir(cfg.Data), chainID, log); err != nil {
				return err
			}
		}
		store, err := storage.Open(storage.Config{Path: dataDir(cfg.Data).snapshot(), ChainID: chainID})
		if err != nil {
			return err
		}
		defer store.Close()
		m, err := store.Meta()
		if err != nil {
			return err
		}
		if chainID == 0 {
			if chainID = m.ChainID; chainID == 0 {
				return errors.New("the snapshot is empty and no chain is named: give --chain-id")
			}
		}
		snap, err := query.NewSnapshot(query.SnapshotConfig{Store: store, CacheBytes: int64(cfg.CacheMB) << 20, Log: log.With("part", "query")})
		if err != nil {
			return err
		}
		defer snap.Close()
		onApplied := snap.OnApplied
		if cfg.SnapshotEvery > 0 {
			pub, err := newSnapshotPublisher(store, snaps, dataDir(cfg.Data), cfg.SnapshotEvery, log.With("part", "snapshots"), reg)
			if err != nil {
				return err
			}
			onApplied = func(res storage.Applied) { snap.OnApplied(res); pub.onApplied(res) }
			runs = append(runs, pub.run)
		}
		applier, err := storage.NewApplier(storage.ApplierConfig{Store: store, Source: nl, ChainID: chainID, OnApplied: onApplied, Metrics: reg})
		if err != nil {
			return err
		}
		var ixStatus atomic.Pointer[balidx.IndexerStatus]
		runs = append(runs, func(ctx context.Context) error {
			return board.Watch(ctx, chainID, func(s balidx.IndexerStatus) { ixStatus.Store(&s) })
		})
		var accessLog *accesslog.Log
		if cfg.AccessLog {
			var out io.Writer = stderr
			if cfg.AccessLogFile != "" {
				f, err := os.OpenFile(cfg.AccessLogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
				if err != nil {
					return fmt.Errorf("access log: %w", err)
				}
				defer f.Close() // after the join point: Serve has written the log out
				out = f
			}
			accessLog = accesslog.New(accesslog.Config{Out: out, Rate: cfg.AccessLogRate, MaxRate: cfg.AccessLogMaxRate, FoldInterval: cfg.AccessLogFold})
		}
		srv, err = query.New(query.Config{
			Addr: cfg.HTTP, AdminAddr: cfg.Admin, Snapshot: snap,
			IndexerStatus: ixStatus.Load,
			StaleAfter:    cfg.StaleAfter, MaxStaleness: cfg.MaxStaleness,
			Clients: clients, CORSOrigins: cfg.origins, TrustedProxies: cfg.proxies, MaxNonces: cfg.MaxNonces, Multicall3: cfg.multicall3,
			MaxInFlight: cfg.MaxInFlight, MaxInFlightPerClient: cfg.MaxInFlightPerClient, MaxInFlightPerIP: cfg.MaxInFlightPerIP,
			MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP,
			StreamLag: applier.Lag, MaxLag: cfg.MaxLag,
			Usage: nl.UsageExchange(), Replica: cfg.ReplicaName,
			AccessLog: accessLog, Registry: reg, Log: log.With("part", "query"),
		})
		if err != nil {
			return err
		}
		if hup := reloads(ctx); hup != nil && cfg.Clients != "" {
			runs = append(runs, func(ctx context.Context) error { return reloadOn(ctx, hup, cfg.Clients, srv, log) })
		}
		if err := srv.Listen(); err != nil { // the last step that can fail: Serve closes the listeners
			return err
		}
		log.Info("serving", "query", "http://"+srv.Addr(), "admin", "http://"+srv.AdminAddr(), "snapshot", store.Path(), "trusted", m.Trusted.Number)
		runs = append(runs, func(ctx context.Context) error {
			if err := applier.Run(ctx); err != nil {
				return fmt.Errorf("applier: %w", err)
			}
			return nil
		}, srv.Serve)
	}

	if demo != nil {
		printDemo(stdout, demo, srv)
		runs = append(runs, func(ctx context.Context) error { return driveDemo(ctx, demo, cfg.BlockInterval, log) })
	}

	// Everything is built and bound: run it all, with one join point.
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range runs {
		g.Go(func() error { return run(gctx) })
	}
	return g.Wait()
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated in config
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// loadClients reads the clients file. Without one, `dev` opens a low-rate
// anonymous tier so that a plain curl works in the demo; the other commands
// refuse every unsigned request.
func loadClients(cmd string, cfg *config, log *slog.Logger) (*query.Clients, error) {
	if cfg.Clients != "" {
		c, err := query.LoadClients(cfg.Clients)
		if err != nil {
			return nil, err
		}
		log.Info("clients file loaded", "clients", len(c.Clients), "anonymous", c.Anonymous.Enabled)
		return c, nil
	}
	if commands[cmd].demo {
		return &query.Clients{Anonymous: query.Anonymous{Enabled: true, Rate: 5, Burst: 20}}, nil
	}
	if commands[cmd].query {
		log.Warn("no --clients file: every request must be signed and no client exists, so all are refused")
	}
	return &query.Clients{}, nil
}

// reloadOn re-reads the clients file at every signal (SIGHUP). A file that
// does not load is reported and the clients in force stay.
func reloadOn(ctx context.Context, signals <-chan os.Signal, path string, srv *query.Server, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-signals:
			c, err := query.LoadClients(path)
			if err != nil {
				log.Error("clients file not reloaded; the previous one stays in force", "err", err)
				continue
			}
			if err := srv.ReloadClients(c); err != nil {
				log.Error("clients file not reloaded; the previous one stays in force", "err", err)
				continue
			}
			log.Info("clients file reloaded", "clients", len(c.Clients), "anonymous", c.Anonymous.Enabled)
		}
	}
}

// openLog opens the event log: on the servers at url, or with an empty url
// on an embedded server storing in DATA/nats and listening on listen.
func openLog(ctx context.Context, ec events.Config, log *slog.Logger) (*events.Log, error) {
	l, err := events.Open(ctx, ec)
	if err != nil {
		return nil, err
	}
	if l.Embedded() {
		log.Info("embedded NATS with JetStream started", "url", l.URL())
	}
	return l, nil
}

// terminal is w when it is a terminal (a progress bar is drawn there), else
// nil.
func terminal(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}
