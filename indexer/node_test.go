package indexer

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/rpc"
	"github.com/sony/gobreaker/v2"
)

// The breaker opens after consecutive transport failures and then fails
// calls at once; errors the node answers with do not count.
func TestNodeBreaker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	node, err := Dial(context.Background(), "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	for i := range 5 {
		if _, err := node.ChainID(context.Background()); err == nil || errors.Is(err, gobreaker.ErrOpenState) {
			t.Fatalf("call %d: got %v, want a transport error", i, err)
		}
	}
	if node.BreakerState() != 2 {
		t.Fatalf("after 5 failures the breaker is in state %d, want open (2)", node.BreakerState())
	}
	if _, err := node.ChainID(context.Background()); !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("open breaker: got %v, want ErrOpenState", err)
	}

	srv := rpc.NewServer() // answers every call with "method not found"
	defer srv.Stop()
	answering := NewNode(rpc.DialInProc(srv))
	for range 10 {
		if err := answering.call(context.Background(), nil, "nope_nothing"); err == nil {
			t.Fatal("an unknown method succeeded")
		}
	}
	if answering.BreakerState() != 0 {
		t.Fatalf("JSON-RPC errors tripped the breaker (state %d)", answering.BreakerState())
	}
}

// Errors the operator can act on are named, with the fix in the message.
func TestClassify(t *testing.T) {
	tests := []struct {
		method, msg string
		want        error
		fix         string
	}{
		{"debug_traceBlockByHash", "historical state 0x3fafb66e8712a363aef58ba3968545f9aff6cfe63b8c3f96047c53623b3cbae0 is not available", ErrHistoricalState, "--gcmode archive"},
		{"eth_getBalance", "missing trie node 3fafb66e (path ) state 0x3fafb66e is not available", ErrHistoricalState, "--state.scheme hash"},
		{"debug_traceBlockByHash", "the method debug_traceBlockByHash does not exist/is not available", ErrNoDebugAPI, "--ws.api eth,net,web3,debug"},
	}
	for _, tt := range tests {
		err := classify(tt.method, errors.New(tt.msg))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.fix) {
			t.Errorf("%s %q: got %v, want %v naming %q", tt.method, tt.msg, err, tt.want, tt.fix)
		}
	}
	if err := classify("eth_call", errors.New("execution reverted")); errors.Is(err, ErrHistoricalState) || errors.Is(err, ErrNoDebugAPI) {
		t.Errorf("a revert was classified as %v", err)
	}
}
