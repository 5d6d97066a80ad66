//go:build !linux

package sockopt

import (
	"net"
	"time"
)

func setUserTimeout(*net.TCPConn, time.Duration) bool { return false }

func userTimeout(*net.TCPConn) (time.Duration, bool) { return 0, false }
