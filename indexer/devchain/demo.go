package devchain

import (
	"context"
	"crypto/ecdsa"
	_ "embed"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"
)

// The demo contracts, compiled from contracts/Demo.sol by contracts/build.sh.
var (
	//go:embed contracts/Token.bin
	tokenBin string
	//go:embed contracts/Token.abi
	tokenABIJSON string
	//go:embed contracts/Splitter.bin
	splitterBin string
	//go:embed contracts/Splitter.abi
	splitterABIJSON string
	//go:embed contracts/RebaseToken.bin
	rebaseBin string
	//go:embed contracts/RebaseToken.abi
	rebaseABIJSON string
	//go:embed contracts/CollectorToken.bin
	collectorBin string
	//go:embed contracts/CollectorToken.abi
	collectorABIJSON string
	//go:embed contracts/InterestToken.bin
	interestBin string
	//go:embed contracts/InterestToken.abi
	interestABIJSON string
	//go:embed contracts/QuietMintToken.bin
	quietBin string
	//go:embed contracts/QuietMintToken.abi
	quietABIJSON string
	//go:embed contracts/BrokenToken.bin
	brokenBin string

	tokenABI     = mustABI(tokenABIJSON)
	splitterABI  = mustABI(splitterABIJSON)
	rebaseABI    = mustABI(rebaseABIJSON)
	collectorABI = mustABI(collectorABIJSON)
)

// The tokens whose balances move without a Transfer log naming the holder
// (contracts/Demo.sol): the indexer must keep them exact or withhold them.
const (
	RebaseToken    = "RebaseToken"    // one index write changes every balance
	CollectorToken = "CollectorToken" // fees credited to a collector no log names
	InterestToken  = "InterestToken"  // balances grow with block.timestamp: withheld
	QuietMintToken = "QuietMintToken" // mints without a Transfer log
	BrokenToken    = "BrokenToken"    // logs transfers, has no balanceOf: withheld (not in the demo's traffic)
)

// Deployment is the creation code of one of the demo's odd tokens
// (RebaseToken, CollectorToken, InterestToken, QuietMintToken); args are
// the constructor's (CollectorToken: fee in basis points, collector).
func Deployment(contract string, args ...any) []byte {
	code := map[string]string{RebaseToken: rebaseBin, CollectorToken: collectorBin, InterestToken: interestBin, QuietMintToken: quietBin, BrokenToken: brokenBin}[contract]
	if code == "" {
		panic("devchain: no contract " + contract)
	}
	var packed []byte
	if contract == CollectorToken {
		var err error
		if packed, err = collectorABI.Pack("", args...); err != nil {
			panic(err)
		}
	}
	return append(common.FromHex(strings.TrimSpace(code)), packed...)
}

// RebaseCall packs RebaseToken.rebase(bps): every balance grows by bps
// basis points (shrinks, if negative).
func RebaseCall(bps int64) []byte {
	data, err := rebaseABI.Pack("rebase", big.NewInt(bps))
	if err != nil {
		panic(err)
	}
	return data
}

// TokenDeployment is the creation code of a Token named name charging
// feeBps basis points per transfer.
func TokenDeployment(name string, feeBps int64) []byte {
	args, err := tokenABI.Pack("", name, big.NewInt(feeBps))
	if err != nil {
		panic(err) // the arguments are typed: a mismatch is a bug
	}
	return append(common.FromHex(strings.TrimSpace(tokenBin)), args...)
}

// SplitterDeployment is the creation code of a Splitter.
func SplitterDeployment() []byte { return common.FromHex(strings.TrimSpace(splitterBin)) }

// TokenCall packs a call of a Token method (mint, burn, transfer,
// balanceOf); the odd tokens' mint, transfer and balanceOf are the same.
func TokenCall(method string, args ...any) []byte {
	data, err := tokenABI.Pack(method, args...)
	if err != nil {
		panic(fmt.Sprintf("Token.%s: %v", method, err))
	}
	return data
}

