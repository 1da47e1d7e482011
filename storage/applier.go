package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/balidx/balidx/events"
	"github.com/prometheus/client_golang/prometheus"
)

// ApplierConfig configures an Applier.
type ApplierConfig struct {
	Store   *Store
	Events  *events.Log
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

// Applier reads the chain's deltas from the stream, in order, from the
// position stored in the snapshot, and applies them.
type Applier struct {
	cfg     ApplierConfig
	blocks  prometheus.Counter
	changes prometheus.Counter
	lag     prometheus.Gauge
}

// NewApplier validates cfg.
func NewApplier(cfg ApplierConfig) (*Applier, error) {
	if cfg.Store == nil || cfg.Events == nil || cfg.ChainID == 0 {
		return nil, fmt.Errorf("applier: store, event log and chain id are required")
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

// pending is a block whose parts are arriving.
type pending struct {
	block Block
	msgs  []events.Msg
}

// Run applies until ctx ends or the stream and the snapshot disagree.
// Messages are acknowledged only after the transaction holding them commits;
// a crash before that redelivers them, and those already committed are
// recognised by their sequence and skipped. If the server loses the
// consumer, a new one starts after the last commit.
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
	for {
		err := a.consume(ctx, from, &committed)
		if !errors.Is(err, events.ErrConsumerLost) {
			return err
		}
		from = committed + 1
	}
}

// consume applies what one consumer delivers from seq from; committed is
// the stream sequence of the last commit, kept current.
func (a *Applier) consume(ctx context.Context, from uint64, committed *uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := a.cfg.Events.Consume(ctx, a.cfg.ChainID, from)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	lastSeq := *committed
	var cur *pending // a block still missing parts
	for {
		var batch []Block
		var acks []events.Msg
		changes := 0
		var pending uint64
		// Block for the first message, then take whatever else has arrived.
		for wait := true; ; wait = false {
			var msg events.Msg
			if wait {
				select {
				case <-ctx.Done():
					return nil
				case msg = <-msgs:
				}
			} else {
				select {
				case msg = <-msgs:
				default:
				}
				if msg.Delta == nil && msg.Err == nil {
					break // nothing more has arrived
				}
			}
			if errors.Is(msg.Err, events.ErrConsumerLost) {
				return msg.Err
			}
			if msg.Err != nil {
				return fmt.Errorf("%w: stream seq %d: %v", ErrPoisonedStream, msg.Seq, msg.Err)
			}
			if msg.Seq <= lastSeq {
				_ = msg.Ack() // redelivered after its commit
				continue
			}
			lastSeq = msg.Seq
			pending = msg.Pending
			done, err := a.collect(&cur, msg)
			if err != nil {
				return err
			}
			if done != nil {
				batch = append(batch, done.block)
				acks = append(acks, done.msgs...)
				changes += len(done.block.Changes)
				if changes >= a.cfg.MaxBatchChanges {
					break
				}
			}
		}
		if len(batch) == 0 {
			continue
		}
		res, err := a.cfg.Store.Apply(batch)
		if err != nil {
			return err
		}
		*committed = res.Meta.StreamSeq
		a.blocks.Add(float64(res.Blocks))
		a.changes.Add(float64(res.Changes))
		a.lag.Set(float64(pending))
		if a.cfg.OnApplied != nil {
			a.cfg.OnApplied(res)
		}
		for _, m := range acks {
			_ = m.Ack() // a lost ack means a redelivery, which is skipped
		}
	}
}

// collect adds msg to the block being assembled and returns it once complete.
func (a *Applier) collect(cur **pending, msg events.Msg) (*pending, error) {
	d := msg.Delta
	if d.ChainID != a.cfg.ChainID {
		return nil, fmt.Errorf("%w: stream seq %d carries chain %d, want %d", ErrDiscontinuity, msg.Seq, d.ChainID, a.cfg.ChainID)
	}
	p := *cur
	if p == nil {
		if d.Part != 1 {
			return nil, fmt.Errorf("%w: stream seq %d is part %d of block %d without its first part", ErrDiscontinuity, msg.Seq, d.Part, d.Number)
		}
		p = &pending{block: Block{ChainID: d.ChainID, Block: d.Block, From: d.From, Withheld: d.Withheld}}
	} else if d.Number != p.block.Number || d.Hash != p.block.Hash || d.Part != len(p.msgs)+1 || d.Parts != p.msgs[0].Delta.Parts || (d.From == nil) != (p.block.From == nil) {
		return nil, fmt.Errorf("%w: stream seq %d is block %d part %d/%d while block %d part %d/%d was expected",
			ErrDiscontinuity, msg.Seq, d.Number, d.Part, d.Parts, p.block.Number, len(p.msgs)+1, p.msgs[0].Delta.Parts)
	}
	p.block.Changes = append(p.block.Changes, d.Changes...)
	p.block.LastSeq = msg.Seq
	p.msgs = append(p.msgs, msg)
	if d.Part < d.Parts {
		*cur = p
		return nil, nil
	}
	*cur = nil
	return p, nil
}
