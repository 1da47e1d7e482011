package storage

import (
	"errors"

	"github.com/balidx/balidx"
)

// Errors of the storage package.
var (
	// ErrPreMismatch: a change's pre amount disagrees with the snapshot. The
	// snapshot and the stream disagree about history; nothing is overwritten.
	ErrPreMismatch = errors.New("pre amount disagrees with the snapshot")
	// ErrDiscontinuity: a block does not follow the snapshot's trusted block
	// (wrong number or parent hash), or its parts arrived out of order.
	ErrDiscontinuity = errors.New("block does not continue the snapshot")
	// ErrForeignSnapshot: the file belongs to another chain or format.
	ErrForeignSnapshot = errors.New("snapshot belongs to another chain or format")
	// ErrCorruptSnapshot: the file cannot be read as a snapshot.
	ErrCorruptSnapshot = errors.New("snapshot file is corrupt")
	// ErrDigestMismatch: the balances a file holds do not add up to the
	// digest it states (a damaged or doctored copy).
	ErrDigestMismatch = errors.New("snapshot balances do not match its digest")
	// ErrNoSnapshot: nothing has been applied yet; there is no block to answer for.
	ErrNoSnapshot = errors.New("no block applied yet")
	// ErrPoisonedStream: a message on the stream cannot be read as the
	// event format says (the source's balidx.ErrPoisonedLog).
	ErrPoisonedStream = balidx.ErrPoisonedLog
)
