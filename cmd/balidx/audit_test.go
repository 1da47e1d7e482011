package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/holiman/uint256"
	bolt "go.etcd.io/bbolt"
)

// balidx audit passes on a snapshot that matches the chain and names the
// account, asset, ours and the chain's amount of a balance that does not.
func TestAudit(t *testing.T) {
	ctx := context.Background()
	demo, err := devchain.StartDemo(ctx, devchain.DemoConfig{Accounts: 4, Seed: 5, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	b := startBalidx(t, "run", "--rpc", demo.Chain.WSEndpoint(), "--data", t.TempDir(), "--confirmations", "1")
	defer b.stop(t)
	steps(t, demo, 10)
	st := b.waitCaughtUp(t, demo, 1)
	noEnv := func(string) string { return "" }

	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "--rpc", demo.Chain.HTTPEndpoint(), "--admin", b.admin, "--json"}, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("audit of a correct snapshot: %v\n%s", err, out.String())
	}
	var rep auditReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Block != st.Trusted.Number || rep.Checked < 10 || rep.Checked != rep.Balances || len(rep.Mismatches) != 0 {
		t.Fatalf("report %+v", rep)
	}
	// The interest-bearing token is listed as withheld, not as matches.
	if len(rep.Withheld) != 1 || rep.Withheld[0].Contract != demo.Odd[devchain.InterestToken].Hex() || rep.Withheld[0].Reason != balidx.TimeDependent {
		t.Fatalf("withheld %+v, want the interest-bearing token, time_dependent", rep.Withheld)
	}

	// A copy with one balance changed behind the applier's back.
	dir := t.TempDir()
	tmp, err := fetchSnapshot(ctx, b.admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "snapshot.db")); err != nil {
		t.Fatal(err)
	}
	victim := demo.Accounts[1]
	db, err := bolt.Open(filepath.Join(dir, "snapshot.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := append(victim.Bytes(), make([]byte, 20)...) // account ‖ native asset
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("balances")).Put(key, uint256.NewInt(123).Bytes())
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(ctx, []string{"audit", "--rpc", demo.Chain.HTTPEndpoint(), "--data", dir}, noEnv, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "1 balances differ") {
		t.Fatalf("audit of a tampered snapshot: got %v", err)
	}
	if !strings.Contains(out.String(), victim.Hex()+" native: ours 123, chain ") {
		t.Fatalf("report does not name the mismatch:\n%s", out.String())
	}
}
