// Package devchain runs go-ethereum's simulated chain in-process with the
// APIs the indexer needs (the debug tracers, withdrawals), and drives demo
// traffic on it: ETH transfers, transfers through a contract's internal
// calls, ERC-20 mints, burns and transfers (one token with a transfer fee).
// It serves `balidx dev` and the pipeline tests; it is a real chain, not a mock.
package devchain

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/rawdb"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/eth/tracers"
	_ "github.com/ethereum/go-ethereum/eth/tracers/native" // registers prestateTracer
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"
)

// ChainID of every dev chain (go-ethereum's dev chain id).
const ChainID = 1337

// Chain is a simulated chain that makes a block when Commit is called.
type Chain struct {
	stack   *node.Node
	beacon  *catalyst.SimulatedBeacon
	backend *eth.Ethereum
	genesis *core.Genesis
	// RPC is an in-process client: subscriptions work, nothing listens on a port.
	RPC    *rpc.Client
	Client *ethclient.Client
}

// New starts a chain whose genesis allocates alloc (plus the system
// contracts every fork needs) and pays block fees to feeRecipient. With
// listen it also serves JSON-RPC over WebSocket and HTTP on free loopback
// ports (eth, net, web3, debug), as a real node would.
func New(alloc types.GenesisAlloc, feeRecipient common.Address, listen bool) (*Chain, error) {
	nodeConf := node.DefaultConfig
	nodeConf.DataDir = ""
	nodeConf.P2P = p2p.Config{NoDiscovery: true, MaxPeers: 0}
	nodeConf.HTTPHost, nodeConf.WSHost = "", ""
	if listen {
		modules := []string{"eth", "net", "web3", "debug"}
		nodeConf.WSHost, nodeConf.WSPort, nodeConf.WSModules = "127.0.0.1", 0, modules
		nodeConf.HTTPHost, nodeConf.HTTPPort, nodeConf.HTTPModules = "127.0.0.1", 0, modules
	}

	genesisAlloc := core.SystemContractAllocs()
	maps.Copy(genesisAlloc, alloc)
	genesis := &core.Genesis{
		Config:     params.AllDevChainProtocolChanges,
		GasLimit:   ethconfig.Defaults.Miner.GasCeil,
		Alloc:      genesisAlloc,
		Timestamp:  uint64(time.Now().Unix()) - 1,
		Difficulty: new(big.Int), // written out so that the genesis survives a JSON round trip
	}
	ethConf := ethconfig.Defaults
	ethConf.Genesis = genesis
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.TxPool.NoLocals = true
	ethConf.Preimages = true
	// An archive: state at every block stays readable, so that catching up
	// from genesis and checking any served block against the chain work
	// however far behind the indexer is.
	ethConf.NoPruning = true
	ethConf.StateScheme = rawdb.HashScheme

	stack, err := node.New(&nodeConf)
	if err != nil {
		return nil, fmt.Errorf("devchain node: %w", err)
	}
	backend, err := eth.New(stack, &ethConf)
	if err != nil {
		stack.Close()
		return nil, fmt.Errorf("devchain eth: %w", err)
	}
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(filters.NewFilterSystem(backend.APIBackend, filters.Config{}))}})
	stack.RegisterAPIs(tracers.APIs(backend.APIBackend))
	// A non-zero period keeps the beacon's own sealing loop and the dev
	// API's mine-on-transaction loop off: blocks are made by Commit only.
	beacon, err := catalyst.NewSimulatedBeacon(math.MaxInt32, feeRecipient, backend)
	if err != nil {
		stack.Close()
		return nil, fmt.Errorf("devchain beacon: %w", err)
	}
	catalyst.RegisterSimulatedBeaconAPIs(stack, beacon)
	if err := stack.Start(); err != nil {
		stack.Close()
		return nil, fmt.Errorf("devchain start: %w", err)
	}
	c := &Chain{stack: stack, beacon: beacon, backend: backend, genesis: genesis, RPC: stack.Attach()}
	c.Client = ethclient.NewClient(c.RPC)
	return c, nil
}

// WSEndpoint is the WebSocket URL, when the chain listens.
func (c *Chain) WSEndpoint() string { return c.stack.WSEndpoint() }

// HTTPEndpoint is the HTTP URL, when the chain listens.
func (c *Chain) HTTPEndpoint() string { return c.stack.HTTPEndpoint() }

// Genesis is the chain's genesis specification.
func (c *Chain) Genesis() *core.Genesis { return c.genesis }

// Commit seals the pending transactions into a new block and returns its hash.
func (c *Chain) Commit() common.Hash { return c.beacon.Commit() }

// Fork rewinds the head to parent; later Commits build a competing branch
// that becomes canonical once it is the longer one.
func (c *Chain) Fork(parent common.Hash) error { return c.beacon.Fork(parent) }

// AddWithdrawal queues a beacon-chain withdrawal (amount in gwei) for the
// next block.
func (c *Chain) AddWithdrawal(ctx context.Context, index uint64, to common.Address, gwei uint64) error {
	w := &types.Withdrawal{Index: index, Validator: index, Address: to, Amount: gwei}
	return c.RPC.CallContext(ctx, nil, "dev_addWithdrawal", w)
}

// Close stops the chain.
func (c *Chain) Close() error {
	c.RPC.Close()
	err := c.beacon.Stop()
	if cerr := c.stack.Close(); err == nil {
		err = cerr
	}
	return err
}
