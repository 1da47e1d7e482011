package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultListen is where the embedded server listens unless Config says
// otherwise.
const DefaultListen = "127.0.0.1:4222"

// Config opens a Log.
type Config struct {
	// URL of the NATS server(s), comma-separated; empty starts an embedded
	// server with JetStream.
	URL string
	// DataDir holds the embedded server's store, in its nats/ folder
	// (required without URL).
	DataDir string
	// Listen is the embedded server's host:port; port 0 picks a free one.
	// Default DefaultListen.
	Listen string
	// Replicas of the stream and the key-value buckets: 1, 3 or 5. Default 1.
	Replicas int
	// MaxAge bounds how long the stream keeps a message (0: all are kept),
	// set on the stream when SetMaxAge is (the serving processes; every one
	// of a deployment must give the same); else the stream's stays.
	MaxAge    time.Duration
	SetMaxAge bool
	// Name names the connection on the server.
	Name string
}

// Log is balidx's event log on NATS JetStream: the connection, the
// embedded server when no URL is given, the stream and its buckets. It is
// the only way the other parts reach NATS.
type Log struct {
	srv      *Embedded // nil on an external server
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	replicas int
}

// Open starts the embedded server if no URL is given, connects, and
// ensures the stream. Close releases all of it.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	l := &Log{replicas: cfg.Replicas}
	url := cfg.URL
	if url == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("embedded nats: no data directory")
		}
		if cfg.Listen == "" {
			cfg.Listen = DefaultListen
		}
		var err error
		if l.srv, err = StartEmbedded(EmbeddedConfig{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.Listen}); err != nil {
			return nil, fmt.Errorf("%w (is another balidx using %s?)", err, cfg.DataDir)
		}
		url = l.srv.URL()
	}
	var err error
	if l.nc, err = connect(url, cfg.Name); err != nil {
		l.Close()
		return nil, err
	}
	if l.js, err = jetstream.New(l.nc); err != nil {
		l.Close()
		return nil, err
	}
	err = untilSettled(ctx, func(ctx context.Context) (err error) {
		l.stream, err = ensureStream(ctx, l.js, streamConfig{Replicas: cfg.Replicas, MaxAge: cfg.MaxAge, SetMaxAge: cfg.SetMaxAge})
		return err
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// splitListen parses host:port; port 0 asks the server for a free one.
func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Close closes the connection and stops the embedded server, if any.
func (l *Log) Close() {
	if l.nc != nil {
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Close()
	}
}

// Embedded reports whether the log runs on a server this process started.
func (l *Log) Embedded() bool { return l.srv != nil }

// URL is the server the log is connected to.
func (l *Log) URL() string { return l.nc.ConnectedUrlRedacted() }

// Publisher returns a publisher for chainID, positioned after the last
// message of the chain, and that message (nil on an empty stream).
func (l *Log) Publisher(ctx context.Context, chainID uint64) (*Publisher, *BlockDelta, error) {
	return newPublisher(ctx, l.js, l.stream, chainID)
}

// Last returns the last part published for chainID and its stream
// sequence, or (nil, 0, nil) when there is none.
func (l *Log) Last(ctx context.Context, chainID uint64) (*BlockDelta, uint64, error) {
	return lastDelta(ctx, l.stream, chainID)
}

// StatusBoard opens the indexer status bucket, replicated as the stream.
func (l *Log) StatusBoard(ctx context.Context) (b *StatusBoard, err error) {
	err = untilSettled(ctx, func(ctx context.Context) (err error) {
		b, err = newStatusBoard(ctx, l.js, l.replicas)
		return err
	})
	return b, err
}

// SettleTimeout bounds how long Open and StatusBoard wait for a JetStream
// cluster that is still forming (no meta leader yet, a stream or bucket
// being created by several processes at once).
const SettleTimeout = time.Minute

// untilSettled calls fn, each attempt bounded, until it succeeds, fails
// for a reason waiting cannot cure, or SettleTimeout passes.
func untilSettled(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(SettleTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(actx)
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil, time.Now().After(deadline), errors.Is(err, ErrStreamMismatch):
			return err
		case errors.As(err, &apiErr) && apiErr.ErrorCode != jetstream.JSErrCodeStreamNameInUse && apiErr.Code != 503:
			return err // the server's definite answer, but a race between creators or a cluster not available yet
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Each calls fn with every message of chainID on the stream, in stream
// order, until fn returns an error.
func (l *Log) Each(ctx context.Context, chainID uint64, fn func(*BlockDelta) error) error {
	ictx, cancel := context.WithTimeout(ctx, apiTimeout)
	info, err := l.stream.Info(ictx)
	cancel()
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		gctx, cancel := context.WithTimeout(ctx, apiTimeout)
		m, err := l.stream.GetMsg(gctx, seq)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if m.Subject != Subject(chainID) {
			continue
		}
		d, err := Decode(m.Data)
		if err != nil {
			return fmt.Errorf("stream seq %d: %w", seq, err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// Stream is the JetStream stream, for tests that inspect it (its
// consumers, raw messages).
func (l *Log) Stream() jetstream.Stream { return l.stream }

// JetStream is the JetStream context, for tests that publish raw messages.
func (l *Log) JetStream() jetstream.JetStream { return l.js }
