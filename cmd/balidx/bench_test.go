package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
)

// BenchmarkPipeline measures the whole pipeline on the simulated chain:
// catch-up (blocks/s from an empty stream to the head) and live latency
// (from a block's commit on the chain to its balances being served, with
// confirmations 0 so that the commit makes it trusted). Run it with
// -benchtime=1x (make bench).
func BenchmarkPipeline(b *testing.B) {
	for b.Loop() {
		ctx := context.Background()
		demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 20, Seed: 11, Listen: true})
		if err != nil {
			b.Fatal(err)
		}
		const backlog = 300
		steps(b, demo, backlog)
		head, _ := demo.Chain.Client.BlockNumber(ctx)

		start := time.Now()
		bx := startBalidx(b, "run", "--rpc", demo.Chain.WSEndpoint(), "--data", b.TempDir(), "--confirmations", "0")
		waitTrusted(b, bx, head, time.Millisecond)
		catchUp := time.Since(start)

		var lat []time.Duration
		for range 30 {
			if _, err := demo.Step(ctx); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			head++
			waitTrusted(b, bx, head, 200*time.Microsecond)
			lat = append(lat, time.Since(t0))
		}
		bx.stop(b)
		demo.Close()
		slices.Sort(lat)
		b.ReportMetric(float64(head-30+1)/catchUp.Seconds(), "catchup-blocks/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-block-to-served-p50")
		b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-block-to-served-p90")
	}
}

func waitTrusted(tb testing.TB, b *instance, n uint64, poll time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b.checkRunning(tb)
		var st query.Status
		if err := getJSON("http://"+b.http+"/v1/status", &st); err == nil && st.Trusted.Number >= n {
			return
		}
		if time.Now().After(deadline) {
			var st query.Status
			_ = getJSON("http://"+b.http+"/v1/status", &st)
			tb.Fatalf("block %d not served after 2 minutes; status %+v\n%s", n, st, b.stderr)
		}
		time.Sleep(poll)
	}
}
