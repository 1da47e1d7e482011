package query

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
)

// rpcAnswer is a JSON-RPC answer: one object, or a batch's array.
type rpcAnswer struct {
	status int
	header map[string][]string
	raw    string
	one    map[string]any
	many   []map[string]any
}

func rpc(tb testing.TB, s *Server, body string) rpcAnswer {
	tb.Helper()
	r := httptest.NewRequest("POST", RPCRoute, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	s.query.Handler.ServeHTTP(rec, r)
	a := rpcAnswer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if strings.HasPrefix(a.raw, "[") {
		if err := json.Unmarshal(rec.Body.Bytes(), &a.many); err != nil {
			tb.Fatalf("%s: not JSON: %s", body, a.raw)
		}
	} else if a.raw != "" {
		if err := json.Unmarshal(rec.Body.Bytes(), &a.one); err != nil {
			tb.Fatalf("%s: not JSON: %s", body, a.raw)
		}
	}
	return a
}

// call is one JSON-RPC call's body with id 1.
func call(method string, params ...any) string {
	p, err := json.Marshal(params)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q,"params":%s}`, method, p)
}

// result is the answer's result, or its error as "error CODE: MESSAGE".
func (a rpcAnswer) result() string {
	return resultOf(a.one)
}

func resultOf(m map[string]any) string {
	if e, ok := m["error"].(map[string]any); ok {
		return fmt.Sprintf("error %v: %v", e["code"], e["message"])
	}
	return fmt.Sprint(m["result"])
}

func balanceOfData(holder common.Address) string {
	return "0x70a08231" + hex.EncodeToString(common.LeftPadBytes(holder[:], 32))
}

func getEthBalanceData(holder common.Address) string {
	return "0x4d2301cc" + hex.EncodeToString(common.LeftPadBytes(holder[:], 32))
}

func word(v int64) string {
	return "0x" + hex.EncodeToString(common.LeftPadBytes(big.NewInt(v).Bytes(), 32))
}

// mustServer's snapshot at block 1 (hash 0x02…): holder has 1000 wei and
// 1, 2, 3 of tokA, tokB, tokC.
func TestRPCAnswersFromTheSnapshot(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	hash1 := common.Hash{2}.Hex()
	unindexed := common.HexToAddress("0x00000000000000000000000000000000000000dd")
	for _, c := range []struct{ name, body, want string }{
		{"chain id", call("eth_chainId"), "0x1"},
		{"chain id, params absent", `{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}`, "0x1"},
		{"net_version", call("net_version"), "1"},
		{"block number: the trusted block", call("eth_blockNumber"), "0x1"},
		{"balance at latest", call("eth_getBalance", holder, "latest"), "0x3e8"},
		{"at safe", call("eth_getBalance", holder, "safe"), "0x3e8"},
		{"at finalized", call("eth_getBalance", holder, "finalized"), "0x3e8"},
		{"at the trusted number", call("eth_getBalance", holder, "0x1"), "0x3e8"},
		{"at the trusted hash", call("eth_getBalance", holder, hash1), "0x3e8"},
		{"EIP-1898 hash", call("eth_getBalance", holder, map[string]any{"blockHash": hash1, "requireCanonical": true}), "0x3e8"},
		{"EIP-1898 number", call("eth_getBalance", holder, map[string]any{"blockNumber": "0x1"}), "0x3e8"},
		{"lower-case address", call("eth_getBalance", strings.ToLower(holder.Hex()), "latest"), "0x3e8"},
		{"an address never seen, full coverage: zero", call("eth_getBalance", never, "latest"), "0x0"},
		{"an older block", call("eth_getBalance", holder, "0x0"), "error -32000: header not found"},
		{"a later block", call("eth_getBalance", holder, "0x2"), "error -32000: header not found"},
		{"pending", call("eth_getBalance", holder, "pending"), "error -32000: header not found"},
		{"earliest", call("eth_getBalance", holder, "earliest"), "error -32000: header not found"},
		{"another hash", call("eth_getBalance", holder, common.Hash{9}.Hex()), "error -32000: header not found"},
		{"both hash and number", call("eth_getBalance", holder, map[string]any{"blockHash": hash1, "blockNumber": "0x1"}), "error -32602: invalid argument 1: cannot specify both BlockHash and BlockNumber, choose one or the other"},
		{"no block", call("eth_getBalance", holder), "error -32602: missing value for required argument 1"},
		{"a bad address", call("eth_getBalance", "0x12", "latest"), "error -32602: invalid argument 0: an address is 0x and 40 hex digits (mixed case: a valid EIP-55 checksum)"},
		{"a bad checksum", call("eth_getBalance", "0x742d35cc6634C0532925a3b844Bc454e4438f44e", "latest"), "error -32602: invalid argument 0: an address is 0x and 40 hex digits (mixed case: a valid EIP-55 checksum)"},
		{"balanceOf (data)", call("eth_call", map[string]any{"to": tokB, "data": balanceOfData(holder)}, "latest"), word(2)},
		{"balanceOf (input, zero from, as ethclient sends)", call("eth_call", map[string]any{"from": common.Address{}, "to": tokC, "input": balanceOfData(holder)}, "0x1"), word(3)},
		{"balanceOf, block omitted", call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(holder)}), word(1)},
		{"balanceOf at an older block", call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(holder)}, "0x0"), "error -32000: header not found"},
		{"getEthBalance", call("eth_call", map[string]any{"to": DefaultMulticall3, "data": getEthBalanceData(holder)}, "latest"), word(1000)},
		{"a token not indexed", call("eth_call", map[string]any{"to": unindexed, "data": balanceOfData(holder)}, "latest"),
			"error -32000: balidx: token " + unindexed.Hex() + " is not indexed: balidx has seen no Transfer of it"},
		{"a holder never seen of an indexed token", call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(never)}, "latest"),
			"error -32000: balidx: no amount of token " + tokA.Hex() + " is known for " + never.Hex() + ": the token's coverage is partial, its holders known from when balidx first saw it"},
		{"another selector", call("eth_call", map[string]any{"to": tokA, "data": "0x18160ddd"}, "latest"),
			"error -32000: balidx: function 0x18160ddd is not served: balidx answers ERC-20 balanceOf(address) and Multicall3 getEthBalance/aggregate3"},
		{"balanceOf with a short argument", call("eth_call", map[string]any{"to": tokA, "data": "0x70a08231" + strings.Repeat("0", 62)}, "latest"),
			"error -32000: balidx: the call's argument is not one ABI-encoded address"},
		{"no to", call("eth_call", map[string]any{"data": balanceOfData(holder)}, "latest"), `error -32000: balidx: a call without "to" is not served`},
		{"a value", call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(holder), "value": "0x1"}, "latest"), "error -32000: balidx: a call with a value is not served"},
		{"state overrides", call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(holder)}, "latest", map[string]any{holder.Hex(): map[string]any{"balance": "0x1"}}),
			"error -32000: balidx: state overrides are not served: eth_call is answered from the snapshot, not executed"},
		{"data and input differ", call("eth_call", map[string]any{"to": tokA, "data": balanceOfData(holder), "input": balanceOfData(never)}, "latest"),
			`error -32602: invalid argument 0: both "data" and "input" are set and not equal. Please use "input" to pass transaction call data`},
		{"an unknown method", call("eth_sendRawTransaction", "0x00"), "error -32601: the method eth_sendRawTransaction does not exist/is not available"},
		{"not 2.0", `{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}`, "error -32600: invalid request"},
		{"params not an array", `{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":{"a":1}}`, "error -32602: non-array args"},
	} {
		a := rpc(t, s, c.body)
		if a.status != 200 || a.result() != c.want {
			t.Errorf("%s: got %d %s, want %s", c.name, a.status, a.raw, c.want)
		}
		if a.one["id"] != 1.0 && a.one["id"] != nil {
			t.Errorf("%s: id %v", c.name, a.one["id"])
		}
		if h := a.header[HeaderBlock]; len(h) != 1 || h[0] != "1" || a.header[HeaderBlockHash][0] != hash1 {
			t.Errorf("%s: block headers %v %v", c.name, h, a.header[HeaderBlockHash])
		}
	}
}