// SplitCall packs Splitter.split(a, b).
func SplitCall(a, b common.Address) []byte {
	data, err := splitterABI.Pack("split", a, b)
	if err != nil {
		panic(err)
	}
	return data
}

func mustABI(s string) abi.ABI {
	a, err := abi.JSON(strings.NewReader(s))
	if err != nil {
		panic(fmt.Sprintf("embedded ABI: %v", err))
	}
	return a
}

// Demo holds the demo accounts and contracts and makes random traffic.
type Demo struct {
	Chain    *Chain
	Accounts []common.Address // funded in genesis, in key order
	Coinbase common.Address   // receives the fees
	Token    common.Address   // plain ERC-20
	FeeToken common.Address   // ERC-20 burning 1% of every transfer
	Splitter common.Address   // forwards ETH to two accounts by internal calls
	// The odd tokens, by contract name (RebaseToken, …): all but
	// InterestToken are exact; InterestToken is withheld.
	Odd       map[string]common.Address
	Collector common.Address // CollectorToken's fee collector, in no log
	keys      []*ecdsa.PrivateKey
	nonces    []uint64
	rng       *rand.Rand
	withdraw  uint64 // next withdrawal index
	quietSeen bool   // the quiet token's owner has made its first logged transfer
	// recipients: every address Step sent to, once each: brand-new ones
	// may hold tokens without an account in the state.
	recipients []common.Address
}

// DemoConfig configures StartDemo.
type DemoConfig struct {
	Accounts int    // funded accounts
	Seed     uint64 // derives the keys and the traffic
	Listen   bool   // serve JSON-RPC over WebSocket and HTTP on loopback
}

// StartDemo starts a chain with funded accounts, deploys the contracts and
// mints tokens to every account.
func StartDemo(ctx context.Context, cfg DemoConfig) (*Demo, error) {
	n, seed := cfg.Accounts, cfg.Seed
	d := &Demo{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	alloc := types.GenesisAlloc{}
	for i := range n {
		key, err := crypto.ToECDSA(crypto.Keccak256([]byte(fmt.Sprintf("balidx demo %d %d", seed, i))))
		if err != nil {
			return nil, err
		}
		addr := crypto.PubkeyToAddress(key.PublicKey)
		d.keys = append(d.keys, key)
		d.Accounts = append(d.Accounts, addr)
		alloc[addr] = types.Account{Balance: new(big.Int).Mul(big.NewInt(1000), big.NewInt(params.Ether))}
	}
	d.nonces = make([]uint64, n)
	d.Coinbase = common.HexToAddress("0x00000000000000000000000000000000C0FFEE01")
	chain, err := New(alloc, d.Coinbase, cfg.Listen)
	if err != nil {
		return nil, err
	}
	d.Chain = chain
	if err := d.deploy(ctx); err != nil {
		chain.Close()
		return nil, err
	}
	return d, nil
}

// Close stops the chain.
func (d *Demo) Close() error { return d.Chain.Close() }

func (d *Demo) deploy(ctx context.Context) error {
	owner := 0
	deploy := func(code []byte) (common.Address, error) {
		addr := crypto.CreateAddress(d.Accounts[owner], d.nonces[owner])
		return addr, d.send(ctx, owner, nil, nil, code, 2_000_000)
	}
	var err error
	if d.Token, err = deploy(TokenDeployment("Demo Token", 0)); err != nil {
		return err
	}
	if d.FeeToken, err = deploy(TokenDeployment("Fee Token", 100)); err != nil {
		return err
	}
	if d.Splitter, err = deploy(SplitterDeployment()); err != nil {
		return err
	}
	d.Collector = common.HexToAddress("0x00000000000000000000000000000000C011EC70")
	d.Odd = map[string]common.Address{}
	for _, name := range []string{RebaseToken, CollectorToken, InterestToken, QuietMintToken} {
		if d.Odd[name], err = deploy(Deployment(name, big.NewInt(250), d.Collector)); err != nil {
			return err
		}
	}
	d.Chain.Commit()
	for i, a := range d.Accounts {
		for _, tok := range []common.Address{d.Token, d.FeeToken, d.Odd[RebaseToken], d.Odd[CollectorToken], d.Odd[InterestToken]} {
			data := TokenCall("mint", a, new(big.Int).Mul(big.NewInt(int64(1000+i)), big.NewInt(params.Ether)))
			if err := d.send(ctx, owner, &tok, nil, data, 1_000_000); err != nil {
				return err
			}
		}
	}
	// The quiet token's first holder gets it without a log: the indexer
	// first sees the token, and this holder, at the holder's first transfer.
	quiet := d.Odd[QuietMintToken]
	if err := d.send(ctx, owner, &quiet, nil, TokenCall("mint", d.Accounts[owner], new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(params.Ether))), 1_000_000); err != nil {
		return err
	}
	d.Chain.Commit()
	return d.checkDeployed(ctx)
}

