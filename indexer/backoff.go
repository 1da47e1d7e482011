package indexer

import (
	"math/rand/v2"
	"time"
)

// backoff yields jittered, exponentially growing waits between retries.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, cur: base}
}

// next returns a wait in [cur/2, cur) and doubles cur up to max.
func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(2*b.cur, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.base }
