// Package sockopt sets the socket options muxrpc wants on the TCP
// connections it dials or accepts.
package sockopt

import (
	"net"
	"time"
)

// tcpConn unwraps conn to the *net.TCPConn under it: conn itself, or the
// connection under a *tls.Conn (or anything with a NetConn method).
func tcpConn(conn net.Conn) (*net.TCPConn, bool) {
	for range 4 {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c, true
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// SetUserTimeout sets TCP_USER_TIMEOUT on conn, if it is (or wraps) a TCP
// connection and the system has the option: data written and not
// acknowledged for d makes the connection fail, instead of after the
// system's retransmission timeout (about 15 minutes on Linux). It reports
// whether the option was set; a d of zero or less leaves it alone.
func SetUserTimeout(conn net.Conn, d time.Duration) bool {
	tc, ok := tcpConn(conn)
	if !ok || d <= 0 {
		return false
	}
	return setUserTimeout(tc, d)
}

// UserTimeout returns conn's TCP_USER_TIMEOUT, for tests.
func UserTimeout(conn net.Conn) (time.Duration, bool) {
	tc, ok := tcpConn(conn)
	if !ok {
		return 0, false
	}
	return userTimeout(tc)
}
