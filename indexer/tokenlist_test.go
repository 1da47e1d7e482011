package indexer

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func TestParseSeedTokens(t *testing.T) {
	a, b := common.HexToAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3"), common.HexToAddress("0xe7f1725e7734ce288f8367e1bb143e90bb3f0512")
	got, err := ParseSeedTokens(strings.NewReader("# tokens\n\n" + a.Hex() + " 1200  # deployed at 1200\n  " + strings.ToLower(b.Hex()) + "\n"))
	if err != nil || len(got) != 2 || got[0] != (SeedToken{a, 1200}) || got[1] != (SeedToken{b, 0}) {
		t.Fatalf("got %+v %v", got, err)
	}
	if seedListHash(got) == seedListHash(got[:1]) || seedListHash(got) == seedListHash([]SeedToken{{a, 1201}, {b, 0}}) || seedListHash(nil) != (common.Hash{}) {
		t.Fatal("the list's hash does not tell lists apart")
	}
	for name, text := range map[string]string{
		"not an address":   "0x12\n",
		"no 0x":            strings.TrimPrefix(a.Hex(), "0x") + "\n",
		"a bad block":      a.Hex() + " twelve\n",
		"a third field":    a.Hex() + " 1 2\n",
		"the zero address": common.Address{}.Hex() + "\n",
		"listed twice":     a.Hex() + "\n" + strings.ToLower(a.Hex()) + " 5\n",
		"a line too long":  a.Hex() + " " + strings.Repeat("1", 300) + "\n",
		"too many tokens":  manyTokens(MaxSeedTokens + 1),
		"a negative block": a.Hex() + " -1\n",
	} {
		if _, err := ParseSeedTokens(strings.NewReader(text)); !errors.Is(err, ErrBadTokenList) {
			t.Errorf("%s: got %v, want ErrBadTokenList", name, err)
		}
	}
	if ts, err := ParseSeedTokens(strings.NewReader(manyTokens(MaxSeedTokens))); err != nil || len(ts) != MaxSeedTokens {
		t.Fatalf("%d tokens: %d, %v", MaxSeedTokens, len(ts), err)
	}
	if _, err := ReadSeedTokens("/nonexistent/tokens.txt"); !errors.Is(err, ErrBadTokenList) {
		t.Fatalf("a missing file: %v", err)
	}
}

func manyTokens(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(common.BigToAddress(big.NewInt(int64(i + 1))).Hex())
		b.WriteString("\n")
	}
	return b.String()
}
