// Package query is the HTTP tier: it answers balance and status questions
// from the snapshot alone (Bloom filter → cache → bbolt) and never reaches
// the chain. API.md is its contract.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/query/accesslog"
	"github.com/ethereum/go-ethereum/common"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits of the query listener.
const (
	MaxBatchAddresses = 100
	MaxBatchBody      = 16 << 10
	MaxTokenFilter    = 20
	MaxPageLimit      = 1000
	// MaxHeaderBytes bounds the request line and headers together.
	MaxHeaderBytes = 8 << 10
)

// Defaults of a Server's Config.
const (
	DefaultAddr       = "127.0.0.1:8080"
	DefaultAdminAddr  = "127.0.0.1:9090"
	DefaultStaleAfter = 2 * time.Minute
	// DefaultMaxLag: /readyz fails while more messages wait to be applied.
	DefaultMaxLag = 100
)

// Config configures a Server. Zero fields take the defaults named.
type Config struct {
	Addr      string // query listener; default DefaultAddr
	AdminAddr string // admin listener; default DefaultAdminAddr
	Snapshot  *Snapshot
	// IndexerStatus returns the indexer's last word (head, policy, trust
	// violation), or nil when none has arrived.
	IndexerStatus func() *balidx.IndexerStatus
	// StreamLag, if set, tells how many messages the applier has yet to
	// apply; past MaxLag, /readyz is 503 behind (a load balancer drains a
	// replica catching up). MaxLag 0: no bound.
	StreamLag func() uint64
	MaxLag    uint64
	// StaleAfter: status says stale when the trusted block is older;
	// default DefaultStaleAfter.
	StaleAfter time.Duration
	// MaxStaleness, if set, makes balance answers 503 when the trusted block
	// is older: a hard bound for operators who prefer no answer to an old one.
	MaxStaleness time.Duration
	// Clients is the clients file; nil refuses every request but those of
	// an anonymous tier (there is none without a file).
	Clients *Clients
	// SignatureWindow: how far X-Timestamp may be from the clock; default 30s.
	SignatureWindow time.Duration
	// MaxNonces bounds the replay cache; default DefaultMaxNonces (2Mi pairs, ≤ ~100 MB).
	MaxNonces int
	// MaxInFlight caps requests served at once; past it, 503 overloaded.
	// MaxInFlightPerClient (default half of it) caps one signed client's,
	// MaxInFlightPerIP (default an eighth) one anonymous caller IP's.
	MaxInFlight, MaxInFlightPerClient, MaxInFlightPerIP int
	// MaxConns caps the query listener's connections (default
	// DefaultMaxConns()), MaxConnsPerIP those from one client IP (default
	// DefaultMaxConnsPerIP; trusted proxies are exempt).
	MaxConns, MaxConnsPerIP int
	// CORSOrigins is the exact allowlist of browser origins.
	CORSOrigins []string
	// TrustedProxies may set X-Forwarded-For; from anyone else it is ignored.
	TrustedProxies []*net.IPNet
	// Usage, if set, makes each signed client's quota one quota across the
	// replicas that share it (share.go); Replica names this one among them.
	Usage   UsageExchange
	Replica string
	// Multicall3 is where Multicall3 is deployed on the chain (the
	// JSON-RPC endpoint's eth_call); default DefaultMulticall3.
	Multicall3 common.Address
	// AccessLog, if set, gets every request. Serve runs it, and writes it
	// out once the last request has been answered.
	AccessLog *accesslog.Log
	Registry  *prometheus.Registry
	Log       *slog.Logger
	Now       func() time.Time
}

// Server runs the query and admin listeners.
type Server struct {
	cfg     Config
	snap    *Snapshot
	metrics *metrics
	guard   *guard
	query   *http.Server
	admin   *http.Server
	qln     net.Listener
	aln     net.Listener
	qconns  *connLimits
	aconns  *connLimits
	bounds  bounds // min_block is the request's
	sharer  *sharer
}

