package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum/rpc"
)

// mainnetAccounts is the account count the seed's time is extrapolated to
// (Ethereum mainnet's state held ~250–300M accounts in 2025).
const mainnetAccounts = 300_000_000

// seedRead reads the whole state of the node at host as a seeded start
// does with its defaults (indexer.StateReader: every account checked, 256
// a page, DefaultSeedWorkers key ranges at once), and adds its rate to the
// summary.
func seedRead(ctx context.Context, host string, w io.Writer, s *summary) error {
	node, err := indexer.Dial(ctx, "http://"+host)
	if err != nil {
		return err
	}
	defer node.Close()
	head, err := node.HeaderByNumber(ctx, rpc.LatestBlockNumber)
	if err != nil {
		return err
	}
	start := time.Now()
	accounts, pages := 0, 0
	reader := indexer.StateReader{Node: node, Page: indexer.MaxAccountPage, Workers: indexer.DefaultSeedWorkers}
	out := make(chan indexer.AccountPage)
	done := make(chan error, 1)
	go func() { done <- reader.Read(ctx, head.Hash, nil, out) }()
	for p := range out {
		accounts += len(p.Accounts)
		pages++
	}
	if err := <-done; err != nil {
		return fmt.Errorf("seed read: %w", err)
	}
	took := time.Since(start)
	rate := float64(accounts) / took.Seconds()
	fmt.Fprintf(w, "\nseed read: %d accounts in %d pages from geth in %s: %.0f accounts/s; %d accounts would take %.1f h\n",
		accounts, pages, took.Round(time.Millisecond), rate, mainnetAccounts, mainnetAccounts/rate/3600)
	s.add(fmt.Sprintf("seed: accounts read from geth a second (whole state, 256 a page, %d key ranges at once)", indexer.DefaultSeedWorkers), rate, ">=", 20_000)
	s.add(fmt.Sprintf("seed: hours to read %dM accounts at that rate", mainnetAccounts/1_000_000), mainnetAccounts/rate/3600, "<=", 4)
	return nil
}

// seedRun times `balidx run --start-block 0 --seed` against the node at
// host: the whole state read, published page by page to the embedded NATS
// (each message fsynced) and applied, until the status names block 0 with
// every account in the snapshot.
func seedRun(ctx context.Context, bin, host, dir string, accounts int, w io.Writer, s *summary) error {
	clients := filepath.Join(dir, "seed-clients.yaml")
	if err := os.WriteFile(clients, []byte("anonymous: {enabled: true, rate: 1000, burst: 1000}\n"), 0o600); err != nil {
		return err
	}
	httpAddr, adminAddr := freeAddr(), freeAddr()
	if httpAddr == "" || adminAddr == "" {
		return errors.New("seed run: no free port")
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--rpc", "http://"+host, "--data", filepath.Join(dir, "seed-run"), "--start-block", "0", "--seed",
		"--confirmations", "0", "--http", httpAddr, "--admin", adminAddr, "--nats-listen", "127.0.0.1:0", "--clients", clients, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := start.Add(20 * time.Minute)
	for {
		var st query.Status
		if resp, err := hc.Get("http://" + httpAddr + "/v1/status"); err == nil {
			if resp.StatusCode == http.StatusOK {
				err = json.NewDecoder(resp.Body).Decode(&st)
			}
			resp.Body.Close()
			if err == nil && st.Snapshot.Accounts >= uint64(accounts) {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("seed run: no snapshot of %d accounts after %s\n%s", accounts, time.Since(start).Round(time.Second), logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	rate := float64(accounts) / took.Seconds()
	fmt.Fprintf(w, "seed run: balidx run --seed served all %d accounts %s after its start: %.0f accounts/s; %d accounts would take %.1f h\n",
		accounts, took.Round(time.Millisecond), rate, mainnetAccounts, mainnetAccounts/rate/3600)
	s.add("seed: the whole balidx run --seed (read, published, applied, served), accounts a second", rate, "", 0)
	s.add(fmt.Sprintf("seed: hours for %dM accounts at that rate", mainnetAccounts/1_000_000), mainnetAccounts/rate/3600, "<=", 4)
	return nil
}

// freeAddr is a loopback address free when asked ("" if none).
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer ln.Close()
	return ln.Addr().String()
}
