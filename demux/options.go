package demux

import (
	"log/slog"

	"github.com/muxrpc/muxrpc/channel"
)

// DefaultMaxInFlight bounds the requests queued or running at once when
// MaxInFlight is not given (or when Workers asks for more goroutines, the
// number of workers).
const DefaultMaxInFlight = 1024

// Option configures a DeMux.
type Option func(*config)

type config struct {
	channel     channel.Config
	workers     int
	maxInFlight int
	maxConns    int // read by NewServer only
}

// Workers sets how requests run. n > 0 starts a pool of exactly n
// goroutines that take requests in the order they arrived, so at most n
// handlers run at once, and Workers(1) handles one request at a time in
// arrival order. n <= 0, the default, runs each request as if on a
// goroutine of its own (still bounded by MaxInFlight): no handler waits for
// another to return, however long that one blocks. Requests wait in a queue
// that goroutines take them from in arrival order, and another goroutine is
// woken whenever one takes a request and leaves others waiting, so a busy
// DeMux with quick handlers runs on a few goroutines instead of waking one
// per request; a goroutine that finds the queue empty waits a few seconds
// for more work before it exits.
func Workers(n int) Option {
	return func(c *config) { c.workers = max(n, 0) }
}

// MaxInFlight bounds the requests, notifications included, that are queued
// or running at once. Requests that arrive past the bound are held, in
// arrival order, and queued as handlers finish; while the held requests
// weigh more than 1 MiB (payloads and method names) the DeMux stops reading
// the stream until a handler finishes, which pushes back on the client
// through the transport. Reading on past the bound is what lets a DeMux
// whose handlers all wait for their contexts see the client hang up. n <= 0 means DefaultMaxInFlight, or the number of workers
// if that is larger.
func MaxInFlight(n int) Option {
	return func(c *config) { c.maxInFlight = n }
}

// MaxFrameSize sets the largest frame the DeMux accepts or sends, counted
// as the frame's length field counts it. Zero or negative means the
// default, 16 MiB. A larger request ends the stream (the length is checked
// before anything is allocated); a larger result is answered with
// CodeInternal instead. Use the same limit on both sides.
func MaxFrameSize(n int) Option {
	return func(c *config) { c.channel.MaxFrameSize = n }
}

// Logger sets where the DeMux reports stream failures and errors of
// notification handlers, which have nobody to return them to. Nil, the
// default, means silence.
func Logger(l *slog.Logger) Option {
	return func(c *config) { c.channel.Logger = l }
}

// MaxConns bounds the connections a Server serves at once. A connection
// accepted while n are being served is closed at once, without a preface
// or a reply, so its client's calls fail with an error wrapping
// mux.ErrClosed; the connections being served are not affected, and once
// one of them ends a new one is served again. n <= 0, the default, means
// no limit. A DeMux made with New ignores it.
func MaxConns(n int) Option {
	return func(c *config) { c.maxConns = n }
}
