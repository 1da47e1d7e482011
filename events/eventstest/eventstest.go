// Package eventstest opens what tests of the pipeline need from NATS: the
// event log on an embedded server with JetStream on a random port.
package eventstest

import (
	"context"
	"testing"

	"github.com/balidx/balidx/events"
)

// MustLog opens the event log on an embedded server in a temporary
// directory, and closes it all when the test ends.
func MustLog(tb testing.TB) *events.Log {
	tb.Helper()
	l, err := events.Open(context.Background(), events.Config{DataDir: tb.TempDir(), Listen: "127.0.0.1:0", Name: tb.Name()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Close)
	return l
}

// Deltas returns every message of chainID on the log, decoded, in order.
func Deltas(tb testing.TB, l *events.Log, chainID uint64) []*events.BlockDelta {
	tb.Helper()
	var out []*events.BlockDelta
	err := l.Each(context.Background(), chainID, func(d *events.BlockDelta) error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
