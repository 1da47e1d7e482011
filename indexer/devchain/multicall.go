package devchain

import (
	_ "embed"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

//go:embed contracts/Multicall.bin
var multicallBin string

// MulticallDeployment is the creation code of a Multicall
// (contracts/Multicall.sol): Multicall3's getEthBalance and aggregate3, for
// a dev chain, where Multicall3 is not at its usual address.
func MulticallDeployment() []byte { return common.FromHex(strings.TrimSpace(multicallBin)) }
