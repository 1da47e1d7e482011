// Package testaddr gives tests loopback addresses to listen on.
package testaddr

import (
	"net"
	"testing"
)

// Free is a 127.0.0.1 host:port that was free when asked (another process
// may take it before the test listens: callers that can, retry).
func Free(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
