package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// A real geth reads its whole state out, page by page, with the preimages
// it keeps (--cache.preimages); without them, the accounts it cannot name
// refuse the seed with the fix, instead of a smaller state taken for whole.
func TestGethAccountRange(t *testing.T) {
	gethBin := os.Getenv("BALIDX_GETH")
	if gethBin == "" {
		t.Skip("BALIDX_GETH is not set: `make test` builds geth and runs this test")
	}
	for _, preimages := range []bool{true, false} {
		g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir(), onDemand: true, noPreimages: !preimages}
		g.start(t)
		ctx := context.Background()
		rc, eth, dev := dialGeth(t, g.url())
		sender := newDevSender(t, rc, eth, dev)
		fresh := common.HexToAddress("0x00000000000000000000000000000000000f4e54")
		h := sender.send(t, map[string]any{"to": fresh, "value": (*hexutil.Big)(big.NewInt(12345)), "gas": hexutil.Uint64(21000)})
		poll.Until(t, 30*time.Second, func() error { _, err := eth.TransactionReceipt(ctx, h); return err })
		head, err := eth.HeaderByNumber(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		node, err := indexer.Dial(ctx, g.url())
		if err != nil {
			t.Fatal(err)
		}
		found := map[common.Address]string{}
		pages := make(chan indexer.AccountPage)
		done := make(chan error, 1)
		r := indexer.StateReader{Node: node, Page: indexer.MaxAccountPage, Workers: indexer.DefaultSeedWorkers}
		go func() { done <- r.Read(ctx, head.Hash(), nil, pages) }()
		for p := range pages {
			for _, a := range p.Accounts {
				found[a.Address] = a.Balance.Dec()
			}
		}
		err = <-done
		node.Close()
		switch {
		case preimages && (err != nil || found[fresh] != "12345" || found[dev] == ""):
			t.Errorf("with preimages: %v, %d accounts, the new one %q", err, len(found), found[fresh])
		case !preimages && (!errors.Is(err, indexer.ErrNoPreimages) || !strings.Contains(err.Error(), "--cache.preimages")):
			t.Errorf("without preimages: got %v (%d accounts), want ErrNoPreimages naming --cache.preimages", err, len(found))
		}
		g.stop(t)
	}
}

// A node started from the whole state at block N (--seed) agrees with one
// indexed from genesis at every later block: the same digest, every
// account's balance the chain's. Its seed is cut short after its first
// page and resumed by a restart, from the stream's last page.
func TestSeededStartAgreesWithGenesis(t *testing.T) {
	gethBin := os.Getenv("BALIDX_GETH")
	if gethBin == "" {
		t.Skip("BALIDX_GETH is not set: `make test` builds geth and runs this test")
	}
	g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir(), onDemand: true}
	g.start(t)
	t.Cleanup(func() { g.stop(t) })
	ctx := context.Background()
	rc, eth, dev := dialGeth(t, g.url())
	sender := newDevSender(t, rc, eth, dev)
	mined := func(h common.Hash) uint64 {
		var n uint64
		poll.Until(t, 30*time.Second, func() error {
			r, err := eth.TransactionReceipt(ctx, h)
			if err == nil {
				n = r.BlockNumber.Uint64()
			}
			return err
		})
		return n
	}
	send := func(to common.Address, wei int64) common.Hash {
		return sender.send(t, map[string]any{"to": to, "value": (*hexutil.Big)(big.NewInt(wei)), "gas": hexutil.Uint64(21000)})
	}
	var last common.Hash
	for i := range 12 {
		last = send(common.BigToAddress(big.NewInt(int64(i+1)<<40)), int64(i+1)*1e12)
	}
	seedAt := mined(last)
	for i := range 6 { // after the seed's block: some accounts change, one is new
		last = send(common.BigToAddress(big.NewInt(int64(i*2+1)<<40)), 7)
	}
	last = send(common.HexToAddress("0x00000000000000000000000000000000000a17e7"), 99)
	mined(send(dev, 0)) // one block more: the last of the activity is trusted
	lastActivity := mined(last)

	genesisNode := startBalidx(t, "run", "--rpc", g.url(), "--data", t.TempDir(), "--confirmations", "1")
	defer genesisNode.stop(t)
	seededData := t.TempDir()
	args := []string{"--rpc", g.url(), "--data", seededData, "--confirmations", "1", "--start-block", strconv.FormatUint(seedAt, 10), "--seed", "--seed-page", "1"}
	first := startBalidx(t, "run", args...)
	poll.Until(t, 30*time.Second, func() error {
		if v := metric(t, first.admin, "balidx_indexer_seed_accounts_total"); v == "" || v == "0" {
			return fmt.Errorf("no seed page published yet (%q)", v)
		}
		return nil
	})
	cutAt := metric(t, first.admin, "balidx_indexer_seed_accounts_total")
	first.stop(t) // cut short after its first pages
	seeded := startBalidx(t, "run", args...)

	var stGenesis, stSeeded query.Status
	poll.Until(t, 60*time.Second, func() error { // both at one block, after the activity
		for _, n := range []struct {
			b  *instance
			st *query.Status
		}{{genesisNode, &stGenesis}, {seeded, &stSeeded}} {
			n.b.checkRunning(t)
			if err := getJSON("http://"+n.b.http+"/v1/status", n.st); err != nil {
				return err
			}
		}
		if stSeeded.Trusted.Number < lastActivity || stGenesis.Trusted != stSeeded.Trusted {
			return fmt.Errorf("trusted %d and %d, waiting for both at one block ≥ %d", stGenesis.Trusted.Number, stSeeded.Trusted.Number, lastActivity)
		}
		return nil
	})
	if stGenesis.Trusted != stSeeded.Trusted || stGenesis.Snapshot.Digest != stSeeded.Snapshot.Digest {
		t.Fatalf("from genesis: block %+v digest %s; seeded at %d: block %+v digest %s", stGenesis.Trusted, stGenesis.Snapshot.Digest, seedAt, stSeeded.Trusted, stSeeded.Snapshot.Digest)
	}
	if !stSeeded.Coverage.Full || stSeeded.Coverage.FromBlock != seedAt {
		t.Fatalf("seeded node's coverage %+v: want full from %d", stSeeded.Coverage, seedAt)
	}
	resumed := metric(t, seeded.admin, "balidx_indexer_seed_accounts_total")
	if resumed == "" || resumed == "0" {
		t.Fatalf("the restart published no seed page (the first run had read %s accounts): the cut did not fall inside the seed", cutAt)
	}
	t.Logf("seeded at block %d: %s accounts before the cut, %s after; both nodes at block %d, digest %s", seedAt, cutAt, resumed, stSeeded.Trusted.Number, stSeeded.Snapshot.Digest)
	checkEveryBalance(t, chainView{eth: eth, rpc: rc}, seeded.http, stSeeded)

	// The seed is on the stream like any block: a rebuild from the stream
	// alone makes the same snapshot.
	seeded.stop(t)
	if err := run(ctx, []string{"rebuild", "--data", seededData}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	store, err := storage.Open(storage.Config{Path: filepath.Join(seededData, storage.FileName), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.Meta()
	store.Close()
	if err != nil || m.Digest.Hex() != stSeeded.Snapshot.Digest || m.Trusted.Number != stSeeded.Trusted.Number || !m.CoverageFull || m.CoverageFrom != seedAt {
		t.Fatalf("rebuilt from the stream: %+v (%v), want the served snapshot's digest %s at block %d", m, err, stSeeded.Snapshot.Digest, stSeeded.Trusted.Number)
	}
}
