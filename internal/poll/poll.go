// Package poll waits, in tests, for a condition to hold: it asks again
// every few milliseconds until a deadline, instead of sleeping a guessed
// time (nats-server's checkFor is the model).
package poll

import (
	"testing"
	"time"
)

// Until calls cond until it returns nil, and fails tb with cond's last
// error if that has not happened within total.
func Until(tb testing.TB, total time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %v", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
