package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamConfig describes the stream that holds the deltas of every chain.
type streamConfig struct {
	// Name of the JetStream stream; default "BALIDX".
	Name string
	// Replicas: 1 on one machine, 3 or 5 on a JetStream cluster; default 1.
	Replicas int
	// MaxAge bounds how long a message is kept; 0 keeps every one. An
	// existing stream's is changed only when SetMaxAge is.
	MaxAge    time.Duration
	SetMaxAge bool
}

// defaultStream is the name of the stream when none is configured.
const defaultStream = "BALIDX"

// dedupWindow is how long JetStream remembers message ids. It must exceed the
// longest a publisher may retry one part (its backoff tops out well below).
const dedupWindow = 10 * time.Minute

func (c streamConfig) withDefaults() streamConfig {
	if c.Name == "" {
		c.Name = defaultStream
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// jetstreamConfig is the stream's configuration, written out in full: the
// stream is the log that every snapshot is rebuilt from, so it keeps every
// message (limits retention, no age or size limit) and refuses deletion of
// single messages, which would punch a hole into the sequence of blocks.
func (c streamConfig) jetstreamConfig() jetstream.StreamConfig {
	c = c.withDefaults()
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "balidx: one BlockDelta per trusted block (see events/FORMAT.md)",
		Subjects:    []string{"balidx.blocks.*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      c.MaxAge,
		MaxMsgSize:  MaxMessageBytes + 4096, // headers and headroom
		Discard:     jetstream.DiscardOld,
		Duplicates:  dedupWindow,
		DenyDelete:  true,
		AllowDirect: true,
	}
}

// ensureStream creates the stream, or checks that an existing one is usable.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg streamConfig) (jetstream.Stream, error) {
	want := cfg.jetstreamConfig()
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.MaxMsgSize != 0 && have.MaxMsgSize < want.MaxMsgSize || have.Retention != jetstream.LimitsPolicy {
		return nil, fmt.Errorf("%w: stream %s exists with max_msg_size %d and retention %s: balidx needs ≥ %d and limits retention",
			ErrStreamMismatch, want.Name, have.MaxMsgSize, have.Retention, want.MaxMsgSize)
	}
	if cfg.SetMaxAge && have.MaxAge != want.MaxAge {
		have.MaxAge = want.MaxAge
		if s, err = js.UpdateStream(ctx, have); err != nil {
			return nil, fmt.Errorf("set stream %s's max age to %s: %w", want.Name, want.MaxAge, err)
		}
	}
	return s, nil
}
