package query

// The wallets' own protocol: a read-only Ethereum JSON-RPC endpoint
// (docs/API.md "Ethereum JSON-RPC"), answered from the snapshot only. A
// request — one call or a batch — is planned whole (rpcinput.go parses
// its parameters, rpccall.go decodes eth_call), charged to the caller's
// quota call by call, read in one snapshot transaction, and every call
// answered at that one block.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/labstack/echo/v4"
)

// RPCRoute is the JSON-RPC endpoint's path.
const RPCRoute = "/rpc"

// Limits of the JSON-RPC endpoint.
const (
	// MaxRPCBody bounds a JSON-RPC body: an aggregate3 of MaxRPCCalls
	// inner calls is ~52 KB of hex.
	MaxRPCBody = 128 << 10
	// MaxRPCCalls bounds the calls of a batch and the inner calls of one
	// aggregate3.
	MaxRPCCalls = 100
	// maxRPCDepth bounds the nesting of a body's JSON, checked before it is
	// decoded: a batch of calls whose eth_call carries a state override is 6.
	maxRPCDepth = 8
	// maxMethodEcho bounds how much of an unknown method's name an error
	// repeats.
	maxMethodEcho = 64
)

// JSON-RPC error codes, as geth answers them.
const (
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcServerError    = -32000
	rpcLimitExceeded  = -32005
)

// rpcError is a JSON-RPC error object.
type rpcError struct {
	code    int
	message string
}

var (
	errHeaderNotFound = &rpcError{rpcServerError, "header not found"}
	errEmptyBatch     = &rpcError{rpcInvalidRequest, "empty batch"}
	errBatchTooLarge  = &rpcError{rpcInvalidRequest, "batch too large"}
	errNotJSONRPC     = &rpcError{rpcInvalidRequest, "invalid request"}
)

// errNotJSONRPCBody refuses a body that is not JSON-RPC at all (400).
var errNotJSONRPCBody = invalidRequest(fmt.Sprintf("body must be a JSON-RPC 2.0 call (an object) or batch (an array), nested at most %d deep", maxRPCDepth))

func invalidParams(format string, args ...any) *rpcError {
	return &rpcError{rpcInvalidParams, fmt.Sprintf(format, args...)}
}

func notServed(format string, args ...any) *rpcError {
	return &rpcError{rpcServerError, "balidx: " + fmt.Sprintf(format, args...)}
}

// rpcMessage is one call as sent.
type rpcMessage struct {
	Version string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  rpcParams       `json:"params"`
}

// rpcParams is a call's params: absent or null (none), an array (its
// elements, raw), or anything else (notArray, answered -32602), decoded
// with the call rather than after it.
type rpcParams struct {
	list     []json.RawMessage
	notArray bool
}

func (p *rpcParams) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case 'n':
		return nil
	case '[':
		return json.Unmarshal(b, &p.list)
	}
	p.notArray = true
	return nil
}

// rpcCall is one call, planned: what it reads and at which block, or the
// error it is answered with before anything is read.
type rpcCall struct {
	id     json.RawMessage // nil: a notification, answered with nothing
	method string
	err    *rpcError
	block  blockSel
	// reads are indices into the request's holdings: one for
	// eth_getBalance and for an eth_call of one balance.
	reads []int
	// inner are an aggregate3's calls, in order (nil otherwise).
	inner []innerCall
}

// rpcRequest is a whole body, planned.
type rpcRequest struct {
	batch    bool
	calls    []rpcCall
	holdings []storage.Holding
	cost     int // requests of the caller's quota it spends
}

