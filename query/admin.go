package query

import (
	"net/http"
	"net/http/pprof"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminRoutes: /metrics, /healthz, /readyz and /debug/pprof/, never on the
// query listener.
func (s *Server) adminRoutes() *echo.Echo {
	e := newEcho()
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	return e
}

// readyz is 200 once a snapshot is loaded and, under a hard staleness bound,
// while it is fresh enough to be served; 503 with the reason otherwise.
func (s *Server) readyz(c echo.Context) error {
	st, ok := s.status()
	switch {
	case !ok:
		return writeError(c, errUnavailable)
	case s.checkStaleness(s.snap.current()) != nil:
		return writeError(c, errStale)
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "trusted": st.Trusted.Number, "stale": st.Stale, "trust_violation": st.TrustViolation != nil})
}