func TestRPCNeverGuessesUnderPartialCoverage(t *testing.T) {
	s, _ := mustServer(t, 7, Config{}) // indexed from block 7
	if got := rpc(t, s, call("eth_getBalance", holder, "latest")).result(); got != "0x3e8" {
		t.Fatalf("a known address: %s", got)
	}
	want := "error -32000: balidx: address " + never.Hex() + " has never been seen and the snapshot does not cover the whole chain (not_indexed)"
	if got := rpc(t, s, call("eth_getBalance", never, "latest")).result(); got != want {
		t.Fatalf("an address never seen: got %s, want %s", got, want)
	}
	if got := rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": getEthBalanceData(never)}, "latest")).result(); got != want {
		t.Fatalf("getEthBalance of an address never seen: got %s, want %s", got, want)
	}
}

func TestRPCBatches(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	a := rpc(t, s, `[`+call("eth_chainId")+`,{"jsonrpc":"2.0","id":"b","method":"eth_getBalance","params":["`+holder.Hex()+`","latest"]},`+
		`{"jsonrpc":"2.0","method":"eth_blockNumber"},{"jsonrpc":"2.0","id":null,"method":"eth_blockNumber"},{"id":7},5]`)
	want := []struct {
		id     any
		result string
	}{{1.0, "0x1"}, {"b", "0x3e8"}, {nil, "0x1"}, {7.0, "error -32600: invalid request"}, {nil, "error -32600: invalid request"}}
	if a.status != 200 || len(a.many) != len(want) {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	for i, w := range want {
		if a.many[i]["id"] != w.id && !(w.id == 7.0 && a.many[i]["id"] == nil) || resultOf(a.many[i]) != w.result {
			t.Errorf("answer %d: got %v, want id %v result %s", i, a.many[i], w.id, w.result)
		}
	}
	if a := rpc(t, s, `[`+call("eth_chainId")+`]`); len(a.many) != 1 || resultOf(a.many[0]) != "0x1" {
		t.Errorf("a one-call batch is a batch: got %s", a.raw)
	}
	if a := rpc(t, s, `[]`); a.status != 200 || a.result() != "error -32600: empty batch" {
		t.Errorf("an empty batch: got %s", a.raw)
	}
	calls := make([]string, MaxRPCCalls+1)
	for i := range calls {
		calls[i] = strings.Replace(call("eth_chainId"), `"id":1`, fmt.Sprintf(`"id":%d`, i+40), 1)
	}
	if a := rpc(t, s, "["+strings.Join(calls, ",")+"]"); a.status != 200 || len(a.many) != 1 || resultOf(a.many[0]) != "error -32600: batch too large" || a.many[0]["id"] != 40.0 {
		t.Errorf("a batch too large: got %s", a.raw)
	}
	if a := rpc(t, s, "["+strings.Join(calls[1:], ",")+"]"); a.status != 200 || len(a.many) != MaxRPCCalls {
		t.Errorf("a batch of %d: got %d answers", MaxRPCCalls, len(a.many))
	}
	for name, body := range map[string]string{
		"not JSON":  `{"jsonrpc":"2.0",`,
		"too deep":  strings.Repeat("[", maxRPCDepth+1) + strings.Repeat("]", maxRPCDepth+1),
		"a number":  `5`,
		"trailing":  call("eth_chainId") + "x",
		"two calls": call("eth_chainId") + call("eth_chainId"),
	} {
		if a := rpc(t, s, body); a.status != 400 || a.one["error"].(map[string]any)["code"] != "invalid_request" {
			t.Errorf("%s: got %d %s", name, a.status, a.raw)
		}
	}
	if a := rpc(t, s, `{"jsonrpc":"2.0","method":"eth_chainId"}`); a.status != 200 || a.raw != "" {
		t.Errorf("a notification: got %d %q", a.status, a.raw)
	}
	if a := rpc(t, s, `[{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_blockNumber"}]`); a.status != 200 || a.raw != "" {
		t.Errorf("a batch of notifications: got %d %q", a.status, a.raw)
	}
}

// aggregate3's calldata and answer, encoded and decoded by go-ethereum's
// ABI package (not by the code under test).
var multicall3ABI = func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(`[{"name":"aggregate3","type":"function","stateMutability":"payable",
		"inputs":[{"name":"calls","type":"tuple[]","components":[{"name":"target","type":"address"},{"name":"allowFailure","type":"bool"},{"name":"callData","type":"bytes"}]}],
		"outputs":[{"name":"returnData","type":"tuple[]","components":[{"name":"success","type":"bool"},{"name":"returnData","type":"bytes"}]}]}]`))
	if err != nil {
		panic(err)
	}
	return a
}()