// Tokens lists every demo token: the two plain ones, then the odd ones.
func (d *Demo) Tokens() []common.Address {
	return []common.Address{d.Token, d.FeeToken, d.Odd[RebaseToken], d.Odd[CollectorToken], d.Odd[InterestToken], d.Odd[QuietMintToken]}
}

// Holders lists every address that may hold a demo token: the accounts,
// the collector and every recipient of Step's transactions, some of which
// hold tokens without having an account in the state.
func (d *Demo) Holders() []common.Address {
	out := append(slices.Clone(d.Accounts), d.Collector)
	for _, r := range d.recipients {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Deploy submits code's creation by the owner (the first account), in the
// next block, and returns the contract's address.
func (d *Demo) Deploy(ctx context.Context, code []byte) (common.Address, error) {
	addr := crypto.CreateAddress(d.Accounts[0], d.nonces[0])
	return addr, d.send(ctx, 0, nil, nil, code, 2_000_000)
}

// Call submits a call of contract to by the owner, in the next block.
func (d *Demo) Call(ctx context.Context, to common.Address, data []byte) error {
	return d.send(ctx, 0, &to, nil, data, 400_000)
}

// Rebase submits a rebase of RebaseToken by bps basis points, in the next block.
func (d *Demo) Rebase(ctx context.Context, bps int64) error {
	tok := d.Odd[RebaseToken]
	return d.send(ctx, 0, &tok, nil, RebaseCall(bps), 100_000)
}

func (d *Demo) checkDeployed(ctx context.Context) error {
	for _, c := range append(d.Tokens(), d.Splitter) {
		code, err := d.Chain.Client.CodeAt(ctx, c, nil)
		if err != nil {
			return err
		}
		if len(code) == 0 {
			return fmt.Errorf("devchain: contract %s was not deployed", c.Hex())
		}
	}
	return nil
}

// send signs and submits a transaction from account i.
func (d *Demo) send(ctx context.Context, i int, to *common.Address, value *big.Int, data []byte, gas uint64) error {
	head, err := d.Chain.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return err
	}
	tip := big.NewInt(params.GWei)
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	if value == nil {
		value = new(big.Int)
	}
	tx := types.NewTx(&types.DynamicFeeTx{
		ChainID: big.NewInt(ChainID), Nonce: d.nonces[i], GasTipCap: tip, GasFeeCap: feeCap,
		Gas: gas, To: to, Value: value, Data: data,
	})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(big.NewInt(ChainID)), d.keys[i])
	if err != nil {
		return err
	}
	if err := d.Chain.Client.SendTransaction(ctx, signed); err != nil {
		return fmt.Errorf("devchain: send from %s nonce %d: %w", d.Accounts[i].Hex(), d.nonces[i], err)
	}
	d.nonces[i]++
	return nil
}

