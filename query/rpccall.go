package query

// eth_call, for what wallets read balances with: ERC-20 balanceOf(address)
// on an indexed token, and Multicall3's getEthBalance(address) and
// aggregate3 over those two. Nothing is executed: the calldata is decoded
// (strictly, every offset and length bounded) into the holdings it asks
// for, and the answer is ABI-encoded as the contract's would be.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
)

// DefaultMulticall3 is where Multicall3 is deployed on most chains.
var DefaultMulticall3 = common.HexToAddress("0xcA11bde05977b3631167028862be2a173976cA11")

// The selectors served.
var (
	selBalanceOf     = [4]byte{0x70, 0xa0, 0x82, 0x31} // balanceOf(address)
	selGetEthBalance = [4]byte{0x4d, 0x23, 0x01, 0xcc} // getEthBalance(address)
	selAggregate3    = [4]byte{0x82, 0xad, 0x56, 0xcb} // aggregate3((address,bool,bytes)[])
	selError         = [4]byte{0x08, 0xc3, 0x79, 0xa0} // Error(string), a revert's reason
)

// maxInnerCalldata bounds one aggregate3 inner call's calldata.
const maxInnerCalldata = 1024

// innerCall is one call of an aggregate3.
type innerCall struct {
	allowFailure bool
	read         int       // index into the request's holdings; -1 with err
	err          *rpcError // why it cannot be served, known from its calldata
}

// callObject is the part of eth_call's first argument balidx looks at.
type callObject struct {
	To    *string `json:"to"`
	Data  *string `json:"data"`
	Input *string `json:"input"`
	Value *string `json:"value"`
}

// planEthCall decodes eth_call(callObject, block?, stateOverrides?,
// blockOverrides?) into the holdings it reads.
func (s *Server) planEthCall(call *rpcCall, params []json.RawMessage, req *rpcRequest) *rpcError {
	if len(params) < 1 {
		return invalidParams("missing value for required argument 0")
	}
	if len(params) > 4 {
		return invalidParams("too many arguments, want at most 4")
	}
	for i, what := range []string{2: "state overrides", 3: "block overrides"} {
		if what != "" && len(params) > i && string(bytes.TrimSpace(params[i])) != "null" {
			return notServed("%s are not served: eth_call is answered from the snapshot, not executed", what)
		}
	}
	if len(params) > 1 {
		var err *rpcError
		if call.block, err = parseBlockSel(params[1], 1); err != nil {
			return err
		}
	}
	var o callObject
	if json.Unmarshal(params[0], &o) != nil {
		return invalidParams("invalid argument 0: a call object is expected")
	}
	switch {
	case o.Data != nil && o.Input != nil && *o.Data != *o.Input:
		return invalidParams(`invalid argument 0: both "data" and "input" are set and not equal. Please use "input" to pass transaction call data`)
	case o.Input == nil:
		o.Input = o.Data
	}
	if o.To == nil {
		return notServed(`a call without "to" is not served`)
	}
	to, _, ok := parseAddress(*o.To)
	if !ok {
		return invalidParams(`invalid argument 0: "to" must be an address`)
	}
	if o.Value != nil && !isZeroQuantity(*o.Value) {
		return notServed("a call with a value is not served")
	}
	var data []byte
	if o.Input != nil {
		var err error
		if data, err = decodeHexData(*o.Input); err != nil {
			return invalidParams("invalid argument 0: calldata must be 0x and an even number of hex digits")
		}
	}
	if to == s.cfg.Multicall3 && len(data) >= 4 && [4]byte(data) == selAggregate3 {
		inner, err := s.decodeAggregate3(data[4:], req)
		if err != nil {
			return err
		}
		call.inner = inner
		req.cost += len(inner) - 1 // each inner call is a request; this call counted one
		return nil
	}
	h, err := s.balanceCall(to, data)
	if err != nil {
		return err
	}
	call.reads = []int{req.read(h.Account, h.Asset)}
	return nil
}

