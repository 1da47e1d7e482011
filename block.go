// Package balidx is the model every part of balidx shares: blocks, balance
// changes, assets, the trust policy and its violations, withheld tokens,
// the indexer's status. It imports the standard library, go-ethereum's
// common and uint256 only; every other package may import it. The
// packages around it are adapters (events: NATS JetStream; storage: bbolt;
// query: HTTP; indexer: the node).
package balidx

import "github.com/ethereum/go-ethereum/common"

// Block names a block.
type Block struct {
	Number     uint64      `json:"number"`
	Hash       common.Hash `json:"hash"`
	ParentHash common.Hash `json:"parent_hash"`
	Timestamp  uint64      `json:"timestamp"`
}

// BlockRef names a block.
type BlockRef struct {
	Number uint64      `json:"number"`
	Hash   common.Hash `json:"hash"`
}
