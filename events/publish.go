package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Publisher appends the deltas of one chain to the stream, in order. It
// publishes every part with its message id (a retry is deduplicated) and with
// the subject's expected last sequence, so that two indexers writing at once
// (a standby that woke too early) cannot interleave: the second one fails
// with ErrPublishConflict instead of corrupting the log.
type Publisher struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
	lastSeq uint64
}

// newPublisher returns a publisher for chainID on stream s, positioned after
// the last message the subject holds.
func newPublisher(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, chainID uint64) (*Publisher, *BlockDelta, error) {
	p := &Publisher{js: js, stream: s, subject: Subject(chainID)}
	last, seq, err := lastDelta(ctx, s, chainID)
	if err != nil {
		return nil, nil, err
	}
	p.lastSeq = seq
	return p, last, nil
}

// lastDelta returns the last part published for chainID and its stream
// sequence, or (nil, 0, nil) on an empty stream.
func lastDelta(ctx context.Context, s jetstream.Stream, chainID uint64) (*BlockDelta, uint64, error) {
	m, err := s.GetLastMsgForSubject(ctx, Subject(chainID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read last delta of chain %d: %w", chainID, err)
	}
	d, err := Decode(m.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("last delta of chain %d (stream seq %d): %w", chainID, m.Sequence, err)
	}
	return d, m.Sequence, nil
}

// Publish appends the parts of one block. It returns after the server has
// stored (and, with the durability settings of this package, synced) each part.
func (p *Publisher) Publish(ctx context.Context, parts []BlockDelta) error {
	for i := range parts {
		data, err := Encode(&parts[i])
		if err != nil {
			return err
		}
		ack, err := p.js.Publish(ctx, p.subject, data,
			jetstream.WithMsgID(parts[i].MsgID()),
			jetstream.WithExpectLastSequencePerSubject(p.lastSeq))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			// JetStream checks the expected sequence before the message id,
			// so a retry whose first attempt was stored (its ack lost) lands
			// here: that is success when the last message is this very part.
			seq, rerr := p.storedAsLast(ctx, &parts[i])
			if rerr != nil {
				return rerr
			}
			if seq == 0 {
				return fmt.Errorf("%w: publishing block %d part %d after seq %d: %v", ErrPublishConflict, parts[i].Number, parts[i].Part, p.lastSeq, err)
			}
			p.lastSeq = seq
			continue
		}
		if err != nil {
			return fmt.Errorf("publish block %d part %d: %w", parts[i].Number, parts[i].Part, err)
		}
		p.lastSeq = ack.Sequence
	}
	return nil
}

// storedAsLast returns the stream sequence of part if it is the subject's last
// message, or 0.
func (p *Publisher) storedAsLast(ctx context.Context, part *BlockDelta) (uint64, error) {
	last, seq, err := lastDelta(ctx, p.stream, part.ChainID)
	if err != nil || last == nil {
		return 0, err
	}
	if last.MsgID() != part.MsgID() {
		return 0, nil
	}
	return seq, nil
}
