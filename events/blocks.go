package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/balidx/balidx"
)

// Blocks calls fn with each whole block of chainID on the log, in order,
// from stream sequence fromSeq on, until ctx ends (nil) or fn fails (its
// error). A block spanning several messages is handed over once all its
// parts have arrived, in order. With each block fn learns whether a next
// message has arrived already (more: a consumer may hold the block to apply
// it with what follows), how many messages follow on the log (lag), and how
// to acknowledge the block's messages (ack: only once what they carry is
// durable; a lost ack means a redelivery). After a block handed over with
// more, before Blocks waits for a message, it calls fn(nil, false, lag,
// nil): apply what you hold, nothing more has come. A message that breaks
// the format stops Blocks with balidx.ErrPoisonedLog. If the server loses
// the consumer, a new one starts after the last block handed over. If the
// stream no longer holds fromSeq (its retention removed it), Blocks fails
// with ErrPositionLost rather than skip what it cannot read.
func (l *Log) Blocks(ctx context.Context, chainID, fromSeq uint64, fn func(d *balidx.Delta, more bool, lag uint64, ack func()) error) error {
	first, err := l.FirstSeq(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if first > max(fromSeq, 1) {
		return fmt.Errorf("%w: the snapshot goes on from stream message %d, the stream now starts at %d", ErrPositionLost, fromSeq, first)
	}
	for {
		next, err := l.blocks(ctx, chainID, fromSeq, fn)
		if !errors.Is(err, ErrConsumerLost) {
			return err
		}
		fromSeq = next
	}
}

// blocks runs one consumer; on ErrConsumerLost it returns the sequence to
// go on from: after the last block handed over (a block whose first parts
// were read is read again whole).
func (l *Log) blocks(ctx context.Context, chainID, fromSeq uint64, fn func(*balidx.Delta, bool, uint64, func()) error) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := consume(ctx, l.stream, consumeConfig{ChainID: chainID, FromSeq: fromSeq})
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil // stopped while starting
		}
		return 0, err
	}
	next := fromSeq
	var cur *balidx.Delta // a block still missing parts
	var acks []message
	var seen uint64 // the last stream sequence read
	var held bool   // the last block went with more: fn may be holding it
	var lag uint64
	for {
		var msg message
		select {
		case msg = <-msgs:
		default: // nothing has arrived: whatever fn holds, it should apply now
			if held {
				held = false
				if err := fn(nil, false, lag, nil); err != nil {
					return 0, err
				}
			}
			select {
			case <-ctx.Done():
				return 0, nil
			case msg = <-msgs:
			}
		}
		if errors.Is(msg.Err, ErrConsumerLost) {
			return next, msg.Err
		}
		if msg.Err != nil {
			return 0, fmt.Errorf("%w: stream seq %d: %v", balidx.ErrPoisonedLog, msg.Seq, msg.Err)
		}
		if msg.Seq <= seen {
			// Delivered again (its ack wait ran out): it is here already.
			// Acks only pace the consumer: a consumer resumes from the
			// position its own store keeps, never from the server's.
			_ = msg.Ack()
			continue
		}
		seen = msg.Seq
		d := msg.Delta
		if err := assemble(&cur, d, msg.Seq, chainID, acks); err != nil {
			return 0, err
		}
		acks = append(acks, msg)
		if d.Part < d.Parts {
			continue
		}
		parts := acks
		ack := func() {
			for _, m := range parts {
				_ = m.Ack() // a lost ack means a redelivery, which the consumer recognises by its sequence
			}
		}
		block := cur
		cur, acks, next, lag = nil, nil, msg.Seq+1, msg.Pending
		held = len(msgs) > 0
		if err := fn(block, held, lag, ack); err != nil {
			return 0, err
		}
	}
}

// assemble adds part d (stream sequence seq) to the block being assembled,
// whose parts read so far are have: the only place the rule of parts is kept.
func assemble(cur **balidx.Delta, d *BlockDelta, seq, chainID uint64, have []message) error {
	if d.ChainID != chainID {
		return fmt.Errorf("%w: stream seq %d carries chain %d, want %d", balidx.ErrPoisonedLog, seq, d.ChainID, chainID)
	}
	b := *cur
	if b == nil {
		if d.Part != 1 {
			return fmt.Errorf("%w: stream seq %d is part %d of block %d without its first part", balidx.ErrPoisonedLog, seq, d.Part, d.Number)
		}
		b = &balidx.Delta{ChainID: d.ChainID, Block: d.Block, From: d.From, Withheld: d.Withheld, FullTokens: d.FullTokens, Seed: d.Seed}
		*cur = b
	} else if d.Number != b.Number || d.Hash != b.Hash || d.Part != len(have)+1 || d.Parts != have[0].Delta.Parts || (d.From == nil) != (b.From == nil) {
		return fmt.Errorf("%w: stream seq %d is block %d part %d/%d while block %d part %d/%d was expected",
			balidx.ErrPoisonedLog, seq, d.Number, d.Part, d.Parts, b.Number, len(have)+1, have[0].Delta.Parts)
	}
	b.Changes = append(b.Changes, d.Changes...)
	b.LastSeq = seq
	return nil
}
