package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/balidx/balidx/events"
	"github.com/balidx/balidx/events/eventstest"
	"github.com/balidx/balidx/internal/poll"
)

// Three replicas exchange usage over a real NATS server; a client sending
// three times its quota round-robin over them is accepted at its quota,
// within 10% over a 10 s window, once they see each other. With NATS gone,
// each falls back to a third of the quota and says so.
func TestOneQuotaAcrossReplicas(t *testing.T) {
	const perSecond, burst = 20, 20
	clients := &Clients{Clients: []Client{{ID: "wallet", Secrets: []string{secret1}, Rate: perSecond, Burst: burst}}}
	first := eventstest.MustLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var replicas []*Server
	for i := range 3 {
		l := first
		if i > 0 { // a connection of its own, as a replica process has
			var err error
			if l, err = events.Open(ctx, events.Config{URL: first.URL(), Name: fmt.Sprint("replica-", i)}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
		}
		s, _ := mustServer(t, 0, Config{Clients: clients, Usage: l.UsageExchange(), Replica: fmt.Sprint("replica-", i),
			Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { s.Serve(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		replicas = append(replicas, s)
	}
	poll.Until(t, 10*time.Second, func() error {
		for i, s := range replicas {
			if n := s.sharer.replicas.Load(); n != 3 || !s.sharer.global.Load() {
				return fmt.Errorf("replica %d sees %d replicas (global %v)", i, n, s.sharer.global.Load())
			}
		}
		return nil
	})

	// Three times the quota, round-robin, for 12 s; the first 2 s spend
	// the bursts and let the shares settle.
	const warmup, window = 2 * time.Second, 10 * time.Second
	tick := time.NewTicker(time.Second / (3 * perSecond))
	defer tick.Stop()
	start := time.Now()
	accepted, sent := 0, 0
	for i := 0; time.Since(start) < warmup+window; i++ {
		<-tick.C
		a := req{target: "/v1/balances/" + holder.Hex(), client: "wallet", secret: secret1, ts: time.Now().Unix()}.send(t, replicas[i%3])
		if a.status != 200 && a.status != 429 {
			t.Fatalf("got %d %s", a.status, a.raw)
		}
		if time.Since(start) >= warmup {
			sent++
			if a.status == 200 {
				accepted++
			}
		}
	}
	rate := float64(accepted) / window.Seconds()
	t.Logf("sent %d, accepted %d in %s: %.1f/s against a quota of %d/s", sent, accepted, window, rate, perSecond)
	if rate < 0.9*perSecond || rate > 1.1*perSecond {
		t.Fatalf("accepted %.1f requests a second over three replicas, want %d ± 10%%", rate, perSecond)
	}

	// NATS gone: each replica falls back to a third, and says so.
	first.Close()
	poll.Until(t, 10*time.Second, func() error {
		for i, s := range replicas {
			if s.sharer.global.Load() {
				return fmt.Errorf("replica %d still says global", i)
			}
		}
		return nil
	})
	for i, s := range replicas {
		third := float64(perSecond) / 3
		if l := float64(s.guard.signer.clients.Load().byID["wallet"].limiter.Limit()); l < third-0.01 || l > third+0.01 {
			t.Fatalf("replica %d without NATS: %v a second, want %v", i, l, float64(perSecond)/3)
		}
	}
}

// A report's rates are demands: a negative or absurd one is dropped, and
// a report naming this replica, or too large, is ignored.
func TestUsageReportsAreChecked(t *testing.T) {
	sh := newSharer("me", nil, nil, time.Now)
	sh.receive([]byte(`{"replica":"other","rates":{"a":-5,"b":1e12,"c":3}}`))
	sh.receive([]byte(`{"replica":"me","rates":{"a":1}}`))
	sh.receive(make([]byte, maxReportBytes+1))
	p, ok := sh.peers["other"]
	if len(sh.peers) != 1 || !ok || len(p.rates) != 1 || p.rates["c"] != 3 {
		t.Fatalf("peers %+v", sh.peers)
	}
}
