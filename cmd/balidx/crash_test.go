package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/query"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// TestCrashLoop (make crash) kills `balidx run` — indexer, applier and the
// embedded NATS server in one process — with SIGKILL at random moments while
// a real geth makes blocks full of transfers (ETH, a rebasing token and a
// token paying fees to a collector), restarts it every time, and
// then checks that nothing was lost or applied twice: the snapshot equals a
// clean rebuild from the stream, and every balance equals the chain.
func TestCrashLoop(t *testing.T) {
	gethBin, bin := os.Getenv("BALIDX_GETH"), os.Getenv("BALIDX_BIN")
	var kills int
	if n := os.Getenv("BALIDX_CRASH_KILLS"); n != "" {
		fmt.Sscan(n, &kills)
	}
	if gethBin == "" || bin == "" || kills < 1 {
		t.Skip("BALIDX_GETH, BALIDX_BIN and BALIDX_CRASH_KILLS are not set: `make crash` runs this test")
	}
	ws := startGeth(t, gethBin, "eth,net,web3,debug")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, eth, dev := dialGeth(t, ws)
	// Two odd tokens: a rebasing one (every holder re-read at a rebase) and
	// one whose fees go to a collector no log names.
	collector := common.HexToAddress("0x00000000000000000000000000000000C011EC70")
	sender := newDevSender(t, rc, eth, dev)
	deploy := func(code []byte) common.Address {
		h := sender.send(t, map[string]any{"data": hexutil.Bytes(code), "gas": hexutil.Uint64(2_000_000)})
		var addr common.Address
		poll.Until(t, 30*time.Second, func() error {
			r, err := eth.TransactionReceipt(ctx, h)
			if err == nil {
				addr = r.ContractAddress
			}
			return err
		})
		return addr
	}
	rebase := deploy(devchain.Deployment(devchain.RebaseToken))
	collecting := deploy(devchain.Deployment(devchain.CollectorToken, big.NewInt(250), collector))
	holders := []common.Address{dev, collector}
	for i := range 300 {
		holders = append(holders, common.BigToAddress(big.NewInt(int64(i)+1<<45)))
	}
	traffic := make(chan struct{})
	go func() { // transfers to a few hundred accounts while balidx dies and comes back
		defer close(traffic)
		rng := rand.New(rand.NewPCG(7, 7))
		call := func(to common.Address, data []byte) map[string]any {
			return map[string]any{"from": dev, "to": to, "data": hexutil.Bytes(data), "gas": hexutil.Uint64(400_000)}
		}
		for i := 0; ctx.Err() == nil; i++ {
			to := holders[2+rng.IntN(300)]
			amount := big.NewInt(int64(1 + rng.IntN(1e9)))
			tx := map[string]any{"from": dev, "to": to, "value": (*hexutil.Big)(amount)}
			switch i % 5 {
			case 1:
				tx = call(rebase, devchain.TokenCall("mint", to, amount))
			case 2:
				tx = call(collecting, devchain.TokenCall("mint", dev, amount))
			case 3:
				tx = call(collecting, devchain.TokenCall("transfer", to, amount))
			case 4:
				tx = call(rebase, devchain.RebaseCall(int64(rng.IntN(200))-50))
			}
			_ = rc.CallContext(ctx, nil, "eth_sendTransaction", tx)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	data := t.TempDir()
	clients := testClientsFile(t)
	httpAddr, adminAddr := testaddr.Free(t), testaddr.Free(t)
	args := []string{"run", "--rpc", ws, "--data", data, "--confirmations", "1", "--http", httpAddr, "--admin", adminAddr,
		"--nats-listen", "127.0.0.1:0", "--clients", clients, "--log-level", "error"}
	rng := rand.New(rand.NewPCG(1, 9))
	var logs bytes.Buffer
	for i := range kills {
		killAfter(t, time.Duration(100+rng.IntN(1400))*time.Millisecond, startBin(t, bin, args, &logs))
		if i%20 == 19 {
			t.Logf("%d kills", i+1)
		}
	}
	cancel()
	<-traffic

	// Let it catch up, then stop it gracefully.
	cmd := startBin(t, bin, args, &logs)
	head, err := eth.BlockNumber(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var st query.Status
	poll.Until(t, 3*time.Minute, func() error {
		if err := getJSON("http://"+httpAddr+"/v1/status", &st); err != nil {
			return err
		}
		if st.Trusted.Number < head-1 {
			return fmt.Errorf("trusted %d, waiting for %d", st.Trusted.Number, head-1)
		}
		return nil
	})
	checkEveryBalance(t, chainView{eth: eth, rpc: rc, tokens: []common.Address{rebase, collecting}, holders: holders}, httpAddr, st)
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("balidx after the crash loop: %v\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), "pre amount disagrees") || strings.Contains(logs.String(), "does not continue") {
		t.Fatalf("an applier refused the stream during the loop:\n%s", logs.String())
	}

	// A clean rebuild from the stream reaches the same block and digest.
	before, err := snapshotMeta(filepath.Join(data, "snapshot.db"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"rebuild", "--data", data}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out.String())
	}
	after, err := snapshotMeta(filepath.Join(data, "snapshot.db"))
	if err != nil {
		t.Fatal(err)
	}
	if after.Trusted != before.Trusted || after.StreamSeq != before.StreamSeq || after.Digest != before.Digest || after.Accounts != before.Accounts {
		t.Fatalf("after %d kills the snapshot %+v differs from a clean rebuild %+v", kills, before, after)
	}
	t.Logf("%d kills; block %d; digest %s equals a clean rebuild", kills, after.Trusted.Number, after.Digest)
}

// startBin starts the balidx binary with args, its log to logs.
func startBin(tb testing.TB, bin string, args []string, logs io.Writer) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd
}

// killAfter kills cmd with SIGKILL after d, and reaps it.
func killAfter(tb testing.TB, d time.Duration, cmd *exec.Cmd) {
	tb.Helper()
	time.Sleep(d)
	if err := cmd.Process.Kill(); err != nil {
		tb.Fatal(err)
	}
	_ = cmd.Wait()
}
