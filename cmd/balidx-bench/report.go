package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// middle is the median of v: of an even count, the mean of the two
// middle values.
func middle(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[n/2]
}

func median(rs []result) result {
	var m result
	pick := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		return middle(v)
	}
	dur := func(get func(result) time.Duration) time.Duration {
		return time.Duration(pick(func(r result) float64 { return float64(get(r)) }))
	}
	m.rps = pick(func(r result) float64 { return r.rps })
	m.p50 = dur(func(r result) time.Duration { return r.p50 })
	m.p99 = dur(func(r result) time.Duration { return r.p99 })
	m.p999 = dur(func(r result) time.Duration { return r.p999 })
	m.serverCPU = dur(func(r result) time.Duration { return r.serverCPU })
	m.loadCPU = dur(func(r result) time.Duration { return r.loadCPU })
	m.responseBytes = rs[0].responseBytes
	for _, r := range rs {
		m.non2xx += r.non2xx
		m.errs += r.errs
	}
	return m
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }

func ms(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }

// report prints the medians of every target against the bare handler and
// adds the ratios the targets name to the summary.
func report(w io.Writer, targets []*target, mt *margins, comparisons []comparison, cfg config, s *summary) {
	base := median(mt.bare.results)
	fmt.Fprintf(w, "\nwrk -t%d -c%d -d%s, medians of the %d margins' rounds (the first %d rows, %d processes each) and of %d passes (the others); wrk shares the 2 cores with the servers\n\n",
		wrkThreads, cfg.conns, cfg.duration, cfg.rounds, len(mt.targets()), cfg.processes, cfg.runs)
	fmt.Fprintf(w, "| target | req/s | calls/s | × bare | p50 | p99 | p99.9 | p99 ÷ bare | server CPU µs/req | wrk CPU µs/req | bytes/response | non-2xx | socket errors |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range targets {
		m := median(t.results)
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %s | %s | %s | %.2f | %s | %s | %d | %d | %d |\n", t.name, m.rps, m.rps*float64(max(1, t.calls)), m.rps/base.rps,
			ms(m.p50), ms(m.p99), ms(m.p999), float64(m.p99)/float64(base.p99), us(m.serverCPU), us(m.loadCPU), m.responseBytes, m.non2xx, m.errs)
	}
	mt.summarize(s)
	known := median(mt.signed.results)
	s.add("balidx p99 ÷ bare echo p99 (known addresses, signed; the defaults)", float64(known.p99)/float64(base.p99), "<=", 1.5)
	failed := 0
	for _, t := range targets {
		if strings.HasPrefix(t.name, "balidx") {
			m := median(t.results)
			failed += m.non2xx + m.errs
		}
	}
	s.add("balidx errors and non-2xx (every balidx load)", float64(failed), "<=", 0)
	for _, c := range comparisons {
		g, b := median(c.geth.results), median(c.balidx.results)
		op := ">="
		if c.want == 0 {
			op = ""
		}
		s.add(c.what+" (throughput)", b.rps/g.rps, op, c.want) // the same calls a request on both sides
		s.add(c.what+": p99 ÷ geth's", float64(b.p99)/float64(g.p99), "", 0)
		s.add(c.what+": geth server CPU per request ÷ balidx's", float64(g.serverCPU)/float64(b.serverCPU), "", 0)
		if c.geth.calls == 1 && c.balidx.calls == 0 {
			s.add("bare echo ÷ geth throughput, "+strings.TrimPrefix(c.geth.name, "geth eth_getBalance, ")+" (the ceiling of any handler on net/http here)", base.rps/g.rps, "", 0)
		}
	}
}

// summary is the closing table: every measured ratio against its target.
type summary struct{ rows []summaryRow }

type summaryRow struct {
	what  string
	value float64
	op    string // ">=", "<=" or "" (no target)
	want  float64
}

func (s *summary) add(what string, value float64, op string, want float64) {
	s.rows = append(s.rows, summaryRow{what, value, op, want})
}

