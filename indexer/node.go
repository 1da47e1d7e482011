package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/holiman/uint256"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// callTimeout bounds every call to the node.
const callTimeout = 30 * time.Second

// maxBatch bounds the calls sent in one JSON-RPC batch.
const maxBatch = 100

// Node is the indexer's view of an Ethereum node over JSON-RPC. Every call
// passes a circuit breaker: after 5 consecutive transport failures (the
// node did not answer) it opens and calls fail at once for 10 s, then one
// probe is let through (half-open) and a success closes it. An answer that
// is an error (a JSON-RPC error) is not a failure of the node.
type Node struct {
	rpc     *rpc.Client
	breaker *gobreaker.CircuitBreaker[struct{}]
	latency prometheus.Histogram // of every exchange, failed ones included
	errors  prometheus.Counter   // exchanges the node did not answer
}

// BreakerOpenFor is how long an open breaker refuses calls before probing.
const BreakerOpenFor = 10 * time.Second

func newNode(c *rpc.Client) *Node {
	return &Node{rpc: c, latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "balidx_indexer_node_request_duration_seconds", Help: "Node JSON-RPC exchanges (a call or a batch).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30},
	}), errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "balidx_indexer_node_errors_total", Help: "Node exchanges that failed without an answer (transport errors, timeouts).",
	}), breaker: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "node",
		MaxRequests: 1,
		Timeout:     BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		IsSuccessful: func(err error) bool {
			var answered rpc.Error
			return err == nil || errors.As(err, &answered) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			slog.Warn("node circuit breaker", "from", from.String(), "to", to.String())
		},
	})}
}

// BreakerState is the breaker's state: 0 closed, 1 half-open, 2 open.
func (n *Node) BreakerState() int {
	switch n.breaker.State() {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// guarded runs one exchange with the node through the breaker.
func (n *Node) guarded(f func() error) error {
	_, err := n.breaker.Execute(func() (struct{}, error) {
		start := time.Now()
		err := f()
		n.latency.Observe(time.Since(start).Seconds())
		var answered rpc.Error
		if err != nil && !errors.As(err, &answered) {
			n.errors.Inc()
		}
		return struct{}{}, err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("node unreachable, not asking for %s: %w", BreakerOpenFor, err)
	}
	return err
}

// Dial connects to url (ws://, wss://, http://, https://, or an IPC path).
func Dial(ctx context.Context, url string) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, err := rpc.DialContext(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("dial node %s: %w", redactURL(url), err)
	}
	return newNode(c), nil
}

// NewNode wraps an existing client (the in-process dev chain's).
func NewNode(c *rpc.Client) *Node { return newNode(c) }

// Close closes the connection.
func (n *Node) Close() { n.rpc.Close() }

func (n *Node) call(ctx context.Context, result any, method string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := n.guarded(func() error { return n.rpc.CallContext(ctx, result, method, args...) }); err != nil {
		return classify(method, err)
	}
	return nil
}

// classify turns node errors the operator can act on into named errors.
func classify(method string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "historical state") || strings.Contains(msg, "missing trie node") || strings.Contains(msg, "state not available"):
		return fmt.Errorf("%s: %w: %v (run the node as an archive: geth --gcmode archive --state.scheme hash)", method, ErrHistoricalState, err)
	case strings.Contains(msg, "does not exist/is not available") || strings.Contains(msg, "method not found"):
		if strings.HasPrefix(method, "debug_") {
			return fmt.Errorf("%s: %w: %v (enable it: geth --ws.api eth,net,web3,debug or --http.api eth,net,web3,debug)", method, ErrNoDebugAPI, err)
		}
	}
	return fmt.Errorf("%s: %w", method, err)
}

// ChainID is the node's chain id.
func (n *Node) ChainID(ctx context.Context) (uint64, error) {
	var id hexutil.Big
	if err := n.call(ctx, &id, "eth_chainId"); err != nil {
		return 0, err
	}
	if !id.ToInt().IsUint64() || id.ToInt().Sign() == 0 {
		return 0, fmt.Errorf("%w: chain id %s", ErrBadAnswer, id.ToInt())
	}
	return id.ToInt().Uint64(), nil
}

