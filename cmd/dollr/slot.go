package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dollr/dollr/postgres"
)

func init() {
	register("slot", command{
		Summary: "inspect or drop the PostgreSQL replication slot: slot status|drop --database-url URL",
		Run:     runSlot,
	})
}

const slotUsage = `Usage: dollr slot status|drop --database-url URL [--slot NAME]

Subcommands:
  status   show the slot, whether a server reads it, and how much WAL it retains
  drop     drop the slot so PostgreSQL stops retaining WAL for it`

func runSlot(ctx context.Context, args []string) int {
	sub, code := subcommandUsage("slot", slotUsage, args, "status", "drop")
	if code >= 0 {
		return code
	}
	fs := newFlagSet("slot "+sub, "dollr slot "+sub+" --database-url URL [--slot NAME]", `
The replication slot feeds realtime from PostgreSQL's write-ahead log. While
it exists PostgreSQL keeps every WAL segment the slot has not acknowledged,
so an installation that no longer runs 'dollr serve' must drop it, or the
server's disk fills. Dropping refuses a slot a running server is reading.
The next 'dollr serve' creates a new slot, which starts from that moment.`)
	url := databaseURLFlag(fs, "PostgreSQL URL (env DATABASE_URL)")
	slot := fs.String("slot", "", "slot name (default: dollr_<database name>, as 'dollr serve' uses)")
	if code := parseFlags(fs, args[1:]); code >= 0 {
		return code
	}
	if *url == "" {
		fmt.Fprintf(os.Stderr, "dollr slot %s: --database-url (or DATABASE_URL) is required\n", sub)
		return 2
	}
	if sub == "drop" {
		dropped, err := postgres.SlotDrop(ctx, *url, *slot)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dollr slot drop: %v\n", err)
			return 1
		}
		if dropped {
			fmt.Println("dropped the replication slot")
		} else {
			fmt.Println("no such replication slot; nothing to drop")
		}
		return 0
	}
	info, err := postgres.SlotStatus(ctx, *url, *slot)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr slot status: %v\n", err)
		return 1
	}
	if !info.Exists {
		fmt.Printf("slot %s does not exist\n", info.Name)
		return 0
	}
	reader := "none (no server is capturing)"
	if info.Active {
		reader = fmt.Sprintf("server process %d", info.ActivePID)
	}
	fmt.Printf("slot        %s\nreader      %s\nwal status  %s\nretains     %s of WAL\nbehind by   %s\n",
		info.Name, reader, info.WALStatus, bytesIEC(info.RetainedBytes), bytesIEC(info.LagBytes))
	return 0
}

// bytesIEC renders a byte count as 12.3 MiB.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