type call3 struct {
	Target       common.Address
	AllowFailure bool
	CallData     []byte
}

func TestRPCAggregate3(t *testing.T) {
	s, _ := mustServer(t, 0, Config{})
	unindexed := common.HexToAddress("0x00000000000000000000000000000000000000dd")
	calls := []call3{
		{DefaultMulticall3, false, common.FromHex(getEthBalanceData(holder))},
		{tokB, false, common.FromHex(balanceOfData(holder))},
		{unindexed, true, common.FromHex(balanceOfData(holder))},
		{DefaultMulticall3, false, common.FromHex(getEthBalanceData(never))},
		{tokA, true, common.FromHex("0x18160ddd")},
	}
	data, err := multicall3ABI.Pack("aggregate3", calls)
	if err != nil {
		t.Fatal(err)
	}
	a := rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data)}, "latest"))
	out, err := multicall3ABI.Unpack("aggregate3", common.FromHex(a.result()))
	if err != nil {
		t.Fatalf("%s: %v", a.raw, err)
	}
	results := out[0].([]struct {
		Success    bool    `json:"success"`
		ReturnData []uint8 `json:"returnData"`
	})
	want := []struct {
		success bool
		value   int64
		reason  string
	}{
		{true, 1000, ""}, {true, 2, ""},
		{false, 0, "balidx: token " + unindexed.Hex() + " is not indexed: balidx has seen no Transfer of it"},
		{true, 0, ""},
		{false, 0, "balidx: function 0x18160ddd is not served: balidx answers ERC-20 balanceOf(address) and Multicall3 getEthBalance/aggregate3"},
	}
	if len(results) != len(want) {
		t.Fatalf("got %d results", len(results))
	}
	for i, w := range want {
		r := results[i]
		if r.Success != w.success {
			t.Errorf("call %d: success %v", i, r.Success)
			continue
		}
		if w.success && new(big.Int).SetBytes(r.ReturnData).Int64() != w.value {
			t.Errorf("call %d: got %x, want %d", i, r.ReturnData, w.value)
		}
		if !w.success {
			reason, err := abi.UnpackRevert(r.ReturnData)
			if err != nil || reason != w.reason {
				t.Errorf("call %d: reason %q (%v), want %q", i, reason, err, w.reason)
			}
		}
	}
	// An inner call that may not fail, fails: the whole call does.
	calls[2].AllowFailure = false
	data, _ = multicall3ABI.Pack("aggregate3", calls)
	a = rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data)}, "latest"))
	if want := "error -32000: balidx: Multicall3: call 2 failed: balidx: token " + unindexed.Hex() + " is not indexed: balidx has seen no Transfer of it"; a.result() != want {
		t.Errorf("got %s, want %s", a.result(), want)
	}
	// At most MaxRPCCalls inner calls; calldata cut short is refused.
	many := make([]call3, MaxRPCCalls+1)
	for i := range many {
		many[i] = calls[0]
	}
	data, _ = multicall3ABI.Pack("aggregate3", many)
	if got := rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data)})).result(); got != "error -32000: balidx: aggregate3 of 101 calls: at most 100 are served" {
		t.Errorf("too many inner calls: got %s", got)
	}
	data, _ = multicall3ABI.Pack("aggregate3", calls)
	for _, cut := range []int{4, 36, 68, 100, len(data) - 40} {
		if got := rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data[:cut])})).result(); got != "error -32000: balidx: aggregate3's argument is not a well-formed (address,bool,bytes)[]" {
			t.Errorf("calldata cut at %d: got %s", cut, got)
		}
	}
	// Elsewhere than where Multicall3 is configured, it is a call of an
	// unknown function.
	other := common.HexToAddress("0x00000000000000000000000000000000000000ee")
	s2, _ := mustServer(t, 0, Config{Multicall3: other})
	atOther := []call3{{other, false, common.FromHex(getEthBalanceData(holder))}, calls[1]}
	data, _ = multicall3ABI.Pack("aggregate3", atOther)
	if got := rpc(t, s2, call("eth_call", map[string]any{"to": other, "data": hexutilEncode(data)})).result(); !strings.HasPrefix(got, "0x") {
		t.Errorf("at the configured address: got %s", got)
	}
	if got := rpc(t, s2, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data)})).result(); !strings.HasPrefix(got, "error -32000: balidx: function 0x82ad56cb is not served") {
		t.Errorf("at the default address, another one configured: got %s", got)
	}
}

