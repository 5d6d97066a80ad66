package mux

import (
	"log/slog"
	"time"

	"github.com/muxrpc/muxrpc/channel"
)

// Option configures a Mux.
type Option func(*config)

// config is what the options set.
type config struct {
	channel channel.Config
	grace   time.Duration // Start's grace period; zero or negative means defaultGracePeriod
}

// MaxFrameSize sets the largest frame the Mux sends or accepts, counted as
// the frame's length field counts it. Zero or negative means the default,
// 16 MiB. A call whose arguments would need a larger frame fails with an
// error wrapping frame.ErrTooLarge; the Mux and its other calls go on. A
// reply above the limit ends the stream. Use the same limit on both sides.
func MaxFrameSize(n int) Option {
	return func(c *config) { c.channel.MaxFrameSize = n }
}

// Logger sets where the Mux reports stream failures and dropped frames, at
// debug level. Nil, the default, means silence.
func Logger(l *slog.Logger) Option {
	return func(c *config) { c.channel.Logger = l }
}

// defaultGracePeriod is how long Close waits for a child started by Start
// to exit once its stdin is closed, unless GracePeriod says otherwise.
const defaultGracePeriod = 5 * time.Second

// GracePeriod sets how long Close on a Mux made by Start waits for the
// child to exit after closing its stdin before it kills the child. Zero or
// negative means the default, 5 s. New and Dial ignore it.
func GracePeriod(d time.Duration) Option {
	return func(c *config) { c.grace = d }
}
