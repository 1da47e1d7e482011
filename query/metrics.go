package query

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/balidx/balidx/query/accesslog"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the query tier. Labels have bounded cardinality: routes are
// the registered patterns, auth results and quota names are fixed sets,
// client ids come from the operator's file; never a client IP.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	auth     *prometheus.CounterVec
	clients  *prometheus.CounterVec
	limited  *prometheus.CounterVec
	lookups  [3]prometheus.Counter // by source
	shed     prometheus.Counter

	// The children of requests, latency, auth and clients for each
	// combination of labels seen, so that a request finds them with one
	// lock-free map read rather than four label hashings under the vectors'
	// locks. The combinations are few (routes × statuses × auth results ×
	// the clients file's ids: a client id is part of the key only once its
	// signature is valid); a new one copies the map.
	memoMu sync.Mutex
	memo   atomic.Pointer[map[requestKey]*requestMetrics]
}

// requestKey: client is empty unless the request's signature was valid.
type requestKey struct{ route, status, auth, client string }

type requestMetrics struct {
	requests, auth prometheus.Counter
	latency        prometheus.Observer
	client         prometheus.Counter // nil without a client
}

func (m *metrics) byRequest(k requestKey) *requestMetrics {
	if rm, ok := (*m.memo.Load())[k]; ok {
		return rm
	}
	m.memoMu.Lock()
	defer m.memoMu.Unlock()
	old := *m.memo.Load()
	if rm, ok := old[k]; ok {
		return rm
	}
	next := maps.Clone(old)
	rm := &requestMetrics{
		requests: m.requests.WithLabelValues(k.route, k.status, k.auth),
		auth:     m.auth.WithLabelValues(k.auth),
		latency:  m.latency.WithLabelValues(k.route),
	}
	if k.client != "" {
		rm.client = m.clients.WithLabelValues(k.client)
	}
	next[k] = rm
	m.memo.Store(&next)
	return rm
}

var sourceNames = [...]string{fromBloom: "bloom_negative", fromCache: "cache_hit", fromSnapshot: "cache_miss"}

func newMetrics(reg *prometheus.Registry, snap *Snapshot, accessLog *accesslog.Log) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "balidx_http_requests_total", Help: "Query requests by route, status and authentication result.",
		}, []string{"route", "status", "auth"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "balidx_http_request_duration_seconds", Help: "Query request latency by route.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}, []string{"route"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "balidx_auth_results_total", Help: "Authentication results: signed, anonymous, or the refusal code.",
		}, []string{"result"}),
		clients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "balidx_client_requests_total", Help: "Authenticated requests by client id.",
		}, []string{"client_id"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "balidx_rate_limited_total", Help: "Requests refused with 429, by quota.",
		}, []string{"quota"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "balidx_shed_total", Help: "Requests refused with 503 overloaded by the in-flight cap.",
		}),
	}
	m.memo.Store(&map[requestKey]*requestMetrics{})
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "balidx_balance_lookups_total", Help: "Address lookups by outcome: bloom_negative, cache_hit, cache_miss (read from bbolt).",
	}, []string{"outcome"})
	for src, name := range sourceNames {
		m.lookups[src] = lookups.WithLabelValues(name)
	}
	collectors := []prometheus.Collector{
		m.requests, m.latency, m.auth, m.clients, m.limited, lookups, m.shed,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "balidx_snapshot_reads_total", Help: "Address reads that reached bbolt.",
		}, func() float64 { return float64(snap.SnapshotReads()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "balidx_snapshot_unknown_reads_total", Help: "Single-address reads that reached bbolt for an account the snapshot lacks (Bloom false positives).",
		}, func() float64 { return float64(snap.UnknownReads()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "balidx_trusted_block", Help: "The trusted block answers are given at.",
		}, func() float64 {
			if v := snap.current(); v != nil {
				return float64(v.meta.Trusted.Number)
			}
			return -1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "balidx_withheld_tokens", Help: "Tokens whose balances are withheld from answers (/v1/status lists them with the reason).",
		}, func() float64 {
			if v := snap.current(); v != nil {
				return float64(v.meta.Withheld)
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "balidx_trusted_block_timestamp_seconds", Help: "Timestamp of the trusted block (staleness = now − this).",
		}, func() float64 {
			if v := snap.current(); v != nil {
				return float64(v.meta.Trusted.Timestamp)
			}
			return 0
		}),
	}
	if accessLog != nil {
		for kind, n := range map[string]func(accesslog.Stats) uint64{
			"full":    func(st accesslog.Stats) uint64 { return st.Full },
			"folded":  func(st accesslog.Stats) uint64 { return st.Folded },
			"summary": func(st accesslog.Stats) uint64 { return st.Summaries },
			"dropped": func(st accesslog.Stats) uint64 { return st.Dropped },
		} {
			collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "balidx_access_log_lines_total", ConstLabels: prometheus.Labels{"kind": kind},
				Help: "Access log lines by what became of them: full (logged in full), folded (into a summary), summary (summary lines), dropped (lost: the sink was behind).",
			}, func() float64 { return float64(n(accessLog.Stats())) }))
		}
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe measures and logs every request: the metrics above, and one
// access-log line with what seed chapter 1 asks for (client IP, user agent,
// client id, authentication result, signature validity, latency, snapshot
// reads). Secrets and signatures are never logged.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := requests.Get().(*request)
		*r = request{Context: c}
		defer func() {
			*r = request{}
			requests.Put(r)
		}()
		err := next(r)
		status := c.Response().Status
		if err != nil {
			status = toAPIError(err).Status
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		res := r.auth
		if res.status == "" {
			res.status = "none" // refused before authentication (shed, CORS)
		}
		end := time.Now()
		elapsed := end.Sub(start)
		m := s.metrics
		key := requestKey{route: route, status: statusText(status), auth: res.status}
		if res.sigValid {
			key.client = res.clientID
		}
		rm := m.byRequest(key)
		rm.requests.Inc()
		rm.latency.Observe(elapsed.Seconds())
		rm.auth.Inc()
		if rm.client != nil {
			rm.client.Inc()
		}
		if l := s.cfg.AccessLog; l != nil {
			l.Write(&accesslog.Line{
				Time: end, Method: c.Request().Method, Route: route, Status: status, Latency: elapsed,
				ClientIP: r.RealIP(), UserAgent: c.Request().UserAgent(), ClientID: res.clientID,
				AuthStatus: res.status, SignatureValid: res.sigValid, BackendCalls: r.reads,
			})
		}
		return err
	}
}

// statusText is strconv.Itoa without an allocation for the usual codes.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 304:
		return "304"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 429:
		return "429"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}
