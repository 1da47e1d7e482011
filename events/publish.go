package events

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

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
	retries atomic.Uint64
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
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
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

// PublishDeadline bounds how long Publish retries one part that the
// cluster does not acknowledge (no stream leader while one is elected, a
// node lost, a timeout): a NATS leader election takes 4–9 s.
const PublishDeadline = 2 * time.Minute

// publishAttempt bounds one attempt.
const publishAttempt = 5 * time.Second

// apiTimeout bounds one JetStream API call whatever the caller's context
// allows: a request sent to a node that dies is never answered, and the
// client would wait for the caller's whole deadline.
const apiTimeout = 10 * time.Second

// Publish appends the parts of one block. It returns after the server has
// stored (and, with the durability settings of this package, synced) each
// part. A part the cluster does not acknowledge is sent again, with the
// same message id and expected last sequence, for up to PublishDeadline
// (Retries counts the attempts); a retry whose first attempt was stored
// is recognised, so nothing is stored twice.
func (p *Publisher) Publish(ctx context.Context, parts []BlockDelta) error {
	for i := range parts {
		if err := p.publish(ctx, &parts[i]); err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) publish(ctx context.Context, part *BlockDelta) error {
	data, err := Encode(part)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(PublishDeadline)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, publishAttempt)
		ack, err := p.js.Publish(actx, p.subject, data,
			jetstream.WithMsgID(part.MsgID()),
			jetstream.WithExpectLastSequencePerSubject(p.lastSeq))
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			p.lastSeq = ack.Sequence
			return nil
		case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
			// JetStream checks the expected sequence before the message id,
			// so a retry whose first attempt was stored (its ack lost) lands
			// here: that is success when the last message is this very part.
			seq, rerr := p.storedAsLast(ctx, part)
			if rerr != nil {
				return rerr
			}
			if seq == 0 {
				return fmt.Errorf("%w: publishing block %d part %d after seq %d: %v", ErrPublishConflict, part.Number, part.Part, p.lastSeq, err)
			}
			p.lastSeq = seq
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum || apiErr.ErrorCode == jetstream.JSErrCodeBadRequest),
			time.Now().Add(wait).After(deadline):
			return fmt.Errorf("publish block %d part %d: %w", part.Number, part.Part, err)
		}
		p.retries.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Retries counts the attempts Publish made again, since the publisher was made.
func (p *Publisher) Retries() uint64 { return p.retries.Load() }

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
