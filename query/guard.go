package query

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Default limits of the guard.
const (
	DefaultMaxInFlight     = 512
	defaultFailedAuthRate  = 1.0 // per second and client IP
	defaultFailedAuthBurst = 10
	limiterTableSize       = 100_000 // buckets per table (≈ 10 MB)
)

// guard is the query tier's front door, in the order a request meets it:
// the request's framing, CORS, who the caller is (from the headers alone),
// the caller's throttles, the body, the signature, quotas and nonces, and
// only then a serving slot of the in-flight cap, within the caller's share.
// A caller that has not proved who it is never holds a slot: a slow body
// or a flood of bad signatures cannot shut the others out.
type guard struct {
	now      func() time.Time
	inFlight *inFlight
	cors     *cors
	signer   *signer
	anonIP   atomic.Pointer[limiterTable] // anonymous callers, per IP; nil: refused
	failedIP *limiterTable                // failed authentications, per IP
	metrics  *metrics
}

func newGuard(cfg *Config, m *metrics) (*guard, error) {
	clients := cfg.Clients
	if clients == nil {
		clients = &Clients{}
	}
	sg, err := newSigner(clients, cfg.SignatureWindow, cfg.MaxNonces)
	if err != nil {
		return nil, err
	}
	g := &guard{
		now:      cfg.Now,
		inFlight: newInFlight(cfg.MaxInFlight, cfg.MaxInFlightPerIP, cfg.MaxInFlightPerClient),
		cors:     newCORS(cfg.CORSOrigins),
		signer:   sg,
		failedIP: newLimiterTable("auth-failures", defaultFailedAuthRate, defaultFailedAuthBurst, limiterTableSize),
		metrics:  m,
	}
	g.setAnonymous(clients.Anonymous)
	return g, nil
}

func (g *guard) setAnonymous(a Anonymous) {
	var t *limiterTable
	if a.Enabled {
		t = newLimiterTable("anonymous", a.Rate, a.Burst, limiterTableSize)
	}
	g.anonIP.Store(t)
}

// collectors are the guard's limits and how full they are, as metrics.
func (g *guard) collectors() []prometheus.Collector {
	gauge := func(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	const maxHelp = "Requests served at once at most: in all, of one signed client, of one anonymous IP."
	n := g.signer.nonces
	return []prometheus.Collector{
		gauge("balidx_in_flight", "Requests being served.", nil, func() float64 { return float64(g.inFlight.n.Load()) }),
		gauge("balidx_in_flight_max", maxHelp, prometheus.Labels{"scope": "total"}, func() float64 { return float64(g.inFlight.max) }),
		gauge("balidx_in_flight_max", maxHelp, prometheus.Labels{"scope": "client"}, func() float64 { return float64(g.inFlight.perClient) }),
		gauge("balidx_in_flight_max", maxHelp, prometheus.Labels{"scope": "ip"}, func() float64 { return float64(g.inFlight.perIP) }),
		gauge("balidx_replay_cache_pairs", "(client, nonce) pairs the replay cache holds.", nil, func() float64 { return float64(n.len()) }),
		gauge("balidx_replay_cache_max", "(client, nonce) pairs the replay cache may hold (--max-nonces).", nil, func() float64 { return float64(n.max) }),
		gauge("balidx_replay_cache_shares", "Pairs reserved by the shares of the clients in force.", nil, func() float64 {
			total := 0
			for _, e := range g.signer.clients.Load().byID {
				total += e.nonces.max
			}
			return float64(total)
		}),
	}
}

// reload installs a new clients file, unless the replay cache cannot hold
// its clients' shares (the previous one then stays).
func (g *guard) reload(c *Clients) error {
	if err := g.signer.load(c); err != nil {
		return err
	}
	g.setAnonymous(c.Anonymous)
	return nil
}

// middleware refuses what must not reach a handler.
func (g *guard) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		maxBody := int64(MaxBatchBody)
		if c.Path() == RPCRoute {
			maxBody = MaxRPCBody
		}
		if err := checkFraming(c.Request(), maxBody); err != nil {
			return err
		}
		if done, err := g.cors.check(c); done || err != nil {
			return err
		}
		res, slot, err := g.admit(c)
		requestOf(c).auth = res
		if err != nil {
			return err
		}
		defer g.inFlight.leave(slot)
		return next(c)
	}
}

