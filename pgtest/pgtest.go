// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb in a
// temporary directory, wal_level=logical, a free loopback port, fsync off.
//
// A package that shares one cluster between its tests calls Main from
// TestMain and NewDatabase in each test:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) { url := pgtest.NewDatabase(t) ... }
//
// A test that restarts the server starts its own cluster with Start.
//
// Without PostgreSQL binaries the tests skip, unless the environment variable
// CI is set, when they fail.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDirEnv names an environment variable that overrides where the
// PostgreSQL server binaries (initdb, pg_ctl) are looked up.
const BinDirEnv = "PGTEST_BINDIR"

// Cluster is one running PostgreSQL server owned by a test process.
type Cluster struct {
	dir     string // owns data/, sock/ and the log; removed by Stop
	dataDir string
	sockDir string
	logFile string
	bin     string
	port    int
	owner   *osUser // non-nil when the server runs as another user (we are root)

	mu      sync.Mutex
	stopped bool
	down    bool // stopped by Down, to be started by Up
}

// ErrNoBinaries is returned (wrapped) by NewCluster when no PostgreSQL server
// binaries are installed.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found")

// Start starts a cluster for one test and stops it when the test ends. It
// skips the test when PostgreSQL is not installed (fails when CI is set).
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := NewCluster()
	if err != nil {
		skipOrFatal(tb, err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("pgtest: stop: %v", err)
		}
	})
	return c
}

func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNoBinaries) && os.Getenv("CI") == "" {
		tb.Skip(err.Error())
	}
	tb.Fatal(err)
}

// NewCluster initialises and starts a cluster. The caller must call Stop.
func NewCluster() (*Cluster, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	owner, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		sockDir: filepath.Join(dir, "sock"),
		logFile: filepath.Join(dir, "postgres.log"),
		bin:     bin,
		owner:   owner,
	}
	if err := c.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port found by listening on port 0 can be taken by someone else
	// before the server binds it; try a few.
	for attempt := 0; ; attempt++ {
		c.port, err = freePort()
		if err == nil {
			err = c.writePortConf()
		}
		if err == nil {
			err = c.start()
		}
		if err == nil {
			return c, nil
		}
		if attempt == 4 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (c *Cluster) init() error {
	if err := os.Mkdir(c.sockDir, 0o700); err != nil {
		return err
	}
	if c.owner != nil {
		if err := c.owner.chown(c.dir); err != nil {
			return err
		}
		if err := c.owner.chown(c.sockDir); err != nil {
			return err
		}
	}
	if out, err := c.run("initdb", "-D", c.dataDir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	conf := strings.Join([]string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + c.sockDir + "'",
		"wal_level = logical",
		"max_replication_slots = 40",
		"max_wal_senders = 40",
		"max_connections = 300",
		"shared_buffers = 32MB",
		"fsync = off",
		"full_page_writes = off",
		"timezone = 'UTC'",
		"log_min_messages = warning",
		"include_if_exists = 'port.conf'",
		"",
	}, "\n")
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n# pgtest\n" + conf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *Cluster) writePortConf() error {
	p := filepath.Join(c.dataDir, "port.conf")
	if err := os.WriteFile(p, []byte("port = "+strconv.Itoa(c.port)+"\n"), 0o600); err != nil {
		return err
	}
	if c.owner != nil {
		return c.owner.chown(p)
	}
	return nil
}

func (c *Cluster) start() error {
	out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir, "-l", c.logFile)
	if err != nil {
		log, _ := os.ReadFile(c.logFile)
		return fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return nil
}

func (c *Cluster) stop(mode string) error {
	out, err := c.run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", c.dataDir)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Restart stops the server (fast shutdown: connections are terminated) and
// starts it again on the same port. Existing connections see errors and must
// reconnect.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.down {
		return errors.New("pgtest: cluster is not running")
	}
	if err := c.stop("fast"); err != nil {
		return err
	}
	return c.start()
}

