package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
)

// The node's tracers: what each transaction changed, the preimages of the
// slots it computed, and what a balanceOf call depends on.

// CheckTracers fails with ErrNoDebugAPI unless the node has the tracers
// that keep token balances exact (erc7562Tracer, keccak256PreimageTracer:
// geth 1.16 and later).
func (n *Node) CheckTracers(ctx context.Context) error {
	call := map[string]any{"to": common.Address{}}
	for _, tracer := range []string{"erc7562Tracer", "keccak256PreimageTracer"} {
		var out json.RawMessage
		err := n.call(ctx, &out, "debug_traceCall", call, "latest", map[string]any{"tracer": tracer, "timeout": "5s"})
		if err != nil {
			return fmt.Errorf("%w: tracer %s: %v (balidx needs geth 1.16 or later, or a node with the same tracers)", ErrNoDebugAPI, tracer, err)
		}
	}
	return nil
}

// accountState is a prestateTracer account: its balance, and in diffMode
// the storage slots the transaction changed (code is disabled in the trace
// config).
type accountState struct {
	Balance *hexutil.U256               `json:"balance"` // over 256 bits: a decoding error
	Storage map[common.Hash]common.Hash `json:"storage"`
}

// txDiff is one transaction's prestateTracer result in diffMode.
type txDiff struct {
	TxHash common.Hash `json:"txHash"`
	Result struct {
		Pre  map[common.Address]accountState `json:"pre"`
		Post map[common.Address]accountState `json:"post"`
	} `json:"result"`
	Error string `json:"error"`
}

var traceConfig = map[string]any{
	"tracer":       "prestateTracer",
	"tracerConfig": map[string]any{"diffMode": true, "disableCode": true, "disableStorage": false},
	"timeout":      "60s",
}

// TraceBlock returns the balance and storage diffs of every transaction of
// block hash.
func (n *Node) TraceBlock(ctx context.Context, hash common.Hash) ([]txDiff, error) {
	var out []txDiff
	if err := n.call(ctx, &out, "debug_traceBlockByHash", hash, traceConfig); err != nil {
		return nil, err
	}
	return out, nil
}

// maxPreimages bounds the KECCAK256 preimages accepted for one block.
const maxPreimages = 1 << 20

// Preimages returns the input of every KECCAK256 the transactions of block
// hash computed, by its hash: the holder address behind each mapping slot
// a transaction wrote (keccak256PreimageTracer).
func (n *Node) Preimages(ctx context.Context, hash common.Hash) (map[common.Hash][]byte, error) {
	var out []struct {
		Result map[common.Hash]hexutil.Bytes `json:"result"`
		Error  string                        `json:"error"`
	}
	if err := n.call(ctx, &out, "debug_traceBlockByHash", hash, map[string]any{"tracer": "keccak256PreimageTracer", "timeout": "60s"}); err != nil {
		return nil, err
	}
	all := make(map[common.Hash][]byte)
	for i, tx := range out {
		if tx.Error != "" {
			return nil, fmt.Errorf("%w: preimages of transaction %d: %s", ErrBadAnswer, i, tx.Error)
		}
		for h, p := range tx.Result {
			all[h] = p
		}
		if len(all) > maxPreimages {
			return nil, fmt.Errorf("%w: block %s computed over %d hashes", ErrBadAnswer, hash, maxPreimages)
		}
	}
	return all, nil
}

// callFrame is one frame of an erc7562Tracer trace: what a call read and
// which opcodes it ran (keccak, on the outermost frame, has the input of
// every KECCAK256 of the whole call).
type callFrame struct {
	Type          string         `json:"type"`
	To            common.Address `json:"to"`
	Output        hexutil.Bytes  `json:"output"`
	Error         string         `json:"error"`
	AccessedSlots struct {
		Reads map[common.Hash]json.RawMessage `json:"reads"`
	} `json:"accessedSlots"`
	UsedOpcodes map[hexutil.Uint64]uint64 `json:"usedOpcodes"`
	Keccak      []hexutil.Bytes           `json:"keccak"`
	Calls       []callFrame               `json:"calls"`
}

// TraceBalanceOf calls token's balanceOf(holder) at block hash under the
// erc7562Tracer: the storage it reads, the preimages of the slots it
// computes and the opcodes it runs tell what its answer depends on.
func (n *Node) TraceBalanceOf(ctx context.Context, token, holder common.Address, at common.Hash) (*callFrame, error) {
	data := append(slices.Clone(balanceOfSelector), common.LeftPadBytes(holder[:], 32)...)
	call := map[string]any{"to": token, "data": hexutil.Bytes(data)}
	var f callFrame
	if err := n.call(ctx, &f, "debug_traceCall", call, rpc.BlockNumberOrHashWithHash(at, true), map[string]any{"tracer": "erc7562Tracer", "timeout": "10s"}); err != nil {
		return nil, err
	}
	return &f, nil
}
