package indexer

// The list of tokens a seed covers (--seed-tokens FILE): one ERC-20 a
// line, its address, optionally followed by the block it was deployed at
// (where the scan of its Transfer logs starts; 0 when not given); blank
// lines are skipped and "#" starts a comment.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// SeedToken is one token of a seed's list.
type SeedToken struct {
	Contract common.Address
	From     uint64 // its deployment block: where its Transfer logs start
}

// Limits of a token list.
const (
	MaxSeedTokens        = 1000
	maxTokenListBytes    = 1 << 20
	maxTokenListLineSize = 256
)

// ErrBadTokenList: the token list cannot be read as one.
var ErrBadTokenList = errors.New("bad token list")

// ReadSeedTokens reads the token list at path.
func ReadSeedTokens(path string) ([]SeedToken, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTokenList, err)
	}
	defer f.Close()
	ts, err := ParseSeedTokens(io.LimitReader(f, maxTokenListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, nil
}

// ParseSeedTokens reads a token list: at most MaxSeedTokens tokens, each
// once, lines of at most 256 bytes, 1 MiB in all.
func ParseSeedTokens(r io.Reader) ([]SeedToken, error) {
	var ts []SeedToken
	seen := map[common.Address]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, maxTokenListLineSize), maxTokenListLineSize)
	read := 0
	for line := 1; sc.Scan(); line++ {
		if read += len(sc.Bytes()) + 1; read > maxTokenListBytes {
			return nil, fmt.Errorf("%w: over %d bytes", ErrBadTokenList, maxTokenListBytes)
		}
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 2 || !common.IsHexAddress(fields[0]) || !strings.HasPrefix(fields[0], "0x") {
			return nil, fmt.Errorf("%w: line %d: want a 0x address and, optionally, its deployment block", ErrBadTokenList, line)
		}
		t := SeedToken{Contract: common.HexToAddress(fields[0])}
		if t.Contract == (common.Address{}) {
			return nil, fmt.Errorf("%w: line %d: the zero address is the native coin's, not a token", ErrBadTokenList, line)
		}
		if len(fields) == 2 {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: deployment block %q: want a decimal block number", ErrBadTokenList, line, fields[1])
			}
			t.From = n
		}
		if at, dup := seen[t.Contract]; dup {
			return nil, fmt.Errorf("%w: line %d: %s is listed on line %d already", ErrBadTokenList, line, t.Contract.Hex(), at)
		}
		if seen[t.Contract] = line; len(ts) == MaxSeedTokens {
			return nil, fmt.Errorf("%w: more than %d tokens", ErrBadTokenList, MaxSeedTokens)
		}
		ts = append(ts, t)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: a line over %d bytes", ErrBadTokenList, maxTokenListLineSize)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadTokenList, err)
	}
	return ts, nil
}

// seedListHash is the Keccak-256 of a token list (each token's address and
// deployment block, in order); zero for no list.
func seedListHash(ts []SeedToken) common.Hash {
	if len(ts) == 0 {
		return common.Hash{}
	}
	b := make([]byte, 0, len(ts)*28)
	for _, t := range ts {
		b = append(b, t.Contract[:]...)
		b = strconv.AppendUint(b, t.From, 10)
		b = append(b, ';')
	}
	return crypto.Keccak256Hash(b)
}
