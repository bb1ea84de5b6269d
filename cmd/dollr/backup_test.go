package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr/client"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/internal/dirlock"
)

// TestBackupRestore backs up a running server's SQLite store with one payment
// finished and one still waiting for the payer's approval, then restores it
// with `dollr restore` as docs/backup.md says. The restore is refused while
// the server runs; once it is stopped, the store goes back to the backup's
// moment (a payment made after the backup is gone, kept in the replaced
// store), the finished payment is there and the waiting one completes, since
// its pending sandbox step came with the backup.
func TestBackupRestore(t *testing.T) {
	in := newInstallation(t, backends.SQLite)
	// The approval waits 10 s: the backup, taken within a second of
	// PROCESSING, must hold its pending step even on a loaded machine.
	s := startServe(t, in, "--sandbox-long-delay", "10s")
	c := newClient(t, s.creds)
	done, _ := c.startPayment("231770000010")
	c.waitStatus(done, "COMPLETED")
	waiting, _ := c.startPayment("231770000002") // PROCESSING until --sandbox-long-delay
	c.waitStatus(waiting, "PROCESSING")

	out := filepath.Join(t.TempDir(), "dollr-backup.db")
	r := runCLI(t, nil, "backup", "--data-dir", in.dataDir, "--out", out)
	if r.code != 0 || !strings.Contains(r.stdout, "2 payments, 1 pending sandbox steps") || !strings.Contains(r.stdout, "integrity check ok") {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if r := runCLI(t, nil, "backup", "--data-dir", in.dataDir, "--out", out); r.code != 1 || !strings.Contains(r.stderr, "never overwrites") {
		t.Errorf("a second backup onto the first: exit %d %s, want 1 and a refusal", r.code, r.stderr)
	}
	later, _ := c.startPayment("231770000010") // after the backup

	if r := runCLI(t, nil, "restore", "--data-dir", in.dataDir, "--from", out); r.code != 1 || !strings.Contains(r.stderr, "stop it") {
		t.Fatalf("restore while the server runs: exit %d %s, want 1 and a refusal", r.code, r.stderr)
	}
	if s.Stop() != 0 {
		t.Fatalf("serve did not stop cleanly:\n%s", s.Output())
	}
	r = runCLI(t, nil, "restore", "--data-dir", in.dataDir, "--from", out)
	if r.code != 0 || !strings.Contains(r.stdout, "2 payments, 1 pending sandbox steps") || !strings.Contains(r.stdout, "kept as") {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	kept, _ := filepath.Glob(filepath.Join(in.dataDir, sqliteFile+".before-restore-*"))
	if len(kept) == 0 {
		t.Errorf("the replaced store was not kept: %v", kept)
	}

	s2 := startServe(t, in)
	c2 := newClient(t, s2.creds)
	c2.waitStatus(done, "COMPLETED")
	c2.waitStatus(waiting, "COMPLETED")
	if resp, body := getWithHeader(t, s2.URL+"/v1/status/collection/"+later, "Authorization", "Bearer "+c2.Token); resp.StatusCode != 404 {
		t.Errorf("a payment made after the backup, after the restore: %d %s, want 404", resp.StatusCode, body)
	}

	// On a new machine: the directory is made, and restore says that
	// credentials.json must come with the backup.
	fresh := filepath.Join(t.TempDir(), "new", "data")
	r = runCLI(t, nil, "restore", "--data-dir", fresh, "--from", out)
	if r.code != 0 || !strings.Contains(r.stdout, "has no credentials.json") || strings.Contains(r.stdout, "kept as") {
		t.Errorf("restore into a new directory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestServeRefusesDuringRestore: while a restore holds the data directory,
// serve exits, saying why, instead of opening a store about to be replaced.
func TestServeRefusesDuringRestore(t *testing.T) {
	if !dirlock.Supported {
		t.Skip("the data directory's lock is not enforced on this system")
	}
	dir := t.TempDir()
	lock, err := dirlock.Exclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	r := runCLI(t, nil, "serve", "--data-dir", dir, "--addr", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "a restore is running") {
		t.Errorf("serve during a restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "backup", "--data-dir", dir, "--out", filepath.Join(dir, "b.db")); r.code != 1 {
		t.Errorf("backup during a restore: exit %d %s, want 1", r.code, r.stderr)
	}
}

// TestBackupRefusals: no --out or --from, a PostgreSQL store, a data
// directory with no store, a backup that is not there; each exits non-zero,
// saying why, and writes no database.
func TestBackupRefusals(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "b.db")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup", "--data-dir", dir}, 2, "--out is required"},
		{[]string{"backup", "--data-dir", dir, "--out", out, "--database-url", "postgres://u@127.0.0.1:1/db"}, 2, "pg_dump"},
		{[]string{"backup", "--data-dir", dir, "--out", out}, 1, "no store at"},
		{[]string{"restore", "--data-dir", dir}, 2, "--from is required"},
		{[]string{"restore", "--data-dir", dir, "--from", out, "--database-url", "postgres://u@127.0.0.1:1/db"}, 2, "pg_restore"},
		{[]string{"restore", "--data-dir", dir, "--from", filepath.Join(dir, "missing.db")}, 1, "missing.db"},
	} {
		r := runCLI(t, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	// Only the lock file, which restore takes before it reads the backup.
	if entries, _ := os.ReadDir(dir); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != dirlock.FileName {
		t.Errorf("refused backups and restores left %v in %s", entries, dir)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresDumpRestore is docs/backup.md's PostgreSQL path: pg_dump of a
// running server's database with one payment finished and one waiting,
// pg_restore into an empty database, and a server started on it with the
// data directory's credentials.json. The merchant signs in, the finished
// payment is there and the waiting one completes; the server creates the
// replication slot a dump does not carry, so realtime works on the copy.
func TestPostgresDumpRestore(t *testing.T) {
	cluster, dbURL := ownDatabase(t)
	in := installation{dataDir: filepath.Join(t.TempDir(), "data"), databaseURL: dbURL}
	s := startServe(t, in, "--sandbox-long-delay", "10s")
	c := newClient(t, s.creds)
	done, _ := c.startPayment("231770000010")
	c.waitStatus(done, "COMPLETED")
	waiting, _ := c.startPayment("231770000002")
	c.waitStatus(waiting, "PROCESSING")

	dump := filepath.Join(t.TempDir(), "dollr.dump")
	if out, err := exec.Command(cluster.Tool("pg_dump"), "--format=custom", "--file", dump, "--dbname", dbURL).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	if s.Stop() != 0 {
		t.Fatalf("serve did not stop cleanly:\n%s", s.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	newURL, _, err := cluster.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cluster.Tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", newURL, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}

	restored := installation{dataDir: filepath.Join(t.TempDir(), "restored"), databaseURL: newURL}
	if err := os.MkdirAll(restored.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(in.dataDir, credentialsFile), filepath.Join(restored.dataDir, credentialsFile))
	s2 := startServe(t, restored)
	if s2.creds.ClientID != s.creds.ClientID {
		t.Fatalf("restored server's merchant %s, want %s", s2.creds.ClientID, s.creds.ClientID)
	}
	sdk, err := client.New(client.Config{BaseURL: s2.creds.BaseURL, ClientID: s2.creds.ClientID, ClientSecret: s2.creds.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	c2 := newClient(t, s2.creds)
	c2.waitStatus(done, "COMPLETED")
	// A new payment on the copy is seen live: capture runs on the new slot.
	p := preparePayment(t, ctx, sdk, "231770000010")
	sub := subscribe(t, ctx, s2, p.key, p.sessionID, p.ref)
	p.execute(t, ctx, sdk)
	if got, want := sub.wait(t, 3), []string{"PENDING", "PROCESSING", "COMPLETED"}; !equalStrings(got, want) {
		t.Errorf("realtime on the restored database: statuses %v, want %v", got, want)
	}
	c2.waitStatus(waiting, "COMPLETED")
}
