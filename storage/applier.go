package storage

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/balidx/balidx"
	"github.com/prometheus/client_golang/prometheus"
)

// Source is where the applier reads a chain's blocks: whole, in order,
// from a stream sequence on; events.Log is one (its Blocks says how fn is
// called: d is nil when nothing more has come and what is held should be
// applied). The applier declares it so that storage knows nothing of NATS.
type Source interface {
	Blocks(ctx context.Context, chainID, fromSeq uint64, fn func(d *balidx.Delta, more bool, lag uint64, ack func()) error) error
}

// ApplierConfig configures an Applier.
type ApplierConfig struct {
	Store   *Store
	Source  Source
	ChainID uint64
	// MaxBatchChanges bounds one catch-up transaction; default 50,000.
	// Live, a transaction holds what has arrived: usually one block.
	MaxBatchChanges int
	// OnApplied, if set, is called after every commit, before the acks.
	OnApplied func(Applied)
	// FromSeq, if set, reads the stream from there instead of from the
	// stored position + 1; what is already applied is recognised and skipped.
	FromSeq uint64
	// Metrics, if set, receives the applier's metrics.
	Metrics prometheus.Registerer
}

// Applier reads the chain's blocks from the source, in order, from the
// position stored in the snapshot, and applies them.
type Applier struct {
	cfg     ApplierConfig
	blocks  prometheus.Counter
	changes prometheus.Counter
	lag     prometheus.Gauge
	lagNow  atomic.Uint64
}

// NewApplier validates cfg.
func NewApplier(cfg ApplierConfig) (*Applier, error) {
	if cfg.Store == nil || cfg.Source == nil || cfg.ChainID == 0 {
		return nil, fmt.Errorf("applier: store, source and chain id are required")
	}
	if cfg.MaxBatchChanges == 0 {
		cfg.MaxBatchChanges = 50_000
	}
	a := &Applier{
		cfg:     cfg,
		blocks:  prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_applier_blocks_total", Help: "Blocks applied to the snapshot."}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "balidx_applier_changes_total", Help: "Balance changes applied to the snapshot."}),
		lag:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "balidx_applier_stream_lag_messages", Help: "Messages on the stream after the last one applied."}),
	}
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{a.blocks, a.changes, a.lag} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

// Lag is how many messages followed on the stream the last block applied.
func (a *Applier) Lag() uint64 { return a.lagNow.Load() }

// Run applies until ctx ends or the stream and the snapshot disagree.
// Blocks are collected while more have arrived (up to MaxBatchChanges) and
// applied in one transaction; their messages are acknowledged only after
// it commits. A crash before that redelivers them, and those already
// committed are recognised by their sequence and skipped.
func (a *Applier) Run(ctx context.Context) error {
	m, err := a.cfg.Store.Meta()
	if err != nil {
		return err
	}
	committed := m.StreamSeq
	from := committed + 1
	if a.cfg.FromSeq != 0 {
		from = a.cfg.FromSeq
	}
	var batch []balidx.Delta
	var acks []func()
	changes := 0
	err = a.cfg.Source.Blocks(ctx, a.cfg.ChainID, from, func(d *balidx.Delta, more bool, lag uint64, ack func()) error {
		if d != nil {
			if d.LastSeq <= committed {
				ack() // redelivered after its commit
				return nil
			}
			batch, acks, changes = append(batch, *d), append(acks, ack), changes+len(d.Changes)
			if more && changes < a.cfg.MaxBatchChanges {
				return nil // apply it with what has arrived after it
			}
		}
		if len(batch) == 0 {
			return nil
		}
		res, err := a.cfg.Store.Apply(batch)
		if err != nil {
			return err
		}
		committed = res.Meta.StreamSeq
		a.blocks.Add(float64(res.Blocks))
		a.changes.Add(float64(res.Changes))
		a.lag.Set(float64(lag))
		a.lagNow.Store(lag)
		if a.cfg.OnApplied != nil {
			a.cfg.OnApplied(res)
		}
		for _, ack := range acks {
			ack()
		}
		batch, acks, changes = batch[:0], acks[:0], 0
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