// CheckDebugAPI fails with ErrNoDebugAPI unless the node serves the debug namespace.
func (n *Node) CheckDebugAPI(ctx context.Context) error {
	var modules map[string]string
	if err := n.call(ctx, &modules, "rpc_modules"); err != nil {
		return err
	}
	if _, ok := modules["debug"]; !ok {
		return fmt.Errorf("%w: debug_traceBlockByHash is needed for exact native balances; the node serves %v (enable it: geth --ws.api eth,net,web3,debug or --http.api eth,net,web3,debug)",
			ErrNoDebugAPI, slices.Sorted(mapsKeys(modules)))
	}
	return nil
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// NodeBlock is the node's answer for a block (eth_getBlockBy*, without
// transaction bodies): the part of it the indexer reads, in the node's
// encoding. Block gives the model's block.
type NodeBlock struct {
	Number      hexutil.Uint64     `json:"number"`
	Hash        common.Hash        `json:"hash"`
	ParentHash  common.Hash        `json:"parentHash"`
	Timestamp   hexutil.Uint64     `json:"timestamp"`
	Miner       common.Address     `json:"miner"`
	Txs         []common.Hash      `json:"transactions"`
	Withdrawals []types.Withdrawal `json:"withdrawals"`
}

// HeaderByNumber returns the block at number (a height, or
// rpc.SafeBlockNumber / FinalizedBlockNumber / LatestBlockNumber); nil if the
// node has none.
func (n *Node) HeaderByNumber(ctx context.Context, number rpc.BlockNumber) (*NodeBlock, error) {
	var h *NodeBlock
	if err := n.call(ctx, &h, "eth_getBlockByNumber", number, false); err != nil {
		return nil, err
	}
	return h, h.check()
}

// HeaderByHash returns the block with hash; nil if the node has none.
func (n *Node) HeaderByHash(ctx context.Context, hash common.Hash) (*NodeBlock, error) {
	var h *NodeBlock
	if err := n.call(ctx, &h, "eth_getBlockByHash", hash, false); err != nil {
		return nil, err
	}
	if h != nil && h.Hash != hash {
		return nil, fmt.Errorf("%w: asked for block %s, got %s", ErrBadAnswer, hash, h.Hash)
	}
	return h, h.check()
}

// Block is h as the model names it.
func (h *NodeBlock) Block() balidx.Block {
	return balidx.Block{Number: uint64(h.Number), Hash: h.Hash, ParentHash: h.ParentHash, Timestamp: uint64(h.Timestamp)}
}

func (h *NodeBlock) check() error {
	if h == nil {
		return nil
	}
	if h.Hash == (common.Hash{}) {
		return fmt.Errorf("%w: block %d without hash", ErrBadAnswer, h.Number)
	}
	if len(h.Txs) > 100_000 || len(h.Withdrawals) > 100_000 {
		return fmt.Errorf("%w: block %d lists %d transactions and %d withdrawals", ErrBadAnswer, h.Number, len(h.Txs), len(h.Withdrawals))
	}
	return nil
}

// Syncing reports whether the node says it is still syncing.
func (n *Node) Syncing(ctx context.Context) (bool, error) {
	var raw json.RawMessage
	if err := n.call(ctx, &raw, "eth_syncing"); err != nil {
		return false, err
	}
	return string(raw) != "false", nil
}

// transferTopic is keccak256("Transfer(address,address,uint256)").
var transferTopic = common.HexToHash("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")

// TransferLogs returns the Transfer-topic logs of block hash.
func (n *Node) TransferLogs(ctx context.Context, hash common.Hash) ([]types.Log, error) {
	var logs []types.Log
	filter := map[string]any{"blockHash": hash, "topics": [][]common.Hash{{transferTopic}}}
	if err := n.call(ctx, &logs, "eth_getLogs", filter); err != nil {
		return nil, err
	}
	for i := range logs {
		if logs[i].BlockHash != hash || logs[i].Removed {
			return nil, fmt.Errorf("%w: eth_getLogs for block %s returned a log of block %s (removed %v)", ErrBadAnswer, hash, logs[i].BlockHash, logs[i].Removed)
		}
	}
	return logs, nil
}

// Balances returns the native balance of each account at block hash.
func (n *Node) Balances(ctx context.Context, accounts []common.Address, at common.Hash) ([]uint256.Int, error) {
	ref := rpc.BlockNumberOrHashWithHash(at, true)
	out := make([]hexutil.U256, len(accounts)) // over 256 bits: a decoding error
	reqs := make([]rpc.BatchElem, len(accounts))
	for i, a := range accounts {
		reqs[i] = rpc.BatchElem{Method: "eth_getBalance", Args: []any{a, ref}, Result: &out[i]}
	}
	if err := n.batch(ctx, reqs); err != nil {
		return nil, err
	}
	res := make([]uint256.Int, len(out))
	for i := range out {
		if reqs[i].Error != nil {
			return nil, classify("eth_getBalance", reqs[i].Error)
		}
		res[i] = uint256.Int(out[i])
	}
	return res, nil
}

// TokenQuery asks for Holder's balance of Token.
type TokenQuery struct {
	Token, Holder common.Address
}

// balanceOfSelector is the 4-byte selector of balanceOf(address).
var balanceOfSelector = []byte{0x70, 0xa0, 0x82, 0x31}

// errNoCode: balanceOf was called on an address without code.
var errNoCode = errors.New("no contract at that address")

// TokenBalances calls balanceOf for each query at block hash. A call that
// reverts or answers something other than one 32-byte word yields an error
// in its place (and a zero amount): the contract is not a readable ERC-20.
func (n *Node) TokenBalances(ctx context.Context, qs []TokenQuery, at common.Hash) ([]uint256.Int, []error, error) {
	ref := rpc.BlockNumberOrHashWithHash(at, true)
	out := make([]hexutil.Bytes, len(qs))
	reqs := make([]rpc.BatchElem, len(qs))
	for i, q := range qs {
		data := append(slices.Clone(balanceOfSelector), common.LeftPadBytes(q.Holder[:], 32)...)
		call := map[string]any{"to": q.Token, "data": hexutil.Bytes(data)}
		reqs[i] = rpc.BatchElem{Method: "eth_call", Args: []any{call, ref}, Result: &out[i]}
	}
	if err := n.batch(ctx, reqs); err != nil {
		return nil, nil, err
	}
	res := make([]uint256.Int, len(qs))
	errs := make([]error, len(qs))
	for i := range qs {
		switch {
		case reqs[i].Error != nil:
			if e := classify("eth_call", reqs[i].Error); errors.Is(e, ErrHistoricalState) {
				return nil, nil, e
			}
			errs[i] = reqs[i].Error
		case len(out[i]) == 0:
			errs[i] = errNoCode
		case len(out[i]) != 32:
			errs[i] = fmt.Errorf("balanceOf answered %d bytes, want 32", len(out[i]))
		default:
			res[i].SetBytes32(out[i])
		}
	}
	return res, errs, nil
}

func (n *Node) batch(ctx context.Context, reqs []rpc.BatchElem) error {
	for lo := 0; lo < len(reqs); lo += maxBatch {
		hi := min(lo+maxBatch, len(reqs))
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := n.guarded(func() error { return n.rpc.BatchCallContext(cctx, reqs[lo:hi]) })
		cancel()
		if err != nil {
			return fmt.Errorf("batch of %d calls: %w", hi-lo, err)
		}
	}
	return nil
}

// redactURL drops credentials from a node URL before it is logged.
func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			return u[:scheme+3] + "…@" + u[at+1:]
		}
	}
	return u
}
