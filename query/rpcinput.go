package query

// A JSON-RPC call's input, parsed: ids, addresses, strings, block
// parameters, and the body's nesting, checked before it is decoded.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
)

// validID: absent (a notification), a string, a number or null.
func validID(id json.RawMessage) bool {
	if id == nil {
		return true
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return string(id) == "null"
}

func decodeAddressArg(raw json.RawMessage, arg int) (common.Address, *rpcError) {
	s, ok := jsonString(raw)
	if !ok {
		return common.Address{}, invalidParams("invalid argument %d: an address must be a string", arg)
	}
	a, _, ok := parseAddress(s)
	if !ok {
		return a, invalidParams("invalid argument %d: an address is 0x and 40 hex digits (mixed case: a valid EIP-55 checksum)", arg)
	}
	return a, nil
}

// jsonString is the string raw holds: read directly when it has no escape
// (an address, a tag, a hash: the usual case), else by encoding/json.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// blockSel is a call's block parameter: the trusted block (latest, safe,
// finalized), a number, a hash, or one the node cannot answer for.
type blockSel struct {
	kind   blockKind
	number uint64
	hash   common.Hash
}

type blockKind uint8

const (
	blockLatest blockKind = iota
	blockNumber
	blockHash
	blockNone // pending, earliest: never answered
)

// parseBlockSel reads a tag, a hex number, a 66-character hash, or an
// EIP-1898 object ({blockHash, requireCanonical} / {blockNumber}).
func parseBlockSel(raw json.RawMessage, arg int) (blockSel, *rpcError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var o struct {
			BlockHash        *string `json:"blockHash"`
			BlockNumber      *string `json:"blockNumber"`
			RequireCanonical bool    `json:"requireCanonical"`
		}
		if json.Unmarshal(raw, &o) != nil {
			return blockSel{}, invalidParams("invalid argument %d: not a block number or hash object", arg)
		}
		switch {
		case o.BlockHash != nil && o.BlockNumber != nil:
			return blockSel{}, invalidParams("invalid argument %d: cannot specify both BlockHash and BlockNumber, choose one or the other", arg)
		case o.BlockHash != nil:
			h, err := parseBlockHash(*o.BlockHash, arg)
			return blockSel{kind: blockHash, hash: h}, err
		case o.BlockNumber != nil:
			return parseBlockTag(*o.BlockNumber, arg)
		}
		return blockSel{}, invalidParams("invalid argument %d: a block object needs blockHash or blockNumber", arg)
	}
	s, ok := jsonString(raw)
	if !ok {
		return blockSel{}, invalidParams("invalid argument %d: a block is a tag, a hex number, a block hash or an EIP-1898 object", arg)
	}
	if len(s) == 66 {
		h, err := parseBlockHash(s, arg)
		return blockSel{kind: blockHash, hash: h}, err
	}
	return parseBlockTag(s, arg)
}

func parseBlockTag(s string, arg int) (blockSel, *rpcError) {
	switch s {
	case "latest", "safe", "finalized":
		return blockSel{kind: blockLatest}, nil
	case "pending", "earliest":
		return blockSel{kind: blockNone}, nil
	}
	if len(s) < 3 || len(s) > 18 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return blockSel{}, invalidParams("invalid argument %d: a block number is 0x and at most 16 hex digits", arg)
	}
	n, err := strconv.ParseUint(s[2:], 16, 64)
	if err != nil {
		return blockSel{}, invalidParams("invalid argument %d: a block number is 0x and at most 16 hex digits", arg)
	}
	return blockSel{kind: blockNumber, number: n}, nil
}

func parseBlockHash(s string, arg int) (common.Hash, *rpcError) {
	var h common.Hash
	if len(s) != 66 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return h, invalidParams("invalid argument %d: a block hash is 0x and 64 hex digits", arg)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil || len(b) != len(h) {
		return h, invalidParams("invalid argument %d: a block hash is 0x and 64 hex digits", arg)
	}
	return common.Hash(b), nil
}

// answers reports whether sel names block b, the one every call of the
// request is answered at.
func (sel blockSel) answers(b balidx.Block) bool {
	switch sel.kind {
	case blockLatest:
		return true
	case blockNumber:
		return sel.number == b.Number
	case blockHash:
		return sel.hash == b.Hash
	}
	return false
}

// jsonDepth is how deep body's arrays and objects nest (body is valid JSON).
func jsonDepth(body []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