// Step submits a few random transactions (and now and then a withdrawal)
// and commits them as one block, with what was submitted since the last.
func (d *Demo) Step(ctx context.Context) (common.Hash, error) {
	n := len(d.Accounts)
	if !d.quietSeen {
		// The quiet token's first logged transfer, by the owner it was
		// minted to without a log: from this block on the token is seen.
		quiet := d.Odd[QuietMintToken]
		if err := d.send(ctx, 0, &quiet, nil, TokenCall("transfer", d.Accounts[1%n], big.NewInt(params.Ether)), 400_000); err != nil {
			return common.Hash{}, err
		}
		d.quietSeen = true
	}
	txs := 1 + d.rng.IntN(6)
	for range txs {
		from := d.rng.IntN(n)
		to := d.Accounts[d.rng.IntN(n)]
		if d.rng.IntN(8) == 0 { // now and then a brand-new account
			to = common.BigToAddress(big.NewInt(int64(d.rng.Uint32()) + 1<<40))
		}
		if !slices.Contains(d.recipients, to) {
			d.recipients = append(d.recipients, to)
		}
		amount := big.NewInt(int64(1 + d.rng.IntN(1_000_000_000)))
		amount.Mul(amount, big.NewInt(params.GWei))
		var err error
		switch d.rng.IntN(10) {
		case 0, 1: // plain ETH transfer
			err = d.send(ctx, from, &to, amount, nil, 21_000)
		case 2: // ETH through the splitter's internal calls
			other := d.Accounts[d.rng.IntN(n)]
			err = d.send(ctx, from, &d.Splitter, amount, SplitCall(to, other), 400_000)
		case 3: // token transfer
			err = d.send(ctx, from, &d.Token, nil, TokenCall("transfer", to, amount), 400_000)
		case 4: // fee-on-transfer token transfer
			err = d.send(ctx, from, &d.FeeToken, nil, TokenCall("transfer", to, amount), 400_000)
		case 5: // burn, or a mint by the owner
			data := TokenCall("burn", amount)
			if from == 0 {
				data = TokenCall("mint", to, amount)
			}
			err = d.send(ctx, from, &d.Token, nil, data, 400_000)
		case 6: // a rebase by the owner (no log), or a transfer of shares
			tok := d.Odd[RebaseToken]
			data := TokenCall("transfer", to, amount)
			if from == 0 {
				data = RebaseCall(int64(d.rng.IntN(400)) - 100)
			}
			err = d.send(ctx, from, &tok, nil, data, 400_000)
		case 7: // a transfer whose fee goes to the collector, named by no log
			tok := d.Odd[CollectorToken]
			err = d.send(ctx, from, &tok, nil, TokenCall("transfer", to, amount), 400_000)
		case 8: // the interest-bearing token
			tok := d.Odd[InterestToken]
			err = d.send(ctx, from, &tok, nil, TokenCall("transfer", to, amount), 400_000)
		case 9: // the quiet token's owner: a transfer, or a mint without a log
			tok := d.Odd[QuietMintToken]
			data := TokenCall("transfer", to, amount)
			if d.rng.IntN(2) == 0 {
				data = TokenCall("mint", to, amount)
			}
			err = d.send(ctx, 0, &tok, nil, data, 400_000)
		}
		if err != nil {
			return common.Hash{}, err
		}
	}
	if d.rng.IntN(4) == 0 {
		to := d.Accounts[d.rng.IntN(n)]
		if err := d.Chain.AddWithdrawal(ctx, d.withdraw, to, uint64(1+d.rng.IntN(1_000_000))); err != nil {
			return common.Hash{}, err
		}
		d.withdraw++
	}
	return d.Chain.Commit(), nil
}

// BalanceOf reads holder's balance of token at block number at.
func (d *Demo) BalanceOf(ctx context.Context, token, holder common.Address, at *big.Int) (*big.Int, error) {
	out, err := d.Chain.Client.CallContract(ctx, ethereum.CallMsg{To: &token, Data: TokenCall("balanceOf", holder)}, at)
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(out), nil
}
