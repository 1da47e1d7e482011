package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
)

// After a reorg deeper than the trust policy, `balidx replay` repairs the
// stream and so every snapshot; replaying again changes nothing.
func TestReplayRepairsATrustViolation(t *testing.T) {
	ctx := context.Background()
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 5, Seed: 21, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	dir := t.TempDir()
	args := []string{"--rpc", demo.Chain.WSEndpoint(), "--data", dir, "--confirmations", "1"}
	b := startBalidx(t, "run", args...)
	steps(t, demo, 10)
	st := b.waitCaughtUp(t, demo, 1)

	// A reorg 4 blocks deep, with other transactions on the new branch.
	fork := st.Trusted.Number - 3
	forkParent := demoView(demo).canonicalHash(t, fork-1)
	if err := demo.Chain.Fork(forkParent); err != nil {
		t.Fatal(err)
	}
	steps(t, demo, 8)
	poll.Until(t, 30*time.Second, func() error {
		b.checkRunning(t)
		var s query.Status
		if err := getJSON("http://"+b.http+"/v1/status", &s); err != nil {
			return err
		}
		if s.TrustViolation == nil {
			return fmt.Errorf("no violation yet (trusted %d)", s.Trusted.Number)
		}
		return nil
	})
	b.stop(t)

	var out bytes.Buffer
	replayArgs := append([]string{"replay", "--from", fmt.Sprint(fork - 2)}, args...)
	if err := run(ctx, replayArgs, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "corrected") || !strings.Contains(out.String(), fmt.Sprintf("no longer has published block %d", fork)) {
		t.Fatalf("replay said:\n%s", out.String())
	}

	b = startBalidx(t, "run", args...)
	steps(t, demo, 2)
	st = b.waitCaughtUp(t, demo, 1)
	if st.TrustViolation != nil {
		t.Fatalf("violation still reported after the repair: %+v", st.TrustViolation)
	}
	checkEveryBalance(t, demoView(demo), b.http, st)
	b.stop(t)

	out.Reset()
	if err := run(ctx, replayArgs, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("second replay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "nothing changed") {
		t.Fatalf("a replay of an unchanged range said:\n%s", out.String())
	}
	b = startBalidx(t, "run", args...)
	defer b.stop(t)
	again := b.waitCaughtUp(t, demo, 1)
	if again.Snapshot.Digest != st.Snapshot.Digest || again.Trusted != st.Trusted {
		t.Fatalf("an idle replay changed the snapshot: %+v %s → %+v %s", st.Trusted, st.Snapshot.Digest, again.Trusted, again.Snapshot.Digest)
	}
}
