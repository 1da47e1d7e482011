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

// IndexerStatus is what the indexer tells every query node about the chain
// beyond the trusted block: the head it has seen, its trust policy, and a
// trust violation if it stopped on one. It is kept in a JetStream key-value
// bucket, one key per chain, so that a query node never asks the chain.
type IndexerStatus struct {
	ChainID        uint64          `json:"chain_id"`
	Head           uint64          `json:"head"`
	HeadSeenAt     time.Time       `json:"head_seen_at"`
	Policy         Policy          `json:"policy"`
	TrustViolation *TrustViolation `json:"trust_violation"`
}

// Policy is the indexer's trust policy: Confirmations, or a block Tag.
type Policy struct {
	Confirmations uint64 `json:"confirmations,omitempty"`
	Tag           string `json:"tag,omitempty"` // "safe" or "finalized"
}

// TrustViolation names the block at which the chain no longer continues what
// was published: a reorganisation deeper than the trust policy.
type TrustViolation struct {
	Number        uint64    `json:"number"`         // the block that does not fit
	Hash          string    `json:"hash"`           // its hash on the chain now
	ParentHash    string    `json:"parent_hash"`    // what it builds on
	PublishedHash string    `json:"published_hash"` // what was published at Number-1
	DetectedAt    time.Time `json:"detected_at"`
}

const statusBucket = "balidx_indexer"

// StatusBoard reads and writes IndexerStatus.
type StatusBoard struct {
	kv jetstream.KeyValue
}

// NewStatusBoard opens (creating if needed) the status bucket.
func NewStatusBoard(ctx context.Context, js jetstream.JetStream, replicas int) (*StatusBoard, error) {
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
func (b *StatusBoard) Put(ctx context.Context, s IndexerStatus) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := b.kv.Put(ctx, strconv.FormatUint(s.ChainID, 10), data); err != nil {
		return fmt.Errorf("put indexer status: %w", err)
	}
	return nil
}

// Get returns the last stored status of chainID, or nil.
func (b *StatusBoard) Get(ctx context.Context, chainID uint64) (*IndexerStatus, error) {
	e, err := b.kv.Get(ctx, strconv.FormatUint(chainID, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get indexer status: %w", err)
	}
	var s IndexerStatus
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, fmt.Errorf("indexer status: %w", err)
	}
	return &s, nil
}

// Watch calls fn with every status stored for chainID until ctx ends, and
// then returns nil, also when ctx ends while the watch starts.
func (b *StatusBoard) Watch(ctx context.Context, chainID uint64, fn func(IndexerStatus)) error {
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
			var s IndexerStatus
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				continue // written by a newer or broken indexer: keep the last good one
			}
			fn(s)
		}
	}
}
