//go:build unix

package realtime

import "syscall"

// tryWriteOnce writes b to the socket with one non-blocking system call,
// never waiting for room in its buffer; what does not fit is dropped. It is
// for a best-effort close frame just before the socket is closed. The caller
// must own the socket's writing side.
func tryWriteOnce(tr transport, b []byte) {
	if w, ok := tr.(interface{ tryWrite([]byte) (int, error) }); ok { // the poller's socket
		w.tryWrite(b)
		return
	}
	sc, ok := tr.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Write(func(fd uintptr) bool {
		syscall.Write(int(fd), b)
		return true // one attempt: do not wait for the socket to drain
	})
}
