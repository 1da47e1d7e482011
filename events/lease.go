package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseBucket holds one key per chain: who publishes its blocks.
const leaseBucket = "balidx_publisher"

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal.
const DefaultLeaseTTL = 10 * time.Second

// LeaseHolder names who holds a chain's publishing lease, and since when.
type LeaseHolder struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

// Lease is the right to publish one chain's blocks: held by one indexer at
// a time in a key-value bucket whose entries expire TTL after their last
// write. Acquire waits for it, Hold renews it by compare-and-set on its
// revision, Release gives it up. The lease alone does not fence a holder
// that was paused past its TTL: the stream does, refusing a publish whose
// expected last sequence is not the subject's (ErrPublishConflict).
type Lease struct {
	kv   jetstream.KeyValue
	key  string
	me   LeaseHolder
	ttl  time.Duration
	rev  uint64 // of the entry this holder wrote last; 0 when not held
	poll time.Duration
}

// Lease opens chainID's publishing lease for holder (a name that tells
// indexers apart: host and process). Every indexer of a deployment must use
// the same ttl: it is the bucket's.
func (l *Log) Lease(ctx context.Context, chainID uint64, holder string, ttl time.Duration) (*Lease, error) {
	if ttl == 0 {
		ttl = DefaultLeaseTTL
	}
	var kv jetstream.KeyValue
	err := untilSettled(ctx, func(ctx context.Context) (err error) {
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      leaseBucket,
			Description: "balidx: which indexer publishes each chain (one key per chain id)",
			History:     1,
			TTL:         ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    l.replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open lease bucket: %w", err)
	}
	return &Lease{kv: kv, key: strconv.FormatUint(chainID, 10), me: LeaseHolder{Holder: holder}, ttl: ttl, poll: ttl / 4}, nil
}

// TTL is the lease's time to live after a renewal.
func (le *Lease) TTL() time.Duration { return le.ttl }

// Acquire returns once this holder holds the lease: at once if nobody does,
// else within TTL + TTL/4 of the holder's last renewal (a holder that
// stopped, crashed or was partitioned away), or as soon as it releases it.
func (le *Lease) Acquire(ctx context.Context) (LeaseHolder, error) {
	for {
		me := le.me
		me.Since = time.Now().UTC()
		data, err := json.Marshal(me)
		if err != nil {
			return LeaseHolder{}, err
		}
		actx, cancel := context.WithTimeout(ctx, apiTimeout)
		rev, err := le.kv.Create(actx, le.key, data)
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			le.rev, le.me = rev, me
			return me, nil
		case ctx.Err() != nil:
			return LeaseHolder{}, ctx.Err()
		case errors.Is(err, jetstream.ErrKeyExists),
			errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
			// Held, or a create lost a race with a delete marker: wait.
		default:
			// NATS unreachable or electing a leader: wait, and try again.
		}
		select {
		case <-ctx.Done():
			return LeaseHolder{}, ctx.Err()
		case <-time.After(le.poll):
		}
	}
}

// Hold renews the lease every TTL/3 until ctx ends (nil), or until a
// renewal fails (ErrLeaseLost): then another indexer may hold it, and the
// caller must stop publishing at once.
func (le *Lease) Hold(ctx context.Context) error {
	t := time.NewTicker(le.ttl / 3)
	defer t.Stop()
	data, err := json.Marshal(le.me)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, le.ttl/3)
		rev, err := le.kv.Update(rctx, le.key, data, le.rev)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			le.rev = 0
			return fmt.Errorf("%w: renewing: %v", ErrLeaseLost, err)
		}
		le.rev = rev
	}
}

// Release gives the lease up if this holder still holds it, so that a
// standby takes over at once.
func (le *Lease) Release(ctx context.Context) error {
	if le.rev == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	err := le.kv.Delete(ctx, le.key, jetstream.LastRevision(le.rev))
	le.rev = 0
	return err
}

// Holder returns who holds the lease now, or nil.
func (le *Lease) Holder(ctx context.Context) (*LeaseHolder, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	e, err := le.kv.Get(ctx, le.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h LeaseHolder
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return nil, fmt.Errorf("lease of chain %s: %w", le.key, err)
	}
	return &h, nil
}
