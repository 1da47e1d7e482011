package query

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminRoutes: /metrics, /healthz, /readyz and /debug/pprof/, never on the
// query listener.
func (s *Server) adminRoutes() *echo.Echo {
	e := s.newEcho()
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
	e.GET("/snapshot", s.snapshotCopy)
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	return e
}

// snapshotCopy streams a consistent copy of the snapshot file (one read
// transaction) while the node keeps applying: for audits and new nodes.
func (s *Server) snapshotCopy(c echo.Context) error {
	// A large file takes longer than the listener's write timeout.
	if err := http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		return err
	}
	c.Response().Header().Set("Content-Type", "application/octet-stream")
	c.Response().WriteHeader(http.StatusOK)
	_, err := s.snap.store.WriteTo(c.Response())
	return err
}

// readyz is 200 once a snapshot is loaded, while it is fresh enough to be
// served under a hard staleness bound, and while the applier is within
// MaxLag messages of the stream's end; 503 with the reason otherwise.
func (s *Server) readyz(c echo.Context) error {
	st, ok := s.status()
	switch {
	case !ok:
		return writeError(c, errUnavailable)
	case s.bounds.check(s.snap.current()) != nil:
		return writeError(c, errStale)
	case s.cfg.MaxLag > 0 && s.cfg.StreamLag != nil && s.cfg.StreamLag() > s.cfg.MaxLag:
		return writeError(c, errLagging)
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "trusted": st.Trusted.Number, "stale": st.Stale, "trust_violation": st.TrustViolation != nil})
}