// admit authenticates the request and takes its serving slot, or says why not.
func (g *guard) admit(c echo.Context) (authResult, *atomic.Int64, error) {
	now := g.now()
	req := c.Request()
	ip := c.RealIP()
	h := c.Response().Header()
	sr := signedHeaders(req)
	if !sr.hasCredentials() {
		anon := g.anonIP.Load()
		if anon == nil {
			return authResult{status: "missing_credentials"}, nil, errMissingCredentials
		}
		charged := quota{anon.name, anon.get(ip)}
		if err := charged.take(now, h); err != nil {
			g.metrics.limited.WithLabelValues("anonymous").Inc()
			return authResult{status: "rate_limited"}, nil, err
		}
		if _, err := readBody(req); err != nil {
			return authResult{status: "invalid_request"}, nil, err
		}
		slot := g.inFlight.ofIP(ip)
		if !g.inFlight.enter(slot, g.inFlight.perIP) {
			g.metrics.shed.Inc()
			return authResult{status: "anonymous"}, nil, errOverloaded
		}
		requestOf(c).charged = charged
		return authResult{status: "anonymous"}, slot, nil
	}
	client, err := g.signer.identify(&sr, now)
	if err != nil {
		err = g.failed(ip, now, h, err)
		return authResult{status: toAPIError(err).Code, clientID: boundedID(sr.clientID)}, nil, err
	}
	res := authResult{status: "invalid_signature", clientID: client.id}
	if req.ContentLength > 0 {
		// A body is read only from an address that has not used up its
		// failures: guessing (or a body that never comes) costs the caller
		// a header, not our time. A request without a body is checked
		// whatever its neighbours did: clients behind one NAT stay
		// independent, but their bodies wait for the allowance to refill.
		if g.failedIP.exhausted(ip, now) {
			err := g.failed(ip, now, h, errInvalidSignature)
			res.status = toAPIError(err).Code
			return res, nil, err
		}
		if sr.body, err = readBody(req); err != nil {
			err = g.failed(ip, now, h, err) // a body cut short or too slow is a failure too
			res.status = toAPIError(err).Code
			return res, nil, err
		}
	}
	if err := client.checkSignature(&sr); err != nil {
		err = g.failed(ip, now, h, err)
		res.status = toAPIError(err).Code
		return res, nil, err
	}
	res = authResult{status: "signed", clientID: client.id, sigValid: true}
	client.attempts.Add(1) // its demand, which the replicas share its quota by
	charged := quota{"client", client.limiter}
	if err := charged.take(now, h); err != nil {
		g.metrics.limited.WithLabelValues("client").Inc()
		res.status = "rate_limited"
		return res, nil, err
	}
	fresh, err := g.signer.nonces.add(client.id, sr.nonce, sr.unix, now, client.nonces)
	if err != nil {
		if toAPIError(err).Code == "rate_limited" {
			g.metrics.limited.WithLabelValues("replay-cache").Inc()
			res.status = "rate_limited"
		}
		return res, nil, err
	}
	if !fresh {
		res.status = "replayed_request"
		return res, nil, errReplayedRequest
	}
	if !g.inFlight.enter(client.inFlight, g.inFlight.perClient) {
		g.metrics.shed.Inc()
		return res, nil, errOverloaded
	}
	r := requestOf(c)
	r.charged, r.demand = charged, client.attempts
	return res, client.inFlight, nil
}

// failed counts an authentication failure of ip. Failures are counted per
// IP; past the allowance the caller gets 429 and Retry-After instead of the
// reason, so guessing slows down and learns nothing. A valid signature is
// never held back by its neighbours' failures: clients behind one NAT stay
// independent.
func (g *guard) failed(ip string, now time.Time, h http.Header, reason error) error {
	failures := quota{g.failedIP.name, g.failedIP.get(ip)}
	if limited := failures.take(now, h); limited != nil {
		g.metrics.limited.WithLabelValues(failures.name).Inc()
		return limited
	}
	return reason
}

// checkFraming refuses, before anything is read, a request whose body is
// not one this API takes: no body on GET (and no Transfer-Encoding at all:
// with Content-Length too it is a smuggling shape, RFC 9112 §6.1), and a
// POST body within maxBody (its route's) by its declared Content-Length — 413 at
// once, not after waiting for bytes that will be refused anyway. Each
// refusal closes the connection: what follows on it cannot be trusted.
func checkFraming(req *http.Request, maxBody int64) *Error {
	switch {
	case len(req.TransferEncoding) > 0:
		return errTransferEncoding
	case req.Method != http.MethodPost && req.ContentLength != 0:
		return errBodyNotTaken
	case req.ContentLength > maxBody:
		return errTooLarge
	}
	return nil
}

// boundedID keeps an unknown client id fit for a log line.
func boundedID(id string) string {
	if len(id) > 64 || !clientIDPattern.MatchString(id) {
		return "(invalid)"
	}
	return id
}
