package events

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// A snapshot pruned after it was listed is ErrSnapshotGone, so that a
// replica starting from the store lists again instead of giving up; the
// newest left is fetched whole.
func TestSnapshotPrunedAfterListingIsGone(t *testing.T) {
	ctx := context.Background()
	snaps, err := mustLog(t).Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range []uint64{5, 10, 15} {
		body := strings.Repeat("snapshot ", int(block))
		if _, err := snaps.Put(ctx, SnapshotInfo{ChainID: 7, Block: block, StreamSeq: block}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := snaps.List(ctx, 7)
	if err != nil || len(list) != 3 || list[0].Block != 15 {
		t.Fatalf("listed %+v, %v; want blocks 15, 10, 5", list, err)
	}
	if err := snaps.Prune(ctx, 7, 1); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := snaps.Get(ctx, list[1], &got); !errors.Is(err, ErrSnapshotGone) {
		t.Fatalf("get of a pruned snapshot: %v, want ErrSnapshotGone", err)
	}
	got.Reset()
	if err := snaps.Get(ctx, list[0], &got); err != nil || got.String() != strings.Repeat("snapshot ", 15) {
		t.Fatalf("get of the newest: %q, %v", got.String(), err)
	}
}
