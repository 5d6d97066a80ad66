package harness

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/muxrpc/muxrpc/bench/systems"
)

// StreamResult is what one streamed transfer measured.
type StreamResult struct {
	System   string
	Items    int
	Bytes    int64
	Elapsed  time.Duration // from the call to the end of the stream
	MBps     float64       // 10^6 bytes per second
	Err      string
	CloseErr string
}

// OK reports whether r holds a measurement.
func (r *StreamResult) OK() bool { return r.Err == "" && r.Elapsed > 0 }

// RunStream starts sys over the pair connect returns and receives one
// stream of n items of size bytes, checking each item's length and the
// bytes at both ends and the middle.
func RunStream(sys systems.System, connect func() (client, server net.Conn, err error), n, size int, timeout time.Duration) StreamResult {
	res := StreamResult{System: sys.Name(), Items: n}
	caller, closer, err := startOn(sys, connect)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer func() {
		if err := closeWithin(closer, timeout); err != nil {
			res.CloseErr = err.Error()
		}
	}()
	st, ok := caller.(systems.Streamer)
	if !ok {
		res.Err = "the system cannot stream"
		return res
	}
	want := systems.StreamItem(size)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := 0
	t0 := time.Now()
	err = st.Stream(ctx, n, size, func(item []byte) error {
		got++
		res.Bytes += int64(len(item))
		return checkReply(want, item)
	})
	res.Elapsed = time.Since(t0)
	if err == nil && got != n {
		err = fmt.Errorf("received %d items, want %d", got, n)
	}
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.MBps = float64(res.Bytes) / 1e6 / res.Elapsed.Seconds()
	return res
}
