//go:build linux

package demux

import (
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT from linux/tcp.h. The syscall
// package defines it on some architectures only (not amd64, 386 or arm),
// and its value is the same on all.
const tcpUserTimeout = 0x12

// setTCPUserTimeout sets TCP_USER_TIMEOUT to d on the TCP connection rwc
// is or wraps (see tcpConn), if any, in whole milliseconds, at least one.
func setTCPUserTimeout(rwc io.ReadWriteCloser, d time.Duration) error {
	tc := tcpConn(rwc)
	if tc == nil {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	ms := int(min(max(d.Milliseconds(), 1), math.MaxInt32))
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, ms)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt TCP_USER_TIMEOUT: %w", serr)
	}
	return nil
}

// tcpConn returns the *net.TCPConn that rwc is, or that it wraps and
// returns from a NetConn method as *tls.Conn does, or nil.
func tcpConn(rwc io.ReadWriteCloser) *net.TCPConn {
	switch c := rwc.(type) {
	case *net.TCPConn:
		return c
	case interface{ NetConn() net.Conn }:
		tc, _ := c.NetConn().(*net.TCPConn)
		return tc
	}
	return nil
}
