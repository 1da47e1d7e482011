// Package eventstest starts what tests of the pipeline need from NATS: an
// embedded server with JetStream on a random port and balidx's stream.
package eventstest

import (
	"context"
	"testing"

	"github.com/balidx/balidx/events"
	"github.com/nats-io/nats.go/jetstream"
)

// MustJetStream starts an embedded NATS server in a temporary directory,
// connects, creates the stream, and stops it all when the test ends.
func MustJetStream(tb testing.TB) (jetstream.JetStream, jetstream.Stream) {
	tb.Helper()
	srv, err := events.StartEmbedded(events.EmbeddedConfig{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	nc, err := events.Connect(srv.URL(), tb.Name())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := events.EnsureStream(context.Background(), js, events.StreamConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return js, s
}

// Deltas returns every message of the stream, decoded, in order.
func Deltas(tb testing.TB, s jetstream.Stream) []*events.BlockDelta {
	tb.Helper()
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var out []*events.BlockDelta
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatal(err)
		}
		d, err := events.Decode(m.Data)
		if err != nil {
			tb.Fatalf("stream seq %d: %v", seq, err)
		}
		out = append(out, d)
	}
	return out
}
