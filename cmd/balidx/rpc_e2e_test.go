package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/query/client"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// walletChain is a geth --dev chain with ETH and ERC-20 activity, a
// Multicall on it, and `balidx run` following it, quiet once made: every
// balance is the same at every block from trusted on.
type walletChain struct {
	gethHTTP, balidxRPC string
	geth                *ethclient.Client
	holders             []common.Address
	tokens              []common.Address
	multicall           common.Address
	multicallBlock      uint64
	trusted             uint64 // balidx's trusted block, which stays put
	trustedHash         common.Hash
	chainID             uint64
}

// The clients of the conformance tests: one with room for every read, and
// one per library whose quota runs out after two requests.
const (
	walletClient = "wallet"
	walletSecret = "a-wallet-secret-that-is-long-enough-0123456789"
)

func walletClientsFile(tb testing.TB) string {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), "clients.yaml")
	data := "clients:\n" +
		"  - {id: " + walletClient + ", secrets: [\"" + walletSecret + "\"], rate: 1000, burst: 1000}\n" +
		"  - {id: stingy-go, secrets: [\"" + walletSecret + "\"], rate: 0.001, burst: 2}\n" +
		"  - {id: stingy-ethers, secrets: [\"" + walletSecret + "\"], rate: 0.001, burst: 2}\n" +
		"  - {id: stingy-viem, secrets: [\"" + walletSecret + "\"], rate: 0.001, burst: 2}\n" +
		"anonymous: {enabled: true, rate: 100000, burst: 100000}\n" // the test's status polls
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

func startWalletChain(t *testing.T) *walletChain {
	t.Helper()
	gethBin := gethBinary(t)
	g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), httpPort: freePort(t), dir: t.TempDir(), onDemand: true}
	g.start(t)
	t.Cleanup(func() { g.stop(t) })
	rc, eth, dev := dialGeth(t, g.url())
	sender := newDevSender(t, rc, eth, dev)
	send := func(to *common.Address, value *big.Int, data []byte) common.Hash {
		return sender.call(t, to, value, data)
	}
	mined := func(h common.Hash) *types.Receipt { return sender.mined(t, h) }
	w := &walletChain{gethHTTP: fmt.Sprintf("http://127.0.0.1:%d", g.httpPort), geth: eth}
	for _, name := range []string{"Wallet Token", "Wallet Fee Token"} {
		w.tokens = append(w.tokens, mined(send(nil, nil, devchain.TokenDeployment(name, int64(len(w.tokens))*100))).ContractAddress)
	}
	r := mined(send(nil, nil, devchain.MulticallDeployment()))
	w.multicall, w.multicallBlock = r.ContractAddress, r.BlockNumber.Uint64()
	var lastTx common.Hash
	for i := range 10 {
		h := common.BigToAddress(big.NewInt(int64(i+1) << 44))
		w.holders = append(w.holders, h)
		send(&h, big.NewInt(int64(i+1)*1e15), nil)
		lastTx = send(&w.tokens[0], nil, devchain.TokenCall("mint", h, big.NewInt(int64(i+1)*1000)))
		if i%2 == 0 {
			send(&w.tokens[1], nil, devchain.TokenCall("mint", dev, big.NewInt(1e6)))
			lastTx = send(&w.tokens[1], nil, devchain.TokenCall("transfer", h, big.NewInt(int64(i+1)*500)))
		}
	}
	mined(lastTx)
	b := startBalidx(t, "run", "--rpc", g.url(), "--data", t.TempDir(), "--confirmations", "1",
		"--clients", walletClientsFile(t), "--multicall3", w.multicall.Hex())
	t.Cleanup(func() { b.stop(t) })
	w.balidxRPC = "http://" + b.http + query.RPCRoute
	// One block more makes the block before it trusted: geth --dev makes
	// no block while no transaction waits, so balidx's trusted block stays
	// put. (It may have made empty blocks after the activity: they change
	// no balance.)
	last := mined(send(&dev, big.NewInt(0), nil)).BlockNumber.Uint64()
	var st query.Status
	poll.Until(t, 60*time.Second, func() error {
		b.checkRunning(t)
		if err := getJSON("http://"+b.http+"/v1/status", &st); err != nil {
			return err
		}
		if st.Trusted.Number != last-1 {
			return fmt.Errorf("trusted %d, waiting for %d", st.Trusted.Number, last-1)
		}
		return nil
	})
	w.trusted, w.trustedHash, w.chainID = st.Trusted.Number, common.HexToHash(st.Trusted.Hash), st.ChainID
	return w
}

// dialSigned is ethclient over HTTP to balidx's POST /rpc, every request
// signed by client.Signer, as the README shows.
func dialSigned(tb testing.TB, url, id string) *ethclient.Client {
	tb.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &client.Signer{ClientID: id, Secret: walletSecret}}
	rc, err := rpc.DialOptions(context.Background(), url, rpc.WithHTTPClient(hc))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rc.Close)
	return ethclient.NewClient(rc)
}

