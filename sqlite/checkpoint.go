package sqlite

import (
	"context"
	"time"
)

// Checkpointing copies committed pages from the WAL back into the database
// file. SQLite's automatic checkpoint runs inside the COMMIT that crosses the
// threshold, so that commit (and the feed waiting on it) would pay for the
// copy and an fsync. A PASSIVE checkpoint on its own connection runs beside
// the writer and the readers instead, and keeps the WAL short.
const (
	checkpointEvery       = 250 * time.Millisecond
	safetyCheckpointPages = 50_000           // ~200 MB: the writer checkpoints itself only if this loop is stuck
	walSizeLimit          = 64 * 1024 * 1024 // truncate the WAL file back to this after a reset
)

func (db *DB) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var done uint64 // commits covered by the last checkpoint
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := db.commits.Load(); n != done {
			if _, _, err := db.checkpoint(ctx); err == nil {
				done = n
			}
		}
	}
}

// checkpoint runs one PASSIVE checkpoint, which copies what it can without
// waiting for readers or the writer, and reports the WAL's frames and how
// many of them are now in the database file.
func (db *DB) checkpoint(ctx context.Context) (walFrames, copied int, err error) {
	var busy int
	err = db.checkpointer.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &walFrames, &copied)
	return walFrames, copied, err
}
