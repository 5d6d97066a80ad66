package mux

import (
	"log/slog"

	"github.com/muxrpc/muxrpc/channel"
)

// Option configures a Mux.
type Option func(*channel.Config)

// MaxFrameSize sets the largest frame the Mux sends or accepts, counted as
// the frame's length field counts it. Zero or negative means the default,
// 16 MiB. A call whose arguments would need a larger frame fails with an
// error wrapping frame.ErrTooLarge; the Mux and its other calls go on. A
// reply above the limit ends the stream. Use the same limit on both sides.
func MaxFrameSize(n int) Option {
	return func(c *channel.Config) { c.MaxFrameSize = n }
}

// Logger sets where the Mux reports stream failures and dropped frames, at
// debug level. Nil, the default, means silence.
func Logger(l *slog.Logger) Option {
	return func(c *channel.Config) { c.Logger = l }
}