// balanceCall is the holding a call of one balance asks for: balanceOf on
// a token, getEthBalance on Multicall3.
func (s *Server) balanceCall(to common.Address, data []byte) (storage.Holding, *rpcError) {
	if len(data) < 4 {
		return storage.Holding{}, notServed("a call without a function selector is not served")
	}
	sel := [4]byte(data)
	switch {
	case to == s.cfg.Multicall3 && sel == selGetEthBalance, to != s.cfg.Multicall3 && sel == selBalanceOf:
		holder, ok := addressWord(data[4:])
		if !ok {
			return storage.Holding{}, notServed("the call's argument is not one ABI-encoded address")
		}
		if sel == selGetEthBalance {
			return storage.Holding{Account: holder, Asset: balidx.NativeAsset}, nil
		}
		return storage.Holding{Account: holder, Asset: to}, nil
	case to == s.cfg.Multicall3:
		return storage.Holding{}, notServed("Multicall3 function 0x%x is not served: getEthBalance and aggregate3 are", sel)
	}
	return storage.Holding{}, notServed("function 0x%x is not served: balidx answers ERC-20 balanceOf(address) and Multicall3 getEthBalance/aggregate3", sel)
}

// addressWord decodes exactly one ABI word holding an address.
func addressWord(args []byte) (common.Address, bool) {
	if len(args) != 32 || !allZero(args[:12]) {
		return common.Address{}, false
	}
	return common.Address(args[12:]), true
}

// decodeAggregate3 decodes aggregate3's (address target, bool allowFailure,
// bytes callData)[] argument; each inner call is planned as balanceCall.
func (s *Server) decodeAggregate3(args []byte, req *rpcRequest) ([]innerCall, *rpcError) {
	bad := notServed("aggregate3's argument is not a well-formed (address,bool,bytes)[]")
	arr, ok := wordAt(args, 0)
	if !ok || arr > uint64(len(args)) {
		return nil, bad
	}
	n, ok := wordAt(args, arr)
	if !ok {
		return nil, bad
	}
	if n > MaxRPCCalls {
		return nil, notServed("aggregate3 of %d calls: at most %d are served", n, MaxRPCCalls)
	}
	elems := args[arr+32:]
	inner := make([]innerCall, n)
	for i := range inner {
		off, ok := wordAt(elems, uint64(i)*32)
		if !ok || off > uint64(len(elems)) {
			return nil, bad
		}
		t := elems[off:]
		target, okT := addressWordAt(t, 0)
		allow, okA := wordAt(t, 32)
		dataOff, okD := wordAt(t, 64)
		if !okT || !okA || allow > 1 || !okD || dataOff > uint64(len(t)) {
			return nil, bad
		}
		size, ok := wordAt(t, dataOff)
		if !ok || size > maxInnerCalldata || dataOff+32+size > uint64(len(t)) {
			return nil, bad
		}
		calldata := t[dataOff+32 : dataOff+32+size]
		inner[i] = innerCall{allowFailure: allow == 1, read: -1}
		if target == s.cfg.Multicall3 && len(calldata) >= 4 && [4]byte(calldata) == selAggregate3 {
			inner[i].err = notServed("an aggregate3 inside an aggregate3 is not served")
			continue
		}
		h, err := s.balanceCall(target, calldata)
		if err != nil {
			inner[i].err = err
			continue
		}
		inner[i].read = req.read(h.Account, h.Asset)
	}
	return inner, nil
}

// wordAt is the 32-byte word at off as a number, if it fits 32 bits (every
// offset and length of a body within MaxRPCBody does).
func wordAt(b []byte, off uint64) (uint64, bool) {
	if off > uint64(len(b)) || uint64(len(b))-off < 32 {
		return 0, false
	}
	w := b[off : off+32]
	if !allZero(w[:28]) {
		return 0, false
	}
	return uint64(binary.BigEndian.Uint32(w[28:])), true
}

