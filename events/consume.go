package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// message is one part read from the stream.
type message struct {
	Seq     uint64      // stream sequence
	Pending uint64      // messages after this one the consumer has yet to deliver
	Delta   *BlockDelta // nil when Err is set
	// Err: the message could not be decoded (the stream is poisoned here),
	// or ErrConsumerLost (no message; consume again from your position).
	Err error
	raw jetstream.Msg
}

// Ack acknowledges the message. Call it only once what it carries is durable.
func (m message) Ack() error { return m.raw.Ack() }

// consumeConfig positions a consumer.
type consumeConfig struct {
	ChainID uint64
	// FromSeq is the first stream sequence to deliver (the applier's stored
	// position + 1); 0 or 1 reads from the start.
	FromSeq uint64
	// Buffer is how many messages may wait unacknowledged; default 1024.
	Buffer int
}

// consume delivers the chain's parts in stream order from cfg.FromSeq into
// the returned channel until ctx ends. The consumer is ephemeral, explicitly
// acknowledged, and created afresh at every start from the position the
// caller stores with its data: the position is never the server's to keep.
func consume(ctx context.Context, s jetstream.Stream, cfg consumeConfig) (<-chan message, error) {
	if cfg.Buffer == 0 {
		cfg.Buffer = 1024
	}
	cc := jetstream.ConsumerConfig{
		Description:       "balidx applier",
		FilterSubject:     Subject(cfg.ChainID),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           5 * time.Minute, // a batch is acked after its bbolt commit
		MaxAckPending:     cfg.Buffer,
		InactiveThreshold: time.Minute,
		MaxDeliver:        -1,
	}
	if cfg.FromSeq > 1 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = cfg.FromSeq
	}
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	cons, err := s.CreateConsumer(actx, cc)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create consumer from seq %d: %w", cfg.FromSeq, err)
	}
	out := make(chan message, cfg.Buffer)
	lost := func() {
		select {
		case out <- message{Err: ErrConsumerLost}:
		case <-ctx.Done():
		}
	}
	cctx, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return // not a stream message; never delivered by a pull consumer
		}
		d, derr := Decode(m.Data())
		select {
		case out <- message{Seq: meta.Sequence.Stream, Pending: meta.NumPending, Delta: d, Err: derr, raw: m}:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(cfg.Buffer), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The server forgot the consumer (deleted, or lost across a
		// restart): the caller starts a new one from its own position.
		// Other errors (missed heartbeats, reconnects) the library rides out.
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			go lost()
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("consume from seq %d: %w", cfg.FromSeq, err)
	}
	go func() {
		<-ctx.Done()
		cctx.Stop()
	}()
	return out, nil
}
