package indexer

import "github.com/prometheus/client_golang/prometheus"

// metrics of the indexer, for operators: where the chain is, where
// publishing is, and whether it stopped on a trust violation.
type metrics struct {
	head      prometheus.Gauge
	published prometheus.Gauge
	violation prometheus.Gauge
	blocks    prometheus.Counter
	changes   prometheus.Counter
	failures  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, node *Node) (*metrics, error) {
	m := &metrics{
		head:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_head_block", Help: "Latest block the node reported."}),
		published: prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_published_block", Help: "Last block published to the stream."}),
		violation: prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_trust_violation", Help: "1 while publishing is stopped by a reorg deeper than the trust policy."}),
		blocks:    prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_blocks_published_total", Help: "Blocks published."}),
		changes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_changes_published_total", Help: "Balance changes published."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_failures_total", Help: "Attempts that failed and were retried (node or NATS errors)."}),
	}
	if reg == nil {
		return m, nil
	}
	breaker := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "balidx_indexer_node_breaker_state", Help: "Circuit breaker in front of the node: 0 closed, 1 half-open (probing), 2 open.",
	}, func() float64 { return float64(node.BreakerState()) })
	for _, c := range []prometheus.Collector{m.head, m.published, m.violation, m.blocks, m.changes, m.failures, breaker, node.latency, node.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RegisterMetrics registers the indexer's metrics for node on reg, as New
// does (for tools that check what is exported).
func RegisterMetrics(reg prometheus.Registerer, node *Node) error {
	_, err := newMetrics(reg, node)
	return err
}