func addressWordAt(b []byte, off uint64) (common.Address, bool) {
	if off > uint64(len(b)) || uint64(len(b))-off < 32 {
		return common.Address{}, false
	}
	return addressWord(b[off : off+32])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// servable says why an amount cannot be served, or nil when it is exact.
func servable(h storage.Holding, a *storage.Amount) *rpcError {
	switch a.Status {
	case storage.AmountExact:
		return nil
	case storage.AmountNotIndexed:
		return notServed("address %s has never been seen and the snapshot does not cover the whole chain (not_indexed)", h.Account.Hex())
	case storage.AmountTokenNotIndexed:
		return notServed("token %s is not indexed: balidx has seen no Transfer of it", h.Asset.Hex())
	case storage.AmountHolderUnknown:
		return notServed("no amount of token %s is known for %s: the token's coverage is partial, its holders known from when balidx first saw it", h.Asset.Hex(), h.Account.Hex())
	case storage.AmountWithheld:
		return notServed("token %s is withheld (%s, since block %d): its amounts are not served", h.Asset.Hex(), a.Withheld.Reason, a.Withheld.Since)
	}
	return notServed("amount status %d", a.Status)
}

// appendCallResult appends an eth_call's result: one word, or aggregate3's
// (bool success, bytes returnData)[].
func appendCallResult(b []byte, req *rpcRequest, call *rpcCall, amounts []storage.Amount) ([]byte, *rpcError) {
	if call.inner == nil {
		i := call.reads[0]
		if err := servable(req.holdings[i], &amounts[i]); err != nil {
			return b, err
		}
		word := amounts[i].Value.Bytes32()
		return hex.AppendEncode(append(b, "0x"...), word[:]), nil
	}
	results := make([][]byte, len(call.inner)) // returnData; nil for a success's word
	words := make([][32]byte, len(call.inner))
	for i, in := range call.inner {
		err := in.err
		if err == nil {
			err = servable(req.holdings[in.read], &amounts[in.read])
		}
		if err != nil {
			if !in.allowFailure {
				return b, notServed("Multicall3: call %d failed: %s", i, err.message)
			}
			results[i] = revertReason(err.message)
			continue
		}
		words[i] = amounts[in.read].Value.Bytes32()
	}
	out := abiWord(nil, 32) // the array's offset
	out = abiWord(out, uint64(len(call.inner)))
	var tails []byte
	tailBase := uint64(32 * len(call.inner))
	for i := range call.inner {
		out = abiWord(out, tailBase+uint64(len(tails)))
		success := uint64(0)
		data := results[i]
		if data == nil {
			success, data = 1, words[i][:]
		}
		tails = abiWord(tails, success)
		tails = abiWord(tails, 64) // returnData's offset in the tuple
		tails = abiBytes(tails, data)
	}
	out = append(out, tails...)
	return hex.AppendEncode(append(b, "0x"...), out), nil
}

// revertReason is the returnData of a call that reverted with reason.
func revertReason(reason string) []byte {
	out := append([]byte{}, selError[:]...)
	out = abiWord(out, 32)
	return abiBytes(out, []byte(reason))
}

func abiWord(b []byte, v uint64) []byte {
	var w [32]byte
	binary.BigEndian.PutUint64(w[24:], v)
	return append(b, w[:]...)
}

// abiBytes appends bytes' length and its content padded to whole words.
func abiBytes(b, data []byte) []byte {
	b = abiWord(b, uint64(len(data)))
	b = append(b, data...)
	return append(b, make([]byte, (32-len(data)%32)%32)...)
}

// decodeHexData decodes 0x-prefixed calldata.
func decodeHexData(s string) ([]byte, error) {
	if len(s) < 2 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return nil, fmt.Errorf("not 0x-prefixed hex")
	}
	return hex.DecodeString(s[2:])
}

// isZeroQuantity: a hex quantity of value zero ("0x0", "0x", "0x00…").
func isZeroQuantity(s string) bool {
	if len(s) < 2 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return false
	}
	for _, c := range s[2:] {
		if c != '0' {
			return false
		}
	}
	return true
}