// postRPC answers a JSON-RPC call or batch (docs/API.md "Ethereum
// JSON-RPC"): planned whole, charged call by call, read at one block.
func (s *Server) postRPC(c echo.Context) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxRPCBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	if err != nil {
		return invalidRequest("body could not be read")
	}
	req, err := s.planRPC(body)
	if err != nil {
		return err
	}
	r := requestOf(c)
	if burst := r.burst(); burst > 0 && req.cost > burst {
		// Never to be had at once, however long the caller waits: refused
		// as geth refuses a batch too large, which libraries do not retry.
		req.calls = []rpcCall{{id: req.firstID(), err: &rpcError{rpcInvalidRequest,
			fmt.Sprintf("%d calls in one request are more than this caller's quota grants at once (%d): send smaller batches", req.cost, burst)}}}
		req.holdings, req.cost = nil, 1
	}
	h := c.Response().Header()
	if err := r.spend(s.cfg.Now(), req.cost-1, h); err != nil {
		return err
	}
	v, amounts, err := s.readRPC(r, req.holdings)
	if err != nil {
		return err
	}
	h[HeaderBlock], h[HeaderBlockHash] = v.blockHeader, v.hashHeader
	out := make([]byte, 0, 128*len(req.calls))
	if req.batch {
		out = append(out, '[')
	}
	n := 0
	for i := range req.calls {
		call := &req.calls[i]
		if call.id == nil {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = s.appendRPCAnswer(out, req, call, v, amounts)
	}
	if req.batch {
		out = append(out, ']')
	}
	if n == 0 {
		return c.NoContent(http.StatusOK) // notifications only: nothing to answer
	}
	return c.JSONBlob(http.StatusOK, out)
}

// readRPC reads what a request's calls ask for, in one snapshot read. One
// native amount under full coverage — a wallet's eth_getBalance — is
// answered through the cache, as GET /v1/balances is: an address never seen
// holds 0 there, so the entry's amount is exact whatever the entry.
func (s *Server) readRPC(r *request, holdings []storage.Holding) (*view, []storage.Amount, error) {
	if v := s.snap.current(); len(holdings) == 1 && holdings[0].Asset == balidx.NativeAsset && v != nil && v.meta.CoverageFull {
		a := holdings[0].Account
		e, v, src, err := s.snap.lookup(a, r.cacheKey(a), s.bounds)
		if err != nil {
			return nil, nil, err
		}
		s.metrics.lookups[src].Inc()
		if src == fromSnapshot {
			r.reads++
		}
		amounts := []storage.Amount{{}}
		amounts[0].Value.SetBytes32(e.native())
		return v, amounts, nil
	}
	v, amounts, err := s.snap.amounts(holdings, s.bounds)
	r.reads += len(holdings)
	return v, amounts, err
}

// planRPC decodes a body: a call or a batch of at most MaxRPCCalls. A body
// that is not JSON, or nests deeper than maxRPCDepth, is refused whole
// (400); a call that is not JSON-RPC is answered with its error.
func (s *Server) planRPC(body []byte) (*rpcRequest, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' && body[0] != '[' || jsonDepth(body) > maxRPCDepth {
		return nil, errNotJSONRPCBody
	}
	req := &rpcRequest{batch: body[0] == '['}
	if !req.batch {
		var m rpcMessage
		err := json.Unmarshal(body, &m)
		if isSyntaxError(err) {
			return nil, errNotJSONRPCBody
		}
		req.calls = []rpcCall{s.planMessage(&m, err, req)}
		req.cost = max(req.cost, 1)
		return req, nil
	}
	// The batch is decoded in one pass; a call of another shape (a number,
	// a method that is not a string) fails that, and then each call is
	// decoded alone, to be answered alone.
	var msgs []rpcMessage
	var decodeErrs []error
	if err := json.Unmarshal(body, &msgs); isSyntaxError(err) {
		return nil, errNotJSONRPCBody
	} else if err != nil {
		var raw []json.RawMessage
		if json.Unmarshal(body, &raw) != nil {
			return nil, errNotJSONRPCBody
		}
		msgs, decodeErrs = make([]rpcMessage, len(raw)), make([]error, len(raw))
		for i := range raw {
			decodeErrs[i] = json.Unmarshal(raw[i], &msgs[i])
		}
	}
	decodeErr := func(i int) error {
		if decodeErrs == nil {
			return nil
		}
		return decodeErrs[i]
	}
	switch {
	case len(msgs) == 0:
		req.batch = false
		req.calls = []rpcCall{{id: json.RawMessage("null"), err: errEmptyBatch}}
	case len(msgs) > MaxRPCCalls:
		// As geth answers: one error, with the first call's id.
		first := rpcCall{id: json.RawMessage("null"), err: errBatchTooLarge}
		if decodeErr(0) == nil && msgs[0].ID != nil && validID(msgs[0].ID) {
			first.id = msgs[0].ID
		}
		req.calls = []rpcCall{first}
	default:
		req.calls = make([]rpcCall, len(msgs))
		for i := range msgs {
			req.calls[i] = s.planMessage(&msgs[i], decodeErr(i), req)
		}
	}
	req.cost = max(req.cost, 1)
	return req, nil
}

