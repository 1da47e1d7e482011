package query

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the query tier. Labels have bounded cardinality: routes are
// the registered patterns, never raw paths; no client IPs.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, snap *Snapshot) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "balidx_http_requests_total", Help: "Query requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "balidx_http_request_duration_seconds", Help: "Query request latency by route.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}, []string{"route"}),
	}
	collectors := []prometheus.Collector{
		m.requests, m.latency,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "balidx_snapshot_reads_total", Help: "Address reads that reached bbolt.",
		}, func() float64 { return float64(snap.SnapshotReads()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "balidx_trusted_block", Help: "The trusted block answers are given at.",
		}, func() float64 {
			if v := snap.current(); v != nil {
				return float64(v.meta.Trusted.Number)
			}
			return -1
		}),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		status := c.Response().Status
		if err != nil {
			status = toAPIError(err).Status
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		return err
	}
}
