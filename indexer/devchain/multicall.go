package devchain

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

var (
	//go:embed contracts/Multicall.bin
	multicallBin string
	//go:embed contracts/Multicall.abi
	multicallABIJSON string
	multicallABI     = mustABI(multicallABIJSON)
)

// MulticallDeployment is the creation code of a Multicall
// (contracts/Multicall.sol): Multicall3's getEthBalance and aggregate3, for
// a dev chain, where Multicall3 is not at its usual address.
func MulticallDeployment() []byte { return common.FromHex(strings.TrimSpace(multicallBin)) }

// Call3 is one call of an aggregate3.
type Call3 struct {
	Target       common.Address
	AllowFailure bool
	CallData     []byte
}

// Aggregate3 is the calldata of aggregate3(calls): sent in a transaction,
// the Multicall makes each call as itself (msg.sender is the Multicall).
func Aggregate3(calls []Call3) []byte {
	data, err := multicallABI.Pack("aggregate3", calls)
	if err != nil {
		panic(fmt.Sprintf("Multicall.aggregate3: %v", err)) // the arguments are typed: a mismatch is a bug
	}
	return data
}
