package mux

import (
	"log/slog"
	"time"

	"github.com/muxrpc/muxrpc/internal/core"
)

// Option configures a Mux. It is the same type as demux.Option: options of
// package demux, such as demux.Handle, configure the serving half of a Mux
// that also serves.
type Option = core.Option

// MaxFrameSize sets the largest frame the Mux sends or accepts, counted as
// the frame's length field counts it. Zero or negative means the default,
// 16 MiB. A call whose arguments would need a larger frame fails with an
// error wrapping frame.ErrTooLarge; the Mux and its other calls go on. A
// reply above the limit ends the stream. Use the same limit on both sides.
func MaxFrameSize(n int) Option {
	return func(c *core.Config) { c.Channel.MaxFrameSize = n }
}

// Logger sets where the Mux reports, at debug level, the end of its stream
// and why, a GOAWAY from the peer, and replies it drops because their
// callers gave up. A Mux that serves also reports its handlers' panics
// there, at error level. Nil, the default, means silence.
func Logger(l *slog.Logger) Option {
	return func(c *core.Config) { c.Channel.Logger = l }
}

// GracePeriod sets how long Close of a Mux made by Start waits for the
// child process to exit once its stdin is closed, before it kills the
// child. Zero or negative means 5 seconds. Other Muxes ignore it.
func GracePeriod(d time.Duration) Option {
	return func(c *core.Config) { c.GracePeriod = d }
}
