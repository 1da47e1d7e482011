package indexer

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"testing"

	"github.com/balidx/balidx"

	"github.com/balidx/balidx/indexer/devchain"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"
	dto "github.com/prometheus/client_model/go"
)

// BenchmarkRebaseRefresh measures what deriving one block costs when a
// rebasing token with N known holders rebases in it (every holder re-read
// at the block and its parent, the token traced again), against the same
// token's block with one plain transfer (holders=0): time, node exchanges
// (calls and batches) and balanceOf reads per block.
func BenchmarkRebaseRefresh(b *testing.B) {
	for _, n := range []int{0, 1_000, 10_000} {
		b.Run(fmt.Sprintf("holders=%d", n), func(b *testing.B) {
			r := mustRebaseChain(b, n)
			d := &deriver{node: r.node, log: slog.New(slog.NewTextHandler(io.Discard, nil)), book: newTokenBook(), maxRefresh: DefaultMaxRefresh}
			d.book.record(r.holders, nil)
			var h *NodeBlock
			if n == 0 {
				h = r.block(b, devchain.TokenCall("transfer", common.Address{0xbe, 0xef}, big.NewInt(1)))
			} else {
				h = r.block(b, devchain.RebaseCall(100))
			}
			ctx := context.Background()
			before, stats := exchanges(r.node), d.stats
			for b.Loop() {
				if _, _, _, err := d.changes(ctx, h); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(exchanges(r.node)-before)/float64(b.N), "exchanges/op")
			b.ReportMetric(float64(d.stats.refreshedHolders-stats.refreshedHolders)/float64(b.N), "holders-reread/op")
		})
	}
}

// exchanges counts the node's exchanges so far (calls and batches).
func exchanges(n *Node) uint64 {
	var m dto.Metric
	if err := n.latency.Write(&m); err != nil {
		panic(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// rebaseChain is a simulated chain with a RebaseToken minted to holders.
type rebaseChain struct {
	chain   *devchain.Chain
	node    *Node
	key     *ecdsa.PrivateKey
	from    common.Address
	nonce   uint64
	token   common.Address
	holders []balidx.Change // one per holder, for the book
}

func mustRebaseChain(tb testing.TB, holders int) *rebaseChain {
	tb.Helper()
	key, _ := crypto.ToECDSA(crypto.Keccak256([]byte("balidx rebase bench")))
	from := crypto.PubkeyToAddress(key.PublicKey)
	chain, err := devchain.New(types.GenesisAlloc{from: {Balance: new(big.Int).Mul(big.NewInt(1e6), big.NewInt(params.Ether))}}, common.Address{0xc0}, false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { chain.Close() })
	r := &rebaseChain{chain: chain, node: NewNode(chain.RPC), key: key, from: from}
	r.token = crypto.CreateAddress(from, 0)
	r.send(tb, nil, devchain.Deployment(devchain.RebaseToken))
	chain.Commit()
	amount := big.NewInt(1e18)
	r.send(tb, &r.token, devchain.TokenCall("mint", from, amount)) // the sender of the plain transfer
	for i := range holders {
		h := common.BigToAddress(big.NewInt(int64(i) + 1<<32))
		r.send(tb, &r.token, devchain.TokenCall("mint", h, amount))
		r.holders = append(r.holders, balidx.Change{Account: h, Asset: r.token})
		if i%200 == 199 {
			r.commitAll(tb)
		}
	}
	r.commitAll(tb)
	return r
}

// commitAll makes blocks until no transaction is pending.
func (r *rebaseChain) commitAll(tb testing.TB) {
	tb.Helper()
	for {
		r.chain.Commit()
		n, err := r.chain.Client.PendingTransactionCount(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (r *rebaseChain) send(tb testing.TB, to *common.Address, data []byte) {
	tb.Helper()
	tx := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(devchain.ChainID), Nonce: r.nonce, GasTipCap: big.NewInt(params.GWei),
		GasFeeCap: big.NewInt(100 * params.GWei), Gas: 2_000_000, To: to, Data: data})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(big.NewInt(devchain.ChainID)), r.key)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.chain.Client.SendTransaction(context.Background(), signed); err != nil {
		tb.Fatal(err)
	}
	r.nonce++
}

// block commits one call of the token and returns the block's header.
func (r *rebaseChain) block(tb testing.TB, data []byte) *NodeBlock {
	tb.Helper()
	r.send(tb, &r.token, data)
	hash := r.chain.Commit()
	h, err := r.node.HeaderByHash(context.Background(), hash)
	if err != nil || h == nil || len(h.Txs) != 1 {
		tb.Fatalf("block %s: want one transaction (%v)", hash, err)
	}
	return h
}
