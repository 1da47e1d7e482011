package indexer

import (
	"context"
	"errors"
	"time"

	"github.com/balidx/balidx/events"
	"golang.org/x/sync/errgroup"
)

// RunActive runs the indexer while it holds the chain's publishing lease,
// and stands by while another indexer does: any number of indexers may
// follow one chain, and exactly one publishes. It returns nil when ctx
// ends (releasing the lease, so that a standby takes over at once), or the
// error that stops publishing for good (one the operator must act on); any
// other stands it down, to try again.
//
// The active indexer stands down — stops publishing and waits for the
// lease again — when a renewal fails (events.ErrLeaseLost), and when the
// stream refuses a publish because another indexer published meanwhile
// (events.ErrPublishConflict): an indexer paused past its lease (SIGSTOP,
// a long GC, a partition) is fenced by the stream, not by the lease alone.
// Each time it becomes active it resumes after the stream's last block.
func (ix *Indexer) RunActive(ctx context.Context, lease *events.Lease) error {
	for {
		holder, err := lease.Acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ix.setActive(holder.Holder, holder.Since)
		ix.cfg.Log.Info("active: this indexer publishes", "holder", holder.Holder)
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return lease.Hold(gctx) })
		g.Go(func() error {
			if err := ix.Run(gctx); err != nil {
				return err
			}
			return errStopped // ends Hold too
		})
		err = g.Wait()
		ix.setActive("", time.Time{})
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := lease.Release(rctx); rerr != nil {
			ix.cfg.Log.Warn("releasing the publishing lease", "err", rerr)
		}
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, events.ErrLeaseLost), errors.Is(err, events.ErrPublishConflict):
			ix.metrics.standDowns.Inc()
			ix.cfg.Log.Warn("standing down: another indexer may publish", "err", err)
		case errors.Is(err, errStopped):
			return nil
		case isFatal(err):
			return err
		default:
			// A start that failed for a reason waiting can cure (NATS
			// electing a leader while the stream's last block was read):
			// stand down, and try again.
			ix.metrics.failures.Inc()
			ix.cfg.Log.Warn("could not start publishing; standing down, will try again", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// errStopped: Run returned without an error.
var errStopped = errors.New("indexer stopped")

// setActive records who publishes (empty: this indexer stands by).
func (ix *Indexer) setActive(holder string, since time.Time) {
	ix.mu.Lock()
	ix.status.ActiveIndexer, ix.status.ActiveSince = holder, since
	ix.mu.Unlock()
	if holder == "" {
		ix.metrics.active.Set(0)
		return
	}
	ix.metrics.active.Set(1)
	ix.metrics.activeSince.Set(float64(since.Unix()))
}
