package query

import (
	"encoding/json"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// UsageExchange carries usage reports between the query replicas of a
// deployment (events.Log does, over NATS); here a report is only bytes.
type UsageExchange interface {
	PublishUsage(report []byte) error
	// SubscribeUsage calls fn with every replica's reports, this one's too.
	SubscribeUsage(fn func(report []byte)) (stop func(), err error)
	// Connected reports whether reports can flow now.
	Connected() bool
}

// The exchange's timing: every shareInterval a replica reports what each
// signed client asked of it, and re-divides every client's quota; a
// replica not heard from for peerTimeout is gone.
const (
	shareInterval = 200 * time.Millisecond
	peerTimeout   = 2 * time.Second
	// maxReportBytes and maxPeers bound what reports can make this replica
	// hold.
	maxReportBytes = 256 << 10
	maxPeers       = 64
)

// sharer makes a signed client's quota one quota across the replicas
// (seed chapter 3.3): each replica takes the share of the client's rate
// and burst that its part of the client's recent demand calls for, so
// that the shares add up to the quota whatever the load balancer does.
// A replica that sees no traffic of a client keeps a small share (eps) so
// that a client's first requests there are not refused outright.
//
// When reports cannot flow (NATS unreachable), each replica falls back to
// rate ÷ the replicas it last saw, and says so (balidx_quota_global 0).
type sharer struct {
	self   string
	ex     UsageExchange
	signer *signer
	now    func() time.Time

	mu       sync.Mutex
	peers    map[string]peerUsage
	lastSeen int // replicas (this one included) when reports last flowed

	global   atomic.Bool  // reports flow: shares follow demand
	replicas atomic.Int64 // replicas seen, this one included
}

type peerUsage struct {
	at    time.Time
	rates map[string]float64 // attempts a second, by client id
}

// usageReport is one replica's report.
type usageReport struct {
	Replica string             `json:"replica"`
	Rates   map[string]float64 `json:"rates"`
}

func newSharer(self string, ex UsageExchange, s *signer, now func() time.Time) *sharer {
	sh := &sharer{self: self, ex: ex, signer: s, now: now, peers: map[string]peerUsage{}, lastSeen: 1}
	sh.replicas.Store(1)
	return sh
}

// receive records a peer's report.
func (sh *sharer) receive(data []byte) {
	if len(data) > maxReportBytes {
		return
	}
	var r usageReport
	if json.Unmarshal(data, &r) != nil || r.Replica == "" || r.Replica == sh.self {
		return
	}
	for id, v := range r.Rates {
		if !(v >= 0 && v <= 1e9) { // NaN, negative or absurd: not a demand
			delete(r.Rates, id)
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.peers[r.Replica]; !ok && len(sh.peers) >= maxPeers {
		return
	}
	sh.peers[r.Replica] = peerUsage{at: sh.now(), rates: r.Rates}
}

// run reports and re-divides every shareInterval until stop is closed.
func (sh *sharer) run(stop <-chan struct{}) {
	t := time.NewTicker(shareInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			sh.tick()
		}
	}
}

// tick reports this replica's demand since the last tick and sets every
// client's share.
func (sh *sharer) tick() {
	now := sh.now()
	clients := sh.signer.clients.Load()
	mine := make(map[string]float64)
	for id, e := range clients.byID {
		if n := e.attempts.Swap(0); n > 0 {
			mine[id] = float64(n) / shareInterval.Seconds()
		}
	}
	flowing := sh.ex.Connected()
	if flowing {
		if data, err := json.Marshal(usageReport{Replica: sh.self, Rates: mine}); err == nil {
			flowing = sh.ex.PublishUsage(data) == nil
		}
	}
	sh.global.Store(flowing)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if flowing {
		for id, p := range sh.peers {
			if now.Sub(p.at) > peerTimeout {
				delete(sh.peers, id)
			}
		}
		sh.lastSeen = 1 + len(sh.peers)
	}
	n := float64(sh.lastSeen)
	sh.replicas.Store(int64(sh.lastSeen))
	for id, e := range clients.byID {
		share := 1 / n
		if flowing {
			// Demand in requests a second; eps, a tenth of an even share of
			// the quota, keeps an idle replica's share from being zero.
			eps := e.rate / n / 10
			total := mine[id] + n*eps
			for _, p := range sh.peers {
				total += p.rates[id]
			}
			if total > 0 {
				share = (mine[id] + eps) / total
			}
		}
		e.limiter.SetLimitAt(now, rate.Limit(e.rate*share))
		e.limiter.SetBurstAt(now, max(1, int(math.Ceil(float64(e.burst)*share))))
	}
}

func (sh *sharer) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "balidx_quota_global", Help: "1 while replicas exchange usage and each client's quota is one across them; 0 while this replica falls back to rate ÷ the replicas it last saw.",
		}, func() float64 {
			if sh.global.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "balidx_quota_replicas", Help: "Query replicas sharing the clients' quotas, this one included.",
		}, func() float64 { return float64(sh.replicas.Load()) }),
	}
}