// New builds the server; Listen binds it, Serve runs it.
func New(cfg Config) (*Server, error) {
	if cfg.Snapshot == nil {
		return nil, errors.New("query: no snapshot")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = DefaultAdminAddr
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.IndexerStatus == nil {
		cfg.IndexerStatus = func() *balidx.IndexerStatus { return nil }
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns()
	}
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.Multicall3 == (common.Address{}) {
		cfg.Multicall3 = DefaultMulticall3
	}
	s := &Server{cfg: cfg, snap: cfg.Snapshot, bounds: bounds{maxAge: cfg.MaxStaleness, now: cfg.Now}}
	var err error
	if s.metrics, err = newMetrics(cfg.Registry, cfg.Snapshot, cfg.AccessLog); err != nil {
		return nil, err
	}
	if s.guard, err = newGuard(&s.cfg, s.metrics); err != nil {
		return nil, err
	}
	if cfg.Usage != nil {
		if cfg.Replica == "" {
			return nil, errors.New("query: a usage exchange needs the replica's name")
		}
		s.sharer = newSharer(cfg.Replica, cfg.Usage, s.guard.signer, cfg.Now)
		for _, c := range s.sharer.collectors() {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	trusted := func(ip net.IP) bool {
		for _, n := range cfg.TrustedProxies {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
	s.qconns = newConnLimits("query", cfg.MaxConns, cfg.MaxConnsPerIP, trusted)
	s.aconns = newConnLimits("admin", maxAdminConns, 0, nil)
	for _, c := range slices.Concat(s.qconns.collectors(), s.aconns.collectors(), s.guard.collectors()) {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	s.query = NewHTTPServer(s.queryRoutes())
	s.admin = NewHTTPServer(s.adminRoutes())
	return s, nil
}

// NewHTTPServer is the http.Server of balidx's listeners. It sets every
// timeout explicitly: a slow client holds a connection for seconds, never
// indefinitely.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		// net/http reads up to MaxHeaderBytes + 4096 bytes of request line
		// and headers before it answers 431: asking for 4 KiB less makes
		// the limit enforced the one documented.
		MaxHeaderBytes: MaxHeaderBytes - 4096,
	}
}

// newEcho is the echo of both listeners: every error answered by the one
// mapping of API.md (toAPIError), a 500 logged as the bug it is.
func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect() // X-Forwarded-For is not trusted by default
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		apiErr := toAPIError(err)
		if apiErr.Status == http.StatusInternalServerError {
			s.cfg.Log.Error("internal error", "path", c.Path(), "err", err)
		}
		_ = writeError(c, apiErr)
	}
	return e
}

func (s *Server) queryRoutes() *echo.Echo {
	e := s.newEcho()
	if len(s.cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range s.cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.Use(s.observe)
	e.Use(s.guard.middleware)
	e.GET("/v1/balances/:address", s.getBalance)
	e.POST("/v1/balances", s.postBalances)
	e.GET("/go/wallet/balance", s.getWalletBalance)
	e.GET("/v1/status", s.getStatus)
	e.POST(RPCRoute, s.postRPC)
	return e
}

// ReloadClients installs a new clients file (on SIGHUP). Buckets and
// replay-cache shares of clients whose rate and burst did not change keep
// their state. A file whose clients' shares do not fit the replay cache is
// refused (ErrNonceCacheTooSmall) and the previous one stays.
func (s *Server) ReloadClients(c *Clients) error { return s.guard.reload(c) }

// Listen binds both listeners (port 0 picks a free port), each behind
// its connection caps.
func (s *Server) Listen() error {
	qln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("query listener %s: %w", s.cfg.Addr, err)
	}
	aln, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		qln.Close()
		return fmt.Errorf("admin listener %s: %w", s.cfg.AdminAddr, err)
	}
	s.qln = &limitedListener{Listener: qln, limits: s.qconns}
	s.aln = &limitedListener{Listener: aln, limits: s.aconns}
	return nil
}

// Addr and AdminAddr are the bound addresses, after Listen.
func (s *Server) Addr() string      { return s.qln.Addr().String() }
func (s *Server) AdminAddr() string { return s.aln.Addr().String() }

// Serve answers until ctx ends, then drains connections for up to 10 s.
func (s *Server) Serve(ctx context.Context) error {
	if l := s.cfg.AccessLog; l != nil {
		lctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.Run(lctx); close(done) }()
		defer func() { stop(); <-done }() // after the listeners' drain below
	}
	if sh := s.sharer; sh != nil {
		unsubscribe, err := sh.ex.SubscribeUsage(sh.receive)
		if err != nil {
			s.qln.Close()
			s.aln.Close()
			return fmt.Errorf("quota exchange: %w", err)
		}
		defer unsubscribe()
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { sh.run(stop); close(done) }()
		defer func() { close(stop); <-done }()
	}
	errc := make(chan error, 2)
	go func() { errc <- s.query.Serve(s.qln) }()
	go func() { errc <- s.admin.Serve(s.aln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, s.query.Shutdown(sctx), s.admin.Shutdown(sctx))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
