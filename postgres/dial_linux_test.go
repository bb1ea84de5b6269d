package postgres

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout reads TCP_USER_TIMEOUT (milliseconds) and SO_KEEPALIVE of c.
func userTimeout(t *testing.T, c net.Conn) (ms, keepalive int) {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("%T is not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var e1, e2 error
	err = raw.Control(func(fd uintptr) {
		ms, e1 = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		keepalive, e2 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
	})
	if err != nil || e1 != nil || e2 != nil {
		t.Fatal(err, e1, e2)
	}
	return ms, keepalive
}

// The store's connections give up on a vanished database host within
// deadPeerTimeout instead of the kernel's quarter of an hour.
func TestConnectionsNoticeDeadPeer(t *testing.T) {
	ctx, db := openInternal(t)
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	ms, keepalive := userTimeout(t, conn.Conn().PgConn().Conn())
	if ms != int(deadPeerTimeout/time.Millisecond) || keepalive != 1 {
		t.Fatalf("pool connection: TCP_USER_TIMEOUT %d ms, SO_KEEPALIVE %d; want %d ms and keepalives on", ms, keepalive, deadPeerTimeout/time.Millisecond)
	}
	repl, err := connectReplication(ctx, db.connCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	if ms, _ := userTimeout(t, repl.Conn()); ms != int(deadPeerTimeout/time.Millisecond) {
		t.Fatalf("replication connection: TCP_USER_TIMEOUT %d ms", ms)
	}
}