// Down stops the server (fast shutdown) but keeps its data, as an outage
// would; Up starts it again on the same port.
func (c *Cluster) Down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.down {
		return errors.New("pgtest: cluster is not running")
	}
	if err := c.stop("fast"); err != nil {
		return err
	}
	c.down = true
	return nil
}

// Up starts a server stopped by Down.
func (c *Cluster) Up() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || !c.down {
		return errors.New("pgtest: cluster is not down")
	}
	if err := c.start(); err != nil {
		return err
	}
	c.down = false
	return nil
}

// Stop stops the server at once and removes its directory. It is safe to call
// more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var err error
	if !c.down {
		err = c.stop("immediate")
	}
	if rmErr := os.RemoveAll(c.dir); err == nil {
		err = rmErr
	}
	return err
}

// URL returns the connection URL of database name as the superuser postgres.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Tool is the path of one of the cluster's PostgreSQL programs (pg_dump,
// pg_restore, ...), of the same version as the server.
func (c *Cluster) Tool(name string) string { return filepath.Join(c.bin, name) }

// Port returns the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Log returns the server log so far, for failure messages.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.logFile)
	return string(b)
}

// Exec runs SQL statements as the superuser in database name.
func (c *Cluster) Exec(ctx context.Context, database, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.URL(database))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

var dbCounter atomic.Int64

// CreateDatabase creates an empty database with a unique name and returns
// its connection URL and name.
func (c *Cluster) CreateDatabase(ctx context.Context) (url, name string, err error) {
	name = fmt.Sprintf("test_%d_%d", os.Getpid(), dbCounter.Add(1))
	// CREATE DATABASE copies template1 and fails if another session is
	// connected to it; retry briefly in that case.
	for attempt := 0; ; attempt++ {
		err = c.Exec(ctx, "postgres", "CREATE DATABASE "+name)
		if err == nil || attempt == 20 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.URL(name), name, nil
}

// DropDatabase drops a database with its replication slots, disconnecting
// every session that uses it.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// A logical slot blocks DROP DATABASE; an active one must lose its
	// walsender first.
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE database = $1 AND active_pid IS NOT NULL`, name)
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
				WHERE database = $1 AND NOT active`, name)
		}
		var remaining int
		if err == nil {
			err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, name).Scan(&remaining)
		}
		if err == nil && remaining == 0 {
			break
		}
		if attempt == 100 {
			if err == nil {
				err = fmt.Errorf("%d replication slots remain", remaining)
			}
			return fmt.Errorf("pgtest: drop slots of %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

var shared struct {
	mu      sync.Mutex
	inMain  bool
	cluster *Cluster
	err     error
}

// Main runs the package's tests and then stops the shared cluster, if a test
// started one. Call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil {
		if err := shared.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
		shared.cluster = nil
	}
	return code
}

// Shared returns the package's shared cluster, starting it on first use. The
// package's TestMain must call Main, which stops it.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		tb.Fatal("pgtest: Shared needs TestMain to call pgtest.Main, which stops the cluster")
	}
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = NewCluster()
	}
	if shared.err != nil {
		skipOrFatal(tb, shared.err)
	}
	return shared.cluster
}

// NewDatabase creates a fresh database in the shared cluster (see Shared)
// and drops it when the test ends. It returns the database's URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	c := Shared(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, name, err := c.CreateDatabase(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			tb.Error(err)
		}
	})
	return url
}

// run runs a server binary, as the cluster's owner when we are root.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if c.owner != nil {
		c.owner.apply(cmd)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start leaves the server running with our pipes as its
	// output unless told otherwise (-l); don't wait on them forever.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// findBinDir finds the PostgreSQL server binaries: $PGTEST_BINDIR, then
// /usr/lib/postgresql/15/bin, then the newest /usr/lib/postgresql/*/bin,
// then initdb on PATH.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(BinDirEnv); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("%w in %s=%s", ErrNoBinaries, BinDirEnv, d)
	}
	if d := "/usr/lib/postgresql/15/bin"; has(d) {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); has(d) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
