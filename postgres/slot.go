package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SlotDrop drops the replication slot of the database at databaseURL (slot
// "" means DefaultSlot of that database), so PostgreSQL stops retaining WAL
// for it. It reports whether a slot was dropped. A slot in use by a running
// server is not dropped: stop the server first. A later Open creates a new
// slot, which starts from that moment.
func SlotDrop(ctx context.Context, databaseURL, slot string) (bool, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return false, fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if slot == "" {
		var db string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return false, fmt.Errorf("postgres: %w", err)
		}
		slot = DefaultSlot(db)
	}
	var pid *int32
	err = conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: replication slot %s: %w", slot, err)
	}
	if pid != nil {
		return false, fmt.Errorf("postgres: replication slot %s is in use by server process %d (a running dollr serve): stop it first", slot, *pid)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
		switch pgCode(err) {
		case codeUndefinedObject:
			return false, nil
		case codeObjectInUse:
			return false, fmt.Errorf("postgres: replication slot %s is in use (a running dollr serve): stop it first: %w", slot, err)
		}
		return false, fmt.Errorf("postgres: drop replication slot %s: %w", slot, err)
	}
	return true, nil
}

// SlotInfo describes a replication slot for operators.
type SlotInfo struct {
	Name      string
	Exists    bool
	Active    bool
	ActivePID int32  // the walsender reading it, when active
	WALStatus string // reserved, extended, unreserved or lost (pg_replication_slots.wal_status)
	// RetainedBytes is how much WAL PostgreSQL keeps for the slot: from the
	// oldest position it may still need to the current position.
	RetainedBytes int64
	// LagBytes is how far the acknowledged position trails the current one.
	LagBytes int64
}

// SlotStatus reports on the replication slot of the database at
// databaseURL (slot "" means DefaultSlot of that database).
func SlotStatus(ctx context.Context, databaseURL, slot string) (SlotInfo, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return SlotInfo{}, fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if slot == "" {
		var db string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return SlotInfo{}, fmt.Errorf("postgres: %w", err)
		}
		slot = DefaultSlot(db)
	}
	info := SlotInfo{Name: slot}
	var pid *int32
	var status *string
	var retained, lag *int64
	err = conn.QueryRow(ctx, `SELECT active, active_pid, wal_status,
		(pg_current_wal_lsn() - restart_lsn)::int8, (pg_current_wal_lsn() - confirmed_flush_lsn)::int8
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&info.Active, &pid, &status, &retained, &lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return SlotInfo{}, fmt.Errorf("postgres: replication slot %s: %w", slot, err)
	}
	info.Exists = true
	if pid != nil {
		info.ActivePID = *pid
	}
	if status != nil {
		info.WALStatus = *status
	}
	if retained != nil {
		info.RetainedBytes = *retained
	}
	if lag != nil {
		info.LagBytes = *lag
	}
	return info, nil
}
