//go:build !linux

package demux

import (
	"io"
	"time"
)

// setTCPUserTimeout does nothing: TCP_USER_TIMEOUT is Linux's.
func setTCPUserTimeout(io.ReadWriteCloser, time.Duration) error { return nil }
