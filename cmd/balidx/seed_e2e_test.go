package main

import (
	"context"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/internal/poll"
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
		err = node.EachAccount(ctx, head.Hash(), nil, indexer.MaxAccountPage, func(p indexer.AccountPage) error {
			for _, a := range p.Accounts {
				found[a.Address] = a.Balance.Dec()
			}
			return nil
		})
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
