package indexer

import (
	"context"
	"errors"
	"net"
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