func hexutilEncode(b []byte) string { return "0x" + hex.EncodeToString(b) }

// Each call of a batch, and each inner call of an aggregate3, spends one
// request of the caller's quota.
func TestRPCCallsSpendTheQuota(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s, _ := mustServer(t, 0, Config{Now: clk.now, Clients: &Clients{Anonymous: Anonymous{Enabled: true, Rate: 1, Burst: 10}}})
	batch := func(n int) string {
		calls := make([]string, n)
		for i := range calls {
			calls[i] = call("eth_blockNumber")
		}
		return "[" + strings.Join(calls, ",") + "]"
	}
	if a := rpc(t, s, batch(6)); a.status != 200 || len(a.many) != 6 {
		t.Fatalf("6 of 10: got %d %s", a.status, a.raw)
	}
	a := rpc(t, s, batch(5))
	if a.status != 429 || a.header["Retry-After"] == nil || a.result() != "error -32005: limit exceeded" {
		t.Fatalf("5 more of the 4 left: got %d %s", a.status, a.raw)
	}
	// The refused request spent one (the guard's, as any request's).
	if a := rpc(t, s, batch(3)); a.status != 200 || len(a.many) != 3 {
		t.Fatalf("the 3 left: got %d %s", a.status, a.raw)
	}
	clk.t = clk.t.Add(10 * time.Second)
	overBurst := "error -32600: 11 calls in one request are more than this caller's quota grants at once (10): send smaller batches"
	if a := rpc(t, s, batch(11)); a.status != 200 || len(a.many) != 1 || resultOf(a.many[0]) != overBurst || a.many[0]["id"] != 1.0 {
		t.Fatalf("more than the burst at once: got %d %s", a.status, a.raw)
	}
	clk.t = clk.t.Add(10 * time.Second)
	calls := make([]call3, 11)
	for i := range calls {
		calls[i] = call3{DefaultMulticall3, true, common.FromHex(getEthBalanceData(holder))}
	}
	data, _ := multicall3ABI.Pack("aggregate3", calls)
	if a := rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data)})); a.status != 200 || a.result() != overBurst {
		t.Fatalf("an aggregate3 of 11 inner calls: got %d %s", a.status, a.raw)
	}
	clk.t = clk.t.Add(10 * time.Second) // the two refusals above spent one each
	data, _ = multicall3ABI.Pack("aggregate3", calls[:10])
	if a := rpc(t, s, call("eth_call", map[string]any{"to": DefaultMulticall3, "data": hexutilEncode(data)})); a.status != 200 {
		t.Fatalf("an aggregate3 of 10 inner calls: got %d %s", a.status, a.raw)
	}
	if a := rpc(t, s, call("eth_chainId")); a.status != 429 {
		t.Fatalf("after the aggregate3 spent the burst: got %d %s", a.status, a.raw)
	}
}

// The signature covers the body: a changed call is refused.
func TestRPCSignedBody(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := authServer(t, twoClients(), clk, nil)
	body := call("eth_getBalance", holder, "latest")
	if a := (req{method: "POST", target: RPCRoute, body: body, client: "wallet", secret: secret1, ts: clk.t.Unix()}).send(t, s); a.status != 200 || a.body["result"] != "0x3e8" {
		t.Fatalf("signed: got %d %s", a.status, a.raw)
	}
	other := call("eth_getBalance", never, "latest")
	changed := req{method: "POST", target: RPCRoute, body: body, client: "wallet", secret: secret1, ts: clk.t.Unix(), mutate: func(r *http.Request) {
		r.Body, r.ContentLength = nopCloser(other), int64(len(other))
	}}
	if a := changed.send(t, s); a.status != 401 || a.code() != "invalid_signature" {
		t.Fatalf("body changed: got %d %s", a.status, a.raw)
	}
}
