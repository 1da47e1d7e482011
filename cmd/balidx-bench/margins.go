package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// margins are the loads of issue 18's targets: balidx's known-address
// answers, signed and anonymous, against the bare handler, and balidx with
// its access log against without. A second bare handler sends balidx's
// header fields too (ETag, Cache-Control, Vary and the block's two, which
// API.md's answer carries): against it, what balidx's work costs apart
// from net/http writing those fields. Each is a ratio of close configurations,
// and this host's noise is as large as the differences between them, so
// they are measured apart from the other loads:
//   - The host's speed drifts over minutes: the bare handler made 28k
//     requests/s in one pass of run BN and 44k in the next. So the
//     loads are run in rounds, one after the other, and a margin is the
//     median of its rounds' ratios: each compares runs seconds apart.
//   - A process keeps its own speed for its life, up to ~15% off its twin
//     (two identical balidx tiers of one run). So each configuration runs
//     in several processes, a round on each in turn.
//   - The host freezes a CPU for 100 ms at a time: a run during which it
//     took more than maxSteal is made again (measureUnstolen).
//   - A process's first run of a load is not counted: it grows the replay
//     cache and the heap from nothing, as a node does once, not in its
//     steady state (in three runs of six rounds that counted it, the first
//     round's signed ratio was the lowest of six in two: 0.60 and 0.64).
type margins struct {
	bare, fielded, signed, anonymous, quiet *target
	// The processes: bares serve the bare handler, fieldeds the one with
	// balidx's header fields, nodes the signed and anonymous loads (balidx
	// with its access log), quiets the log off.
	bares, fieldeds, nodes, quiets []*proc
	repeated                       int // runs made again for the host's steal
	stolen                         int // runs kept with over maxSteal, every attempt stolen
}

func (m *margins) targets() []*target {
	return []*target{m.bare, m.fielded, m.signed, m.anonymous, m.quiet}
}

// use puts the loads on the processes of round.
func (m *margins) use(round int) {
	m.bare.server = m.bares[round%len(m.bares)]
	m.fielded.server = m.fieldeds[round%len(m.fieldeds)]
	m.signed.server = m.nodes[round%len(m.nodes)]
	m.anonymous.server = m.signed.server
	m.quiet.server = m.quiets[round%len(m.quiets)]
}

// measure runs b.cfg.rounds rounds of the margins' loads, each round in the
// order of the last turned by one, and leaves the loads on the first
// round's processes (the attack and the plot load those).
func (m *margins) measure(ctx context.Context, b *bench) error {
	defer m.use(0)
	loads := m.targets()
	for i := range m.nodes {
		m.use(i)
		for _, t := range loads {
			r, err := b.measure(ctx, t, b.cfg.conns, b.cfg.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			fmt.Fprintf(b.out, "first run, not counted  %-45s %8.0f req/s (processes %d)\n", t.name, r.rps, i+1)
		}
	}
	for round := range b.cfg.rounds {
		m.use(round)
		for i := range loads {
			t := loads[(round+i)%len(loads)]
			if round == 0 && b.cfg.profile != "" {
				switch t {
				case m.bare:
					b.profile = b.cfg.profile + ".bare"
				case m.signed:
					b.profile = b.cfg.profile
				case m.anonymous:
					b.profile = b.cfg.profile + ".anonymous"
				}
			}
			r, again, err := b.measureUnstolen(ctx, t)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			m.repeated += again
			if r.steal > maxSteal {
				m.stolen++
			}
			t.results = append(t.results, r)
			fmt.Fprintf(b.out, "round %d  %-45s %8.0f req/s  p99 %s  CPU a request: server %s µs, wrk %s µs  steal %v (runs made again: %d)\n",
				round+1, t.name, r.rps, r.p99.Round(time.Microsecond), us(r.serverCPU), us(r.loadCPU), r.steal, again)
		}
		fmt.Fprintf(b.out, "round %d  processes %d: signed ÷ bare %.2f, anonymous ÷ bare %.2f, log's cost (with ÷ without) %.2f; against the bare handler with balidx's header fields: signed %.2f, anonymous %.2f\n",
			round+1, round%len(m.nodes)+1, ratios(m.signed, m.bare)[round], ratios(m.anonymous, m.bare)[round], ratios(m.signed, m.quiet)[round],
			ratios(m.signed, m.fielded)[round], ratios(m.anonymous, m.fielded)[round])
	}
	return nil
}

// summarize adds the margins to the summary, with their rounds' spread.
func (m *margins) summarize(s *summary) {
	for _, r := range []struct {
		what   string
		ratios []float64
		want   float64 // 0: none (the breakdown's rows)
	}{
		{"balidx ÷ bare echo throughput (known addresses, signed; the defaults, access log on)", ratios(m.signed, m.bare), 0.85},
		{"balidx ÷ bare echo throughput (known addresses, anonymous; the defaults, access log on)", ratios(m.anonymous, m.bare), 0.9},
		{"access log's cost: balidx with it ÷ without (known addresses, signed)", ratios(m.signed, m.quiet), 0.97},
		{"balidx ÷ bare echo with balidx's header fields (known addresses, signed; the defaults): balidx's work alone", ratios(m.signed, m.fielded), 0},
		{"balidx ÷ bare echo with balidx's header fields (known addresses, anonymous; the defaults): balidx's work alone", ratios(m.anonymous, m.fielded), 0},
		{"bare echo with balidx's header fields ÷ without: what net/http's writing them costs", ratios(m.fielded, m.bare), 0},
	} {
		op := ">="
		if r.want == 0 {
			op = ""
		}
		s.add(fmt.Sprintf("%s, median of %d rounds (%.2f–%.2f)", r.what, len(r.ratios), slices.Min(r.ratios), slices.Max(r.ratios)), middle(r.ratios), op, r.want)
	}
	s.add(fmt.Sprintf("margins' runs made again because the host took over %v of CPU during them (steal)", maxSteal), float64(m.repeated), "", 0)
	s.add(fmt.Sprintf("margins' runs kept with over %v of steal (%d attempts each at most)", maxSteal, stealAttempts), float64(m.stolen), "", 0)
}

// ratios is a's throughput ÷ b's, round by round: each of the margins' loads
// has one result a round, in order.
func ratios(a, b *target) []float64 {
	v := make([]float64, len(a.results))
	for i := range v {
		v[i] = a.results[i].rps / b.results[i].rps
	}
	return v
}