func (s *summary) print(w io.Writer) {
	fmt.Fprintf(w, "\nSummary\n\n| measure | value | target | met |\n|---|---|---|---|\n")
	for _, r := range s.rows {
		target, met := "", ""
		if r.op != "" {
			target = r.op + " " + strconv.FormatFloat(r.want, 'g', -1, 64)
			met = "no"
			if r.op == ">=" && r.value >= r.want || r.op == "<=" && r.value <= r.want {
				met = "yes"
			}
		}
		value := fmt.Sprintf("%.2f", r.value)
		if r.op != "" && r.value < 10 { // a third decimal: 0.895 is not "0.90" against 0.9
			value = fmt.Sprintf("%.3f", r.value)
		}
		if r.value >= 100 || r.value == float64(int64(r.value)) {
			value = fmt.Sprintf("%.0f", r.value)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.what, value, target, met)
	}
}

var reBench = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// addGoBench folds medians of `go test -bench` lines into the summary.
func (s *summary) addGoBench(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	metrics := map[string][]float64{} // "name unit" → values
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := reBench.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err == nil {
				metrics[m[1]+" "+fields[i+1]] = append(metrics[m[1]+" "+fields[i+1]], v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	get := func(key string) (float64, bool) {
		v := metrics[key]
		if len(v) == 0 {
			return 0, false
		}
		return middle(v), true
	}
	add := func(what, key, op string, want float64) {
		if v, ok := get(key); ok {
			s.add(what, v, op, want)
		}
	}
	add("catch-up apply into bbolt, changes/s", "Apply/catch-up changes/s", ">=", 200_000)
	add("live apply into bbolt (one block a transaction), changes/s", "Apply/live changes/s", "", 0)
	add("block trusted → balances served, p50 ms", "Pipeline ms-block-to-served-p50", "<=", 50)
	add("block trusted → balances served, p90 ms", "Pipeline ms-block-to-served-p90", "", 0)
	if echo, ok := get("BareEcho allocs/op"); ok {
		for _, path := range []struct{ name, bench string }{
			{"signed, cached", "BalanceSignedCacheHit"},
			{"signed, drawn from 100k cached accounts", "BalanceSignedHotSet"},
			{"anonymous, cached", "BalanceAnonymousCacheHit"},
			{"anonymous, unknown address", "BalanceAnonymousBloomNegative"},
		} {
			if v, ok := get(path.bench + " allocs/op"); ok {
				s.add("allocations per request beyond echo's, "+path.name, v-echo, "<=", 3)
			}
		}
	}
	add("access log, one line in full, ns", "Write ns/op", "", 0)
	add("access log, one line in full, allocations", "Write allocs/op", "<=", 0)
	add("access log, one line folded, ns", "WriteFolded ns/op", "", 0)
	add("handler chain for a signed cached answer, ns (no network)", "BalanceSignedCacheHit ns/op", "", 0)
	add("the same, drawn at random from 100k cached accounts (CPU caches missed), ns", "BalanceSignedHotSet ns/op", "", 0)
	add("POST /rpc, one eth_getBalance (anonymous, cached), ns (no network)", "RPCGetBalance ns/op", "", 0)
	add("POST /rpc, one eth_getBalance, allocations", "RPCGetBalance allocs/op", "", 0)
	if v, ok := get("RPCGetBalanceBatch100 ns/op"); ok {
		s.add("POST /rpc, a batch of 100 eth_getBalance, ns a call (no network)", v/100, "", 0)
	}
	if bloom, ok := get("BloomRebuild bytes/account"); ok {
		s.add("Bloom filter, MB per million accounts", bloom, "", 0)
		s.add("cache bound, MB (whatever the count)", 64, "", 0)
	}
	add("replay cache, bytes per remembered nonce", "NonceCacheBytesPerPair bytes/pair", "", 0)
	return nil
}
