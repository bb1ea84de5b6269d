package postgres

import (
	"net"
	"time"
)

// deadPeerTimeout is how long a connection may go unanswered before it is
// given up: a database host that vanished without closing its connections (a
// failover, a partition) would otherwise leave capture waiting for the
// kernel's retransmissions to give up, about 15 minutes on Linux, with no
// realtime event delivered meanwhile. Capture writes a status update every
// StatusInterval (10 s), so an unanswered peer is noticed within this time.
const deadPeerTimeout = 30 * time.Second

// newDialer dials PostgreSQL with TCP keepalives and, where the kernel has it
// (Linux), TCP_USER_TIMEOUT set to deadPeerTimeout.
func newDialer(connectTimeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: connectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 4,
		},
		Control: setUserTimeout,
	}
}