// go-ethereum's ethclient reads the same balances from balidx as from geth
// at balidx's trusted block, through every way of naming it.
func TestEthclientAgainstGeth(t *testing.T) {
	w := startWalletChain(t)
	ctx := context.Background()
	bx := dialSigned(t, w.balidxRPC, walletClient)
	n := new(big.Int).SetUint64(w.trusted)
	if id, err := bx.ChainID(ctx); err != nil || id.Uint64() != w.chainID {
		t.Fatalf("chain id: %v %v", id, err)
	}
	if got, err := bx.BlockNumber(ctx); err != nil || got != w.trusted {
		t.Fatalf("block number: %d %v, want the trusted %d", got, err, w.trusted)
	}
	erc20, err := abi.JSON(strings.NewReader(`[{"name":"balanceOf","type":"function","stateMutability":"view","inputs":[{"name":"holder","type":"address"}],"outputs":[{"name":"","type":"uint256"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	// balanceOf through a contract object, as go-ethereum's bindings call it.
	balanceOf := func(c *ethclient.Client, token, holder common.Address, block *big.Int) (*big.Int, error) {
		var out []any
		err := bind.NewBoundContract(token, erc20, c, nil, nil).Call(&bind.CallOpts{BlockNumber: block}, &out, "balanceOf", holder)
		if err != nil {
			return nil, err
		}
		return out[0].(*big.Int), nil
	}
	compared, withheld := 0, 0
	for _, h := range w.holders {
		want, err := w.geth.BalanceAt(ctx, h, n)
		if err != nil {
			t.Fatal(err)
		}
		for name, read := range map[string]func() (*big.Int, error){
			"latest":         func() (*big.Int, error) { return bx.BalanceAt(ctx, h, nil) },
			"trusted number": func() (*big.Int, error) { return bx.BalanceAt(ctx, h, n) },
			"trusted hash":   func() (*big.Int, error) { return bx.BalanceAtHash(ctx, h, w.trustedHash) },
		} {
			if got, err := read(); err != nil || got.Cmp(want) != 0 {
				t.Errorf("%s at %s: balidx %v (%v), geth %v", h, name, got, err, want)
			}
			compared++
		}
		for _, token := range w.tokens {
			want, err := balanceOf(w.geth, token, h, n)
			if err != nil {
				t.Fatal(err)
			}
			got, err := balanceOf(bx, token, h, nil)
			if err != nil && strings.Contains(err.Error(), "no amount of token") && want.Sign() == 0 {
				withheld++ // a holder balidx never saw with the token: not guessed (geth says 0)
				continue
			}
			if err != nil || got.Cmp(want) != 0 {
				t.Errorf("%s balanceOf %s: balidx %v (%v), geth %v", token, h, got, err, want)
			}
			compared++
		}
	}
	// Ten balances in one batch (rpc.Client.BatchCall: one HTTP request).
	batch := make([]rpc.BatchElem, len(w.holders))
	got := make([]hexutil.Big, len(w.holders))
	for i, h := range w.holders {
		batch[i] = rpc.BatchElem{Method: "eth_getBalance", Args: []any{h, "latest"}, Result: &got[i]}
	}
	if err := bx.Client().BatchCallContext(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i, h := range w.holders {
		want, _ := w.geth.BalanceAt(ctx, h, n)
		if batch[i].Error != nil || got[i].ToInt().Cmp(want) != 0 {
			t.Errorf("batch: %s: balidx %v (%v), geth %v", h, got[i].ToInt(), batch[i].Error, want)
		}
		compared++
	}
	// Half the holders never held the fee token: both tokens were first
	// seen with every holder named (their coverage is full), so balidx
	// answers those with a vouched 0, as geth does, and guesses nothing.
	if compared != 3*10+10+10+10 || withheld != 0 {
		t.Errorf("%d reads compared, %d not guessed; want 60 and 0", compared, withheld)
	}
	// Blocks balidx cannot answer for: geth's wording, never a value.
	for name, block := range map[string]*big.Int{"an older block": big.NewInt(int64(w.trusted) - 1), "pending": big.NewInt(-1), "a later block": big.NewInt(int64(w.trusted) + 1)} {
		if _, err := bx.BalanceAt(ctx, w.holders[0], block); err == nil || err.Error() != "header not found" {
			t.Errorf("%s: got %v, want header not found", name, err)
		}
	}
	var res any
	err = bx.Client().CallContext(ctx, &res, "eth_sendRawTransaction", "0x00")
	var rpcErr rpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.ErrorCode() != -32601 || err.Error() != "the method eth_sendRawTransaction does not exist/is not available" {
		t.Errorf("an unknown method: got %v", err)
	}
	// Over quota: HTTP 429, which the Go client reports with its status.
	stingy := dialSigned(t, w.balidxRPC, "stingy-go")
	for range 2 {
		if _, err := stingy.BlockNumber(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err = stingy.BlockNumber(ctx)
	var httpErr rpc.HTTPError
	if !errors.As(err, &httpErr) || httpErr.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(httpErr.Body), `"code":-32005`) {
		t.Errorf("over quota: got %v", err)
	}
}

// ethers v6 and viem, unmodified (rpc-conformance/package-lock.json), read
// through balidx what they read through geth at its trusted block
// (rpc-conformance/wallets.mjs says what each reads).
func TestWalletLibrariesAgainstGeth(t *testing.T) {
	dir := os.Getenv("BALIDX_WALLETS")
	if dir == "" {
		t.Skip("BALIDX_WALLETS is not set: `make test` installs rpc-conformance's packages and runs this test")
	}
	w := startWalletChain(t)
	cfg, err := json.Marshal(map[string]any{
		"balidx": w.balidxRPC, "geth": w.gethHTTP, "chainId": w.chainID,
		"trusted": w.trusted, "trustedHash": w.trustedHash, "holders": w.holders, "tokens": w.tokens,
		"multicall": w.multicall, "multicallBlock": w.multicallBlock,
		"client": walletClient, "secret": walletSecret,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "wallets.mjs"))
	cmd.Env = append(os.Environ(), "BALIDX_CONFORMANCE="+string(cfg))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("node wallets.mjs: %v", err)
	}
}
