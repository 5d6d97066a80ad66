package sockopt

import (
	"net"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT from linux/tcp.h, which package
// syscall does not name.
const tcpUserTimeout = 18

func setUserTimeout(c *net.TCPConn, d time.Duration) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
	})
	return err == nil && serr == nil
}

func userTimeout(c *net.TCPConn) (time.Duration, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var ms int
	var serr error
	err = raw.Control(func(fd uintptr) {
		ms, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
	})
	if err != nil || serr != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}
