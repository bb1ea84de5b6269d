//go:build !linux

package realtime

import "net"

// Without epoll every socket is read on its own goroutine (conn.readLoop).

type poller struct{}

func (p *poller) stop() {}

type pollSock struct{}

func (s *Server) pollSocket(net.Conn) *pollSock { return nil }

func (ps *pollSock) start(*conn, []byte)         {}
func (ps *pollSock) release()                    {}
func (ps *pollSock) Write(b []byte) (int, error) { return 0, net.ErrClosed }
func (ps *pollSock) Close() error                { return nil }
func (ps *pollSock) RemoteAddr() net.Addr        { return nil }
