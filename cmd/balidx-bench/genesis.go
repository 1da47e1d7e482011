package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
)

// writeGenesis writes a post-merge genesis allocating n random accounts (for
// `geth init`) and their addresses, one a line (for -accounts-file).
func writeGenesis(genesisFile, addrFile string, n int) error {
	g, err := os.Create(genesisFile)
	if err != nil {
		return err
	}
	defer g.Close()
	a, err := os.Create(addrFile)
	if err != nil {
		return err
	}
	defer a.Close()
	gw, aw := bufio.NewWriter(g), bufio.NewWriter(a)
	fmt.Fprint(gw, `{"config":{"chainId":31337,"homesteadBlock":0,"eip150Block":0,"eip155Block":0,"eip158Block":0,`+
		`"byzantiumBlock":0,"constantinopleBlock":0,"petersburgBlock":0,"istanbulBlock":0,"berlinBlock":0,"londonBlock":0,`+
		`"mergeNetsplitBlock":0,"shanghaiTime":0,"cancunTime":0,"terminalTotalDifficulty":0,`+
		`"blobSchedule":{"cancun":{"target":3,"max":6,"baseFeeUpdateFraction":3338477}}},`+
		`"difficulty":"0x0","gasLimit":"0x1c9c380","alloc":{`)
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	for i := range n {
		addr := fmt.Sprintf("%016x%016x%08x", rng.Uint64(), rng.Uint64(), rng.Uint32())
		if i > 0 {
			gw.WriteByte(',')
		}
		fmt.Fprintf(gw, `"%s":{"balance":"0x%x"}`, addr, rng.Uint64N(1<<60)+1)
		fmt.Fprintln(aw, addr)
	}
	fmt.Fprint(gw, "}}\n")
	if err := gw.Flush(); err != nil {
		return err
	}
	return aw.Flush()
}
