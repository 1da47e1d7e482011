package indexer

// What a token seed reads of the node: the token's Transfer logs over a
// range of blocks, and its holders' balances at the seed's block — in
// JSON-RPC batches, or through Multicall3's aggregate3 where it is
// deployed.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/holiman/uint256"
)

// ErrUnseedableToken: a token of the list cannot be seeded exactly (its
// logs are not an ERC-20's, or balanceOf does not answer one word).
var ErrUnseedableToken = errors.New("token cannot be seeded")

// TokenTransfers returns token's Transfer logs of blocks from..to, each
// checked: of that token and range, not removed, an ERC-20's Transfer
// (three topics, the two holders address words).
func (n *Node) TokenTransfers(ctx context.Context, token common.Address, from, to uint64) ([]types.Log, error) {
	var logs []types.Log
	filter := map[string]any{"address": token, "fromBlock": hexutil.Uint64(from), "toBlock": hexutil.Uint64(to), "topics": [][]common.Hash{{transferTopic}}}
	if err := n.call(ctx, &logs, "eth_getLogs", filter); err != nil {
		return nil, err
	}
	for i := range logs {
		l := &logs[i]
		switch {
		case l.Address != token || l.BlockNumber < from || l.BlockNumber > to || l.Removed || len(l.Topics) == 0 || l.Topics[0] != transferTopic:
			return nil, fmt.Errorf("%w: eth_getLogs of %s for blocks %d..%d returned a log of %s at block %d (removed %v)", ErrBadAnswer, token.Hex(), from, to, l.Address.Hex(), l.BlockNumber, l.Removed)
		case len(l.Topics) != 3 || !isAddressWord(l.Topics[1][:]) || !isAddressWord(l.Topics[2][:]):
			return nil, fmt.Errorf("%w: %s: its Transfer log at block %d has %d topics, not an ERC-20's (from and to): remove it from the token list", ErrUnseedableToken, token.Hex(), l.BlockNumber, len(l.Topics))
		}
	}
	return logs, nil
}

// isRangeLimit says whether err is the node refusing a range query as too
// broad (a block range or result limit: geth's --rpc.rangelimit, a
// provider's 10k results): an answer that is an error, or an HTTP 413.
func isRangeLimit(err error) bool {
	var answer rpc.Error
	var status rpc.HTTPError
	return errors.As(err, &answer) || errors.As(err, &status) && status.StatusCode == 413
}

// HasCode says whether account has code at block at.
func (n *Node) HasCode(ctx context.Context, account common.Address, at common.Hash) (bool, error) {
	var code hexutil.Bytes
	if err := n.call(ctx, &code, "eth_getCode", account, rpc.BlockNumberOrHashWithHash(at, true)); err != nil {
		return false, err
	}
	return len(code) > 0, nil
}

// multicallABI is Multicall3's aggregate3.
var multicallABI = func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(`[{"name":"aggregate3","type":"function","stateMutability":"payable",
"inputs":[{"name":"calls","type":"tuple[]","components":[{"name":"target","type":"address"},{"name":"allowFailure","type":"bool"},{"name":"callData","type":"bytes"}]}],
"outputs":[{"name":"returnData","type":"tuple[]","components":[{"name":"success","type":"bool"},{"name":"returnData","type":"bytes"}]}]}]`))
	if err != nil {
		panic(err)
	}
	return a
}()

// multicallCalls bounds the balanceOf calls of one aggregate3 (~3–30k gas
// each, far under eth_call's default 50M gas cap).
const multicallCalls = 256

type call3 struct {
	Target       common.Address
	AllowFailure bool
	CallData     []byte
}

type result3 struct {
	Success    bool
	ReturnData []byte
}

// HolderBalances returns each holder's balance of token at block at, read
// through Multicall3 at multicall (zero address: in JSON-RPC batches). A
// holder whose balanceOf fails or answers other than one word makes the
// token unseedable.
func (n *Node) HolderBalances(ctx context.Context, token common.Address, holders []common.Address, at common.Hash, multicall common.Address) ([]uint256.Int, error) {
	out := make([]uint256.Int, len(holders))
	if multicall == (common.Address{}) {
		qs := make([]TokenQuery, len(holders))
		for i, h := range holders {
			qs[i] = TokenQuery{Token: token, Holder: h}
		}
		res, errs, err := n.TokenBalances(ctx, qs, at)
		if err != nil {
			return nil, err
		}
		for i, e := range errs {
			if e != nil {
				return nil, fmt.Errorf("%w: %s: balanceOf(%s): %v: remove it from the token list", ErrUnseedableToken, token.Hex(), holders[i].Hex(), e)
			}
		}
		return res, nil
	}
	for lo := 0; lo < len(holders); lo += multicallCalls {
		part := holders[lo:min(lo+multicallCalls, len(holders))]
		calls := make([]call3, len(part))
		for i, h := range part {
			calls[i] = call3{Target: token, AllowFailure: true, CallData: append(slices.Clone(balanceOfSelector), common.LeftPadBytes(h[:], 32)...)}
		}
		data, err := multicallABI.Pack("aggregate3", calls)
		if err != nil {
			return nil, fmt.Errorf("pack aggregate3: %w", err)
		}
		var answer hexutil.Bytes
		req := map[string]any{"to": multicall, "data": hexutil.Bytes(data)}
		if err := n.call(ctx, &answer, "eth_call", req, rpc.BlockNumberOrHashWithHash(at, true)); err != nil {
			return nil, err
		}
		var results []result3
		if vals, err := multicallABI.Unpack("aggregate3", answer); err != nil || len(vals) != 1 {
			return nil, fmt.Errorf("%w: aggregate3 at %s answered %d bytes: %v", ErrBadAnswer, multicall.Hex(), len(answer), err)
		} else if err := multicallABI.Methods["aggregate3"].Outputs.Copy(&results, vals); err != nil || len(results) != len(part) {
			return nil, fmt.Errorf("%w: aggregate3 at %s answered %d results for %d calls: %v", ErrBadAnswer, multicall.Hex(), len(results), len(part), err)
		}
		for i, r := range results {
			if !r.Success || len(r.ReturnData) != 32 {
				return nil, fmt.Errorf("%w: %s: balanceOf(%s) through Multicall3: success %v, %d bytes: remove it from the token list", ErrUnseedableToken, token.Hex(), part[i].Hex(), r.Success, len(r.ReturnData))
			}
			out[lo+i].SetBytes32(r.ReturnData)
		}
	}
	return out, nil
}

// totalSupplySelector is the 4-byte selector of totalSupply().
var totalSupplySelector = hexutil.Bytes{0x18, 0x16, 0x0d, 0xdd}

// TotalSupply is token's totalSupply() at block at; nil when the token
// answers it with an error or other than one word.
func (n *Node) TotalSupply(ctx context.Context, token common.Address, at common.Hash) (*uint256.Int, error) {
	var out hexutil.Bytes
	err := n.call(ctx, &out, "eth_call", map[string]any{"to": token, "data": totalSupplySelector}, rpc.BlockNumberOrHashWithHash(at, true))
	var answer rpc.Error
	switch {
	case errors.As(err, &answer) && !errors.Is(err, ErrHistoricalState):
		return nil, nil // reverted: unreadable
	case err != nil:
		return nil, err
	case len(out) != 32:
		return nil, nil
	}
	return new(uint256.Int).SetBytes32(out), nil
}
