package events

import "errors"

// Errors of the events package. Every decoding failure wraps ErrInvalidDelta
// so that a consumer can tell a poisoned message from a transport failure.
var (
	// ErrInvalidDelta: a message is not a well-formed BlockDelta of this version.
	ErrInvalidDelta = errors.New("invalid block delta")
	// ErrUnsupportedVersion: a message carries a format version this build cannot read.
	ErrUnsupportedVersion = errors.New("unsupported block delta version")
	// ErrTooLarge: a message or one of its parts exceeds the format's limits.
	ErrTooLarge = errors.New("block delta exceeds limits")
	// ErrPublishConflict: the stream's last message is not the one the
	// publisher expected (another indexer published, or the stream was altered).
	ErrPublishConflict = errors.New("stream changed under the publisher")
	// ErrStreamMismatch: the stream exists with a configuration balidx cannot use.
	ErrStreamMismatch = errors.New("stream configured otherwise")
	// ErrLeaseLost: a renewal of the publishing lease failed, so another
	// indexer may hold it; the holder must stop publishing at once.
	ErrLeaseLost = errors.New("publishing lease lost")
	// ErrPositionLost: the stream no longer holds the message a snapshot
	// goes on from (retention removed it): start from a newer snapshot.
	ErrPositionLost = errors.New("stream position no longer retained")
	// ErrConsumerLost: the server no longer has the consumer delivering to
	// consume; nothing after it will arrive on that channel.
	ErrConsumerLost = errors.New("stream consumer lost")
	// ErrSnapshotGone: the snapshot asked for is no longer in the object
	// store (pruned after it was listed): list again.
	ErrSnapshotGone = errors.New("snapshot no longer in the object store")
)
