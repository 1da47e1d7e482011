package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/internal/poll"
	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/internal/testio"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// A real geth reads its whole state out, page by page, with the preimages
// it keeps (--cache.preimages); without them, the accounts it cannot name
// refuse the seed with the fix, instead of a smaller state taken for whole.
func TestGethAccountRange(t *testing.T) {
	gethBin := gethBinary(t)
	for _, preimages := range []bool{true, false} {
		g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir(), onDemand: true, noPreimages: !preimages}
		g.start(t)
		ctx := context.Background()
		rc, eth, dev := dialGeth(t, g.url())
		sender := newDevSender(t, rc, eth, dev)
		fresh := common.HexToAddress("0x00000000000000000000000000000000000f4e54")
		sender.mined(t, sender.send(t, map[string]any{"to": fresh, "value": (*hexutil.Big)(big.NewInt(12345)), "gas": hexutil.Uint64(21000)}))
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

// A node started from the whole state at block N (--seed, with a token list
// of a plain token and a fee-on-transfer one) agrees with one indexed from
// genesis at every later block: the same digest, every account's balance
// the chain's, no mismatch in an audit. Its seed is cut short after its
// first page and resumed by a restart, from the stream's last page. geth
// refuses log ranges over 4 blocks: the scan's span adapts. The seeded
// tokens' coverage is full from N; a token first minted after N is full
// from that block (on both nodes); a token with holders before N that is
// not in the list is partial on the seeded node, and full on the other.
func TestSeededStartAgreesWithGenesis(t *testing.T) {
	gethBin := gethBinary(t)
	g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir(), onDemand: true, args: []string{"--rpc.rangelimit", "4"}}
	g.start(t)
	t.Cleanup(func() { g.stop(t) })
	ctx := context.Background()
	rc, eth, dev := dialGeth(t, g.url())
	sender := newDevSender(t, rc, eth, dev)
	mined := func(h common.Hash) uint64 { return sender.mined(t, h).BlockNumber.Uint64() }
	send := func(to common.Address, wei int64) common.Hash {
		return sender.send(t, map[string]any{"to": to, "value": (*hexutil.Big)(big.NewInt(wei)), "gas": hexutil.Uint64(21000)})
	}
	deploy := func(name string, feeBps int64) (common.Address, uint64) {
		r := sender.mined(t, sender.call(t, nil, nil, devchain.TokenDeployment(name, feeBps)))
		return r.ContractAddress, r.BlockNumber.Uint64()
	}
	token := func(tok common.Address, method string, to common.Address, amount int64) common.Hash {
		return sender.call(t, &tok, nil, devchain.TokenCall(method, to, big.NewInt(amount)))
	}
	plain, plainAt := deploy("Seed Token", 0)
	fee, _ := deploy("Seed Fee Token", 100)
	other, _ := deploy("Unlisted Token", 0)
	var last common.Hash
	var holders []common.Address
	for i := range 12 {
		h := common.BigToAddress(big.NewInt(int64(i+1) << 40))
		holders = append(holders, h)
		last = send(h, int64(i+1)*1e12)
		token(plain, "mint", h, int64(i+1)*1000)
		if i%3 == 0 {
			token(fee, "mint", dev, 1e6)
			last = token(fee, "transfer", h, int64(i+1)*500)
		}
		if i < 3 {
			token(other, "mint", h, 10)
		}
	}
	seedAt := mined(last)
	late, _ := deploy("Late Token", 0) // after the seed's block, not in its list
	for i := range 6 {                 // after the seed's block: some accounts change, one is new
		last = send(holders[i*2], 7)
		token(plain, "mint", holders[i*2], 5)
		last = token(late, "mint", holders[i], 100)
	}
	last = token(fee, "transfer", holders[1], 300)
	for _, h := range holders[:3] { // the unlisted token's holders, seen again after N
		last = token(other, "mint", h, 1)
	}
	last = send(common.HexToAddress("0x00000000000000000000000000000000000a17e7"), 99)
	mined(send(dev, 0)) // one block more: the last of the activity is trusted
	lastActivity := mined(last)
	list := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(list, fmt.Appendf(nil, "# the seed's tokens\n%s %d\n\n%s   # logs from block 0\n", plain.Hex(), plainAt, strings.ToLower(fee.Hex())), 0o600); err != nil {
		t.Fatal(err)
	}

	genesisNode := startBalidx(t, "run", "--rpc", g.url(), "--data", t.TempDir(), "--confirmations", "1")
	defer genesisNode.stop(t)
	seededData := t.TempDir()
	args := []string{"--rpc", g.url(), "--data", seededData, "--confirmations", "1", "--start-block", strconv.FormatUint(seedAt, 10), "--seed", "--seed-page", "1", "--seed-tokens", list, "--log-level", "info"}
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
	fullFrom := func(st query.Status) map[common.Address]uint64 {
		m := map[common.Address]uint64{}
		for _, f := range st.Coverage.FullTokens {
			m[common.HexToAddress(f.Contract)] = f.FromBlock
		}
		return m
	}
	seededFull, genesisFull := fullFrom(stSeeded), fullFrom(stGenesis)
	lateFrom, ok := genesisFull[late]
	switch {
	case len(seededFull) != 3 || seededFull[plain] != seedAt || seededFull[fee] != seedAt || !ok || seededFull[late] != lateFrom || lateFrom <= seedAt:
		t.Fatalf("seeded node's full tokens %v: want the plain and the fee token from %d, the late token from its first block", seededFull, seedAt)
	case len(genesisFull) != 4 || genesisFull[other] == 0 || genesisFull[plain] == 0 || genesisFull[plain] > seedAt:
		t.Fatalf("full tokens from genesis %v: want all four, each from its first block", genesisFull)
	}
	full := []string{plain.Hex(), fee.Hex(), late.Hex()} // in the order asked, the unlisted token left out
	if v := metric(t, seeded.admin, "balidx_indexer_seed_holders_total"); v == "" || v == "0" {
		t.Fatalf("no token holder read by the seed (%q)", v)
	}
	if !strings.Contains(seeded.stderr.String(), "halving the span") {
		t.Fatalf("geth refuses log ranges over 4 blocks, yet the seed's span never halved:\n%s", seeded.stderr)
	}
	chain := chainView{eth: eth, rpc: rc, tokens: []common.Address{plain, fee, late, other}, holders: holders}
	checkEveryBalance(t, chain, seeded.http, stSeeded)
	checkEveryBalance(t, chain, genesisNode.http, stGenesis)
	// A holder never seen: 0 of a fully covered token, unknown of the
	// unlisted one — and the answer says which.
	var ans struct {
		Coverage struct {
			FullTokens []string `json:"full_tokens"`
		} `json:"coverage"`
	}
	asked := fmt.Sprintf("?token=%s&token=%s&token=%s&token=%s", plain.Hex(), fee.Hex(), late.Hex(), other.Hex())
	if err := getJSON("http://"+seeded.http+"/v1/balances/0x00000000000000000000000000000000000000e1"+asked, &ans); err != nil || fmt.Sprint(ans.Coverage.FullTokens) != fmt.Sprint(full) {
		t.Fatalf("an answer's coverage: %+v %v, want full tokens %v", ans, err, full)
	}
	for _, n := range []*instance{seeded, genesisNode} {
		var out strings.Builder
		if err := run(ctx, []string{"audit", "--rpc", g.url(), "--admin", n.admin}, func(string) string { return "" }, &out, io.Discard); err != nil {
			t.Fatalf("audit: %v\n%s", err, out.String())
		}
	}

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

// A seed killed with SIGKILL at several moments — twice among the pages of
// accounts, twice among the tokens' (reading logs or balances) — the
// process started again each time, ends as a seed that was never
// interrupted: the same block and digest, every balance the chain's.
func TestSeedSurvivesSIGKILL(t *testing.T) {
	gethBin := gethBinary(t)
	bin := buildBalidx(t)
	g := &gethProc{bin: gethBin, apis: "eth,net,web3,debug", port: freePort(t), dir: t.TempDir(), onDemand: true}
	g.start(t)
	t.Cleanup(func() { g.stop(t) })
	rc, eth, dev := dialGeth(t, g.url())
	sender := newDevSender(t, rc, eth, dev)
	var tokens []common.Address
	for i, name := range []string{"Kill Token", "Kill Fee Token"} {
		tokens = append(tokens, sender.mined(t, sender.call(t, nil, nil, devchain.TokenDeployment(name, int64(i)*100))).ContractAddress)
	}
	var last common.Hash
	var holders []common.Address
	for i := range 60 {
		h := common.BigToAddress(big.NewInt(int64(i+1) << 42))
		holders = append(holders, h)
		last = sender.send(t, map[string]any{"to": h, "value": (*hexutil.Big)(big.NewInt(int64(i+1) * 1e9)), "gas": hexutil.Uint64(21000)})
		last = sender.call(t, &tokens[i%2], nil, devchain.TokenCall("mint", h, big.NewInt(int64(i+1)*1000)))
		if i%5 == 0 { // a block of its own: more blocks of logs to scan
			sender.mined(t, last)
		}
	}
	seedAt := sender.mined(t, last).BlockNumber.Uint64()
	sender.mined(t, sender.send(t, map[string]any{"to": dev, "value": (*hexutil.Big)(big.NewInt(0)), "gas": hexutil.Uint64(21000)})) // trusts seedAt

	// Pages of one account, logs of 2 blocks at a time, at most 10
	// requests a second: a seed of ~90 pages of accounts takes ~9 s, the
	// tokens' ~10 s more.
	list := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(list, fmt.Appendf(nil, "%s\n%s\n", tokens[0].Hex(), tokens[1].Hex()), 0o600); err != nil {
		t.Fatal(err)
	}
	seedArgs := []string{"--rpc", g.url(), "--confirmations", "1", "--start-block", strconv.FormatUint(seedAt, 10),
		"--seed", "--seed-page", "1", "--seed-rate", "10", "--seed-tokens", list, "--seed-log-span", "2"}
	reference := startBalidx(t, "run", append(seedArgs, "--data", t.TempDir())...)
	defer reference.stop(t)

	data := t.TempDir()
	httpAddr, adminAddr := testaddr.Free(t), testaddr.Free(t)
	// A killed process holds the publishing lease until it expires: the
	// next start publishes once it has, within ~1.25 × --lease-ttl.
	args := append([]string{"run", "--data", data, "--http", httpAddr, "--admin", adminAddr, "--nats-listen", "127.0.0.1:0",
		"--clients", testClientsFile(t), "--log-level", "info", "--lease-ttl", "1s"}, seedArgs...)
	var logs testio.Buffer
	rng := rand.New(rand.NewPCG(4, 2))
	const kills = 4
	for range 2 { // among the accounts
		killAfter(t, time.Duration(2000+rng.IntN(1000))*time.Millisecond, startBin(t, bin, args, &logs))
	}
	for range 2 { // among the tokens: once this process reads one, at a random moment of it
		seen := strings.Count(logs.String(), "seeding a token")
		cmd := startBin(t, bin, args, &logs)
		poll.Until(t, time.Minute, func() error {
			if strings.Count(logs.String(), "seeding a token") == seen {
				return errors.New("not among the tokens yet")
			}
			return nil
		})
		killAfter(t, time.Duration(300+rng.IntN(1500))*time.Millisecond, cmd)
	}
	cmd := startBin(t, bin, args, &logs)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	var want, got query.Status
	poll.Until(t, 2*time.Minute, func() error {
		if err := getJSON("http://"+reference.http+"/v1/status", &want); err != nil {
			return err
		}
		if err := getJSON("http://"+httpAddr+"/v1/status", &got); err != nil {
			return err
		}
		if got.Trusted.Number < seedAt || got.Trusted != want.Trusted {
			return fmt.Errorf("trusted %d and %d, waiting for both at one block ≥ %d", want.Trusted.Number, got.Trusted.Number, seedAt)
		}
		return nil
	})
	if got.Trusted != want.Trusted || got.Snapshot.Digest != want.Snapshot.Digest || got.Snapshot.Accounts != want.Snapshot.Accounts {
		t.Fatalf("after %d kills: block %+v digest %s, %d accounts; uninterrupted: block %+v digest %s, %d accounts\n%s",
			kills, got.Trusted, got.Snapshot.Digest, got.Snapshot.Accounts, want.Trusted, want.Snapshot.Digest, want.Snapshot.Accounts, logs.String())
	}
	resumed := strings.Count(logs.String(), "resuming the seed")
	inTokens := len(regexp.MustCompile(`resuming the seed.* token=0x`).FindAllString(logs.String(), -1))
	if resumed < kills || inTokens < 2 {
		t.Fatalf("%d starts resumed a seed cut short, %d among the tokens: the kills fell outside it\n%s", resumed, inTokens, logs.String())
	}
	t.Logf("%d kills, %d starts resumed a seed cut short; block %d, digest %s, as the uninterrupted seed", kills, resumed, got.Trusted.Number, got.Snapshot.Digest)
	if len(got.Coverage.FullTokens) != 2 || fmt.Sprint(got.Coverage) != fmt.Sprint(want.Coverage) {
		t.Fatalf("coverage after the kills %+v, uninterrupted %+v: want both tokens full", got.Coverage, want.Coverage)
	}
	checkEveryBalance(t, chainView{eth: eth, rpc: rc, tokens: tokens, holders: holders}, httpAddr, got)
}
