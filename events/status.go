package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/balidx/balidx"
	"github.com/nats-io/nats.go/jetstream"
)

const statusBucket = "balidx_indexer"

// StatusBoard reads and writes IndexerStatus.
type StatusBoard struct {
	kv jetstream.KeyValue
}

// newStatusBoard opens (creating if needed) the status bucket.
func newStatusBoard(ctx context.Context, js jetstream.JetStream, replicas int) (*StatusBoard, error) {
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      statusBucket,
		Description: "balidx indexer status, one key per chain id",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open status bucket: %w", err)
	}
	return &StatusBoard{kv: kv}, nil
}

// Put stores s.
func (b *StatusBoard) Put(ctx context.Context, s balidx.IndexerStatus) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if _, err := b.kv.Put(ctx, strconv.FormatUint(s.ChainID, 10), data); err != nil {
		return fmt.Errorf("put indexer status: %w", err)
	}
	return nil
}

// Get returns the last stored status of chainID, or nil.
func (b *StatusBoard) Get(ctx context.Context, chainID uint64) (*balidx.IndexerStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	e, err := b.kv.Get(ctx, strconv.FormatUint(chainID, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get indexer status: %w", err)
	}
	var s balidx.IndexerStatus
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, fmt.Errorf("indexer status: %w", err)
	}
	return &s, nil
}

// Watch calls fn with every status stored for chainID until ctx ends, and
// then returns nil, also when ctx ends while the watch starts.
func (b *StatusBoard) Watch(ctx context.Context, chainID uint64, fn func(balidx.IndexerStatus)) error {
	w, err := b.kv.Watch(ctx, strconv.FormatUint(chainID, 10))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch indexer status: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil { // end of the initial values
				continue
			}
			var s balidx.IndexerStatus
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				continue // written by a newer or broken indexer: keep the last good one
			}
			fn(s)
		}
	}
}
