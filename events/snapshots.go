package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// snapshotBucket is the JetStream object store bucket of snapshots.
const snapshotBucket = "balidx_snapshots"

// SnapshotInfo describes a snapshot in the object store: a whole snapshot
// file at a stated block and stream position.
type SnapshotInfo struct {
	Name      string
	ChainID   uint64
	Block     uint64
	StreamSeq uint64 // the last stream message it holds; a replica goes on after it
	Digest    string
	Size      uint64
}

// Snapshots is the object store of snapshot files, replicated as the stream.
type Snapshots struct {
	os jetstream.ObjectStore
}

// Snapshots opens (creating if needed) the snapshot object store.
func (l *Log) Snapshots(ctx context.Context) (*Snapshots, error) {
	var os jetstream.ObjectStore
	err := untilSettled(ctx, func(ctx context.Context) (err error) {
		os, err = l.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      snapshotBucket,
			Description: "balidx: snapshot files at stated blocks, for new replicas to start from",
			Storage:     jetstream.FileStorage,
			Replicas:    l.replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return &Snapshots{os: os}, nil
}

// snapshotName orders a chain's snapshots by block.
func snapshotName(chainID, block uint64) string {
	return fmt.Sprintf("chain-%d/block-%020d", chainID, block)
}

// Put stores the snapshot file r reads, described by info.
func (s *Snapshots) Put(ctx context.Context, info SnapshotInfo, r io.Reader) (SnapshotInfo, error) {
	info.Name = snapshotName(info.ChainID, info.Block)
	oi, err := s.os.Put(ctx, jetstream.ObjectMeta{
		Name: info.Name,
		Metadata: map[string]string{
			"chain_id":   strconv.FormatUint(info.ChainID, 10),
			"block":      strconv.FormatUint(info.Block, 10),
			"stream_seq": strconv.FormatUint(info.StreamSeq, 10),
			"digest":     info.Digest,
		},
	}, r)
	if err != nil {
		return info, fmt.Errorf("put snapshot %s: %w", info.Name, err)
	}
	info.Size = oi.Size
	return info, nil
}

// List returns chainID's snapshots, newest first.
func (s *Snapshots) List(ctx context.Context, chainID uint64) ([]SnapshotInfo, error) {
	objs, err := s.os.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	prefix := fmt.Sprintf("chain-%d/", chainID)
	var out []SnapshotInfo
	for _, o := range objs {
		if o.Deleted || !strings.HasPrefix(o.Name, prefix) {
			continue
		}
		info := SnapshotInfo{Name: o.Name, ChainID: chainID, Digest: o.Metadata["digest"], Size: o.Size}
		info.Block, _ = strconv.ParseUint(o.Metadata["block"], 10, 64)
		info.StreamSeq, _ = strconv.ParseUint(o.Metadata["stream_seq"], 10, 64)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return strings.Compare(b.Name, a.Name) })
	return out, nil
}

// Get writes the snapshot's file to w; ErrSnapshotGone if it was pruned
// since it was listed.
func (s *Snapshots) Get(ctx context.Context, info SnapshotInfo, w io.Writer) error {
	r, err := s.os.Get(ctx, info.Name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("get snapshot %s: %w", info.Name, ErrSnapshotGone)
	}
	if err != nil {
		return fmt.Errorf("get snapshot %s: %w", info.Name, err)
	}
	defer r.Close()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("get snapshot %s: %w", info.Name, err)
	}
	return nil
}

// Prune deletes all but chainID's keep newest snapshots.
func (s *Snapshots) Prune(ctx context.Context, chainID uint64, keep int) error {
	list, err := s.List(ctx, chainID)
	if err != nil {
		return err
	}
	for _, info := range list[min(keep, len(list)):] {
		if err := s.os.Delete(ctx, info.Name); err != nil {
			return fmt.Errorf("delete snapshot %s: %w", info.Name, err)
		}
	}
	return nil
}

// FirstSeq is the first message the stream still holds (1 until retention
// removes some).
func (l *Log) FirstSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.FirstSeq, nil
}