func isSyntaxError(err error) bool {
	var syntax *json.SyntaxError
	return errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF)
}

// planMessage plans a decoded call (decodeErr: its decoding's) and adds
// what it reads to req.
func (s *Server) planMessage(m *rpcMessage, decodeErr error, req *rpcRequest) rpcCall {
	if decodeErr != nil || m.Version != "2.0" || m.Method == "" || !validID(m.ID) {
		return rpcCall{id: json.RawMessage("null"), err: errNotJSONRPC}
	}
	call := rpcCall{id: m.ID, method: m.Method}
	req.cost++
	if m.Params.notArray {
		call.err = invalidParams("non-array args")
		return call
	}
	params := m.Params.list
	switch m.Method {
	case "eth_chainId", "net_version", "eth_blockNumber":
	case "eth_getBalance":
		call.err = planGetBalance(&call, params, req)
	case "eth_call":
		call.err = s.planEthCall(&call, params, req)
	default:
		name := m.Method
		if len(name) > maxMethodEcho {
			name = name[:maxMethodEcho] + "…"
		}
		call.err = &rpcError{rpcMethodNotFound, fmt.Sprintf("the method %s does not exist/is not available", name)}
	}
	return call
}

func planGetBalance(call *rpcCall, params []json.RawMessage, req *rpcRequest) *rpcError {
	if len(params) < 1 {
		return invalidParams("missing value for required argument 0")
	}
	if len(params) < 2 {
		return invalidParams("missing value for required argument 1")
	}
	if len(params) > 2 {
		return invalidParams("too many arguments, want at most 2")
	}
	a, err := decodeAddressArg(params[0], 0)
	if err != nil {
		return err
	}
	if call.block, err = parseBlockSel(params[1], 1); err != nil {
		return err
	}
	call.reads = []int{req.read(a, balidx.NativeAsset)}
	return nil
}

// firstID is the id of the request's first call that has one, or null.
func (req *rpcRequest) firstID() json.RawMessage {
	for _, c := range req.calls {
		if c.id != nil {
			return c.id
		}
	}
	return json.RawMessage("null")
}

// read adds a holding to read, once, and returns its index. The search is
// linear: a body within MaxRPCBody names at most ~300 holdings.
func (req *rpcRequest) read(account, asset common.Address) int {
	h := storage.Holding{Account: account, Asset: asset}
	for i, have := range req.holdings {
		if have == h {
			return i
		}
	}
	req.holdings = append(req.holdings, h)
	return len(req.holdings) - 1
}

// appendRPCAnswer renders one call's answer at view v.
func (s *Server) appendRPCAnswer(b []byte, req *rpcRequest, call *rpcCall, v *view, amounts []storage.Amount) []byte {
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, call.id...)
	start := len(b)
	b = append(b, `,"result":"`...)
	b, err := s.appendResult(b, req, call, v, amounts)
	if err != nil {
		b = append(b[:start], `,"error":{"code":`...)
		b = strconv.AppendInt(b, int64(err.code), 10)
		b = append(b, `,"message":`...)
		msg, _ := json.Marshal(err.message) // a string always marshals
		b = append(b, msg...)
		return append(b, "}}"...)
	}
	return append(b, `"}`...)
}

// appendResult appends a call's result (the JSON string's content), or
// says its error.
func (s *Server) appendResult(b []byte, req *rpcRequest, call *rpcCall, v *view, amounts []storage.Amount) ([]byte, *rpcError) {
	if call.err != nil {
		return b, call.err
	}
	m := &v.meta
	switch call.method {
	case "eth_chainId":
		return strconv.AppendUint(append(b, "0x"...), m.ChainID, 16), nil
	case "net_version":
		return strconv.AppendUint(b, m.ChainID, 10), nil
	case "eth_blockNumber":
		return strconv.AppendUint(append(b, "0x"...), m.Trusted.Number, 16), nil
	}
	if !call.block.answers(m.Trusted) {
		return b, errHeaderNotFound
	}
	if call.method == "eth_getBalance" {
		i := call.reads[0]
		if err := servable(req.holdings[i], &amounts[i]); err != nil {
			return b, err
		}
		return append(b, amounts[i].Value.Hex()...), nil
	}
	return appendCallResult(b, req, call, amounts)
}
