package query

import (
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// Default limits of the guard.
const (
	DefaultMaxInFlight     = 512
	defaultFailedAuthRate  = 1.0 // per second and client IP
	defaultFailedAuthBurst = 10
	limiterTableSize       = 100_000 // buckets per table (≈ 10 MB)
)

// guard is the query tier's front door, in the order a request meets it:
// the in-flight cap (load shedding), CORS, then authentication and quotas.
type guard struct {
	now      func() time.Time
	inFlight inFlight
	cors     *cors
	signer   *signer
	anonIP   atomic.Pointer[limiterTable] // anonymous callers, per IP; nil: refused
	failedIP *limiterTable                // failed authentications, per IP
	metrics  *metrics
}

func newGuard(cfg *Config, m *metrics) *guard {
	clients := cfg.Clients
	if clients == nil {
		clients = &Clients{}
	}
	g := &guard{
		now:      cfg.Now,
		cors:     newCORS(cfg.CORSOrigins),
		signer:   newSigner(clients, cfg.SignatureWindow, cfg.MaxNonces),
		failedIP: newLimiterTable("auth-failures", defaultFailedAuthRate, defaultFailedAuthBurst, limiterTableSize),
		metrics:  m,
	}
	g.inFlight.max.Store(int64(cfg.MaxInFlight))
	g.setAnonymous(clients.Anonymous)
	return g
}

func (g *guard) setAnonymous(a Anonymous) {
	var t *limiterTable
	if a.Enabled {
		t = newLimiterTable("anonymous", a.Rate, a.Burst, limiterTableSize)
	}
	g.anonIP.Store(t)
}

// reload installs a new clients file.
func (g *guard) reload(c *Clients) {
	g.signer.load(c)
	g.setAnonymous(c.Anonymous)
}

// middleware refuses what must not reach a handler.
func (g *guard) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !g.inFlight.enter() {
			g.metrics.shed.Inc()
			return errOverloaded
		}
		defer g.inFlight.leave()
		if done, err := g.cors.check(c); done || err != nil {
			return err
		}
		res, err := g.authenticate(c)
		setAuth(c, res)
		if err != nil {
			return err
		}
		return next(c)
	}
}

func (g *guard) authenticate(c echo.Context) (authResult, error) {
	now := g.now()
	req := c.Request()
	ip := c.RealIP()
	h := c.Response().Header()
	if !hasCredentials(req.Header) {
		anon := g.anonIP.Load()
		if anon == nil {
			return authResult{status: "missing_credentials"}, errMissingCredentials
		}
		if err := (quota{anon.name, anon.get(ip)}).take(now, h); err != nil {
			g.metrics.limited.WithLabelValues("anonymous").Inc()
			return authResult{status: "rate_limited"}, err
		}
		return authResult{status: "anonymous"}, nil
	}
	sr, err := readSignedRequest(c)
	if err != nil {
		return authResult{status: "invalid_request"}, err
	}
	client, err := g.signer.verify(&sr, now)
	if err != nil {
		res := authResult{status: toAPIError(err).Code, clientID: boundedID(sr.clientID)}
		// Failures are counted per IP; past the allowance the caller gets
		// 429 and Retry-After instead of the reason, so guessing slows down
		// and learns nothing. A valid signature is never held back by its
		// neighbours' failures: clients behind one NAT stay independent.
		failures := quota{g.failedIP.name, g.failedIP.get(ip)}
		if limited := failures.take(now, h); limited != nil {
			g.metrics.limited.WithLabelValues(failures.name).Inc()
			res.status = "rate_limited"
			return res, limited
		}
		return res, err
	}
	res := authResult{status: "signed", clientID: client.id, sigValid: true}
	if err := (quota{"client", client.limiter}).take(now, h); err != nil {
		g.metrics.limited.WithLabelValues("client").Inc()
		res.status = "rate_limited"
		return res, err
	}
	fresh, err := g.signer.nonces.add(client.id, sr.nonce, sr.unix, now)
	if err != nil {
		return res, err
	}
	if !fresh {
		res.status = "replayed_request"
		return res, errReplayedRequest
	}
	return res, nil
}

// boundedID keeps an unknown client id fit for a log line.
func boundedID(id string) string {
	if len(id) > 64 || !clientIDPattern.MatchString(id) {
		return "(invalid)"
	}
	return id
}
