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
	retries   prometheus.Counter
	// The publishing lease (active.go).
	active, activeSince prometheus.Gauge
	standDowns          prometheus.Counter
	// What the token rules cost (tokens.go).
	profiles, preimageTraces, refreshes, refreshedHolders prometheus.Counter
	withheld                                              *prometheus.CounterVec
	// A seeded start (seed.go).
	seedAccounts prometheus.Counter
	seedHolders  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, node *Node) (*metrics, error) {
	m := &metrics{
		head:             prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_head_block", Help: "Latest block the node reported."}),
		published:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_published_block", Help: "Last block published to the stream."}),
		violation:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_trust_violation", Help: "1 while publishing is stopped by a reorg deeper than the trust policy."}),
		blocks:           prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_blocks_published_total", Help: "Blocks published."}),
		changes:          prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_changes_published_total", Help: "Balance changes published."}),
		failures:         prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_failures_total", Help: "Attempts that failed and were retried (node or NATS errors)."}),
		retries:          prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_publish_retries_total", Help: "Publishes of a part sent again because NATS did not acknowledge it (a leader election, a node lost), with the same message id."}),
		active:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_active", Help: "1 while this indexer holds the publishing lease and publishes; 0 while it stands by."}),
		activeSince:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_indexer_active_since_seconds", Help: "When this indexer last took the publishing lease (Unix time)."}),
		standDowns:       prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_stand_downs_total", Help: "Times this indexer stopped publishing because its lease was lost or the stream refused it (another indexer published)."}),
		profiles:         prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_token_profiles_total", Help: "Traced balanceOf calls that learn what a token's balances depend on."}),
		preimageTraces:   prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_token_preimage_traces_total", Help: "Blocks traced for KECCAK256 preimages, to name holders whose balance slot changed without a Transfer log."}),
		refreshes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_token_refreshes_total", Help: "Times every known holder of a token was re-read after state all its balances depend on changed (a rebase)."}),
		refreshedHolders: prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_token_refreshed_holders_total", Help: "Holders re-read by those refreshes."}),
		seedAccounts:     prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_seed_accounts_total", Help: "Accounts of the seed block's state read from the node and published (a seeded start)."}),
		seedHolders:      prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_indexer_seed_holders_total", Help: "Holders of the seeded tokens whose balance at the seed's block was read (a seeded start)."}),
		withheld:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "balidx_indexer_tokens_withheld_total", Help: "Tokens withheld (their balances no longer served), by reason."}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	breaker := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "balidx_indexer_node_breaker_state", Help: "Circuit breaker in front of the node: 0 closed, 1 half-open (probing), 2 open.",
	}, func() float64 { return float64(node.BreakerState()) })
	for _, c := range []prometheus.Collector{m.head, m.published, m.violation, m.blocks, m.changes, m.failures, m.retries, m.active, m.activeSince, m.standDowns, breaker, node.latency, node.errors,
		m.profiles, m.preimageTraces, m.refreshes, m.refreshedHolders, m.withheld, m.seedAccounts, m.seedHolders} {
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

// tokenWork adds what one block's token rules cost, from the deriver's
// counts before and after it.
func (m *metrics) tokenWork(before, after tokenStats) {
	m.profiles.Add(float64(after.profiles - before.profiles))
	m.preimageTraces.Add(float64(after.preimageTraces - before.preimageTraces))
	m.refreshes.Add(float64(after.refreshes - before.refreshes))
	m.refreshedHolders.Add(float64(after.refreshedHolders - before.refreshedHolders))
}
