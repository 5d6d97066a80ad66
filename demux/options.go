package demux

import (
	"log/slog"
	"time"

	"github.com/muxrpc/muxrpc/internal/core"
)

// DefaultMaxInFlight bounds the requests queued or running at once when
// MaxInFlight is not given (or when Workers asks for more goroutines, the
// number of workers).
const DefaultMaxInFlight = 1024

// Option configures a DeMux, a Server, or the serving half of a Mux. It is
// the same type as mux.Option, so options of either package can be mixed.
type Option = core.Option

// Handle makes a connection serve h: given to mux.New, mux.Dial or
// mux.Start, it gives the Mux a serving half, so that the peer can call
// this side on the same stream (callbacks, server push). New and NewServer
// take their handler as an argument instead.
func Handle(h Handler) Option {
	return func(c *core.Config) {
		c.Serve = func(conn *core.Conn, cfg *core.Config) core.Server { return newServing(conn, h, cfg) }
	}
}

// Workers sets how requests run. n > 0 runs them on at most n goroutines
// that take requests in the serving order (the package doc: by priority,
// then in the order they arrived), so at most n handlers run at once, and
// Workers(1) handles one request at a time, in arrival order among
// requests of one priority.
// The goroutines are started as requests need them and kept until the
// connection ends. n <= 0, the default, runs each request as if on a
// goroutine of its own (still bounded by MaxInFlight): no handler waits for
// another to return, however long that one blocks. Either way requests
// wait in one queue; by default another goroutine is woken whenever one
// takes a request and leaves others waiting, so a busy connection with
// quick handlers runs on a few goroutines instead of waking one per
// request, and a goroutine that finds the queue empty waits a few seconds
// for more work before it exits.
//
// A handler that calls back its caller (see mux.FromContext) holds its
// goroutine while it waits: with Workers(n), n nested calls of one chain
// into this side fill every worker, and a further request waits for one of
// them, so a chain of calls back and forth that arrives at this side more
// than n times waits until its contexts end.
func Workers(n int) Option {
	return func(c *core.Config) { c.Workers = max(n, 0) }
}

// MaxInFlight bounds the requests, notifications included, that are queued
// or running at once. Requests that arrive past the bound are held, in
// arrival order, and queued as handlers finish; a request that would take
// the held ones past 1 MiB (payloads and method names) is refused at once
// with CodeOverloaded (a notification is dropped), so the caller knows it
// did not run. The DeMux never stops reading the stream to push back: a
// reader that waited for a handler would also stop the replies that
// handler's own calls back to the client wait for. n <= 0 means
// DefaultMaxInFlight, or the number of workers if that is larger.
func MaxInFlight(n int) Option {
	return func(c *core.Config) { c.MaxInFlight = n }
}

// MaxFrameSize sets the largest frame the DeMux accepts or sends, counted
// as the frame's length field counts it. Zero or negative means the
// default, 16 MiB. A larger request ends the stream (the length is checked
// before anything is allocated); a larger result is answered with
// CodeInternal instead. Use the same limit on both sides.
func MaxFrameSize(n int) Option {
	return func(c *core.Config) { c.Channel.MaxFrameSize = n }
}

// Logger sets where the DeMux reports, at debug level, stream failures,
// errors of notification handlers, which have nobody to return them to,
// and requests it refused; and, at error level, handlers' panics with the
// method and the stack. Nil, the default, means silence.
func Logger(l *slog.Logger) Option {
	return func(c *core.Config) { c.Channel.Logger = l }
}

// MaxConns bounds the connections a Server serves at once. A connection
// accepted while n are being served is closed at once, without a preface
// or a reply, so its client's calls fail with an error wrapping
// mux.ErrClosed; the connections being served are not affected, and once
// one of them ends a new one is served again. n <= 0, the default, means
// no limit. A DeMux made with New ignores it.
func MaxConns(n int) Option {
	return func(c *core.Config) { c.MaxConns = n }
}

// Keepalive makes the serving side check that its client is alive: after
// interval with nothing from the client it sends a PING, and if nothing at
// all arrives within timeout of that PING leaving (while its own writes
// make no progress either), the stream ends with an error wrapping
// channel.ErrUnresponsive and the connection's handlers are canceled.
// Zero or negative values turn it off. The client must answer PING
// (PROTOCOL.md), as muxrpc's does. NewServer turns it on with 30 s and
// 10 s; New leaves it off. With a dialect that has no PING
// (msgpackrpc.Dialect), it does nothing.
func Keepalive(interval, timeout time.Duration) Option {
	return func(c *core.Config) {
		c.Channel.KeepaliveInterval, c.Channel.KeepaliveTimeout = interval, timeout
	}
}

// AuthKey makes the serving side require its client to prove, and prove to
// it, that both hold key, right after the prefaces and before any request
// is read (a mutual HMAC-SHA256 challenge, PROTOCOL.md). A client with
// another key or none is refused: the stream ends with an error wrapping
// channel.ErrAuth, and no handler runs. An empty key turns authentication
// off, the default.
func AuthKey(key []byte) Option {
	return func(c *core.Config) { c.Channel.AuthKey = key }
}

// HandshakeTimeout bounds the time a connection may take, from the start of
// Serve, until the client's preface (and its authentication, when the
// connection has an AuthKey) has fully arrived; a client that sends
// nothing, or half a preface, is disconnected when it passes. Zero or
// negative means no bound. A Server's default is 10 seconds (NewServer
// applies HandshakeTimeout(10*time.Second) before the options it is given,
// so theirs win); New's default is no bound.
func HandshakeTimeout(d time.Duration) Option {
	return func(c *core.Config) { c.Channel.HandshakeTimeout = d }
}

// FrameTimeout bounds the time a frame may take to arrive once its header
// has: d, plus one second for every channel.FrameRate bytes of it that have
// arrived, so a large request on a slow but moving link arrives while a
// client that starts a frame and stalls, or trickles it, is disconnected
// within about d. It does not bound the time between frames: an idle
// connection is IdleTimeout's concern. Zero or negative means no bound. A
// Server's default is 30 seconds; New's default is no bound.
func FrameTimeout(d time.Duration) Option {
	return func(c *core.Config) { c.Channel.FrameTimeout = d }
}

// IdleTimeout shuts down a connection that has had no request for d and
// has none in flight, as DeMux.Shutdown does: the client is sent a GOAWAY
// (its new calls fail with an error wrapping mux.ErrClosed and a
// *frame.RemoteError of code CodeShutdown), and the stream is closed once
// the GOAWAY is written; Serve then returns nil. A request that crosses the
// GOAWAY on the wire is not run: it is refused with CodeShutdown, or meets
// the closed stream. A request running longer than d keeps the
// connection open; the idle time is counted once it has finished, to a
// precision of d. Only requests this side serves count: on a Mux that
// serves (Handle), the Mux's own calls do not keep the connection open, and
// fail when it closes. Zero or negative, the default for both New and a
// Server, means no idle timeout.
func IdleTimeout(d time.Duration) Option {
	return func(c *core.Config) { c.IdleTimeout = d }
}

// Defaults of the server-wide bounds.
const (
	defaultMaxServerInFlight = 16 * DefaultMaxInFlight
	defaultMaxServerHeld     = 64 << 20
)

// MaxServerInFlight bounds the requests, notifications included, that all
// of a Server's connections together have accepted and not yet finished:
// queued, running, or held past a connection's MaxInFlight. A request that
// arrives past the bound is refused at once with CodeOverloaded, with a
// message that names MaxServerInFlight (a notification is dropped), as
// MaxInFlight's held requests are; the connection goes on serving. n <= 0
// means the default, 16 × DefaultMaxInFlight (16384). A DeMux made with New
// has no server-wide bound and ignores it.
func MaxServerInFlight(n int) Option {
	return func(c *core.Config) { c.MaxServerInFlight = n }
}

// MaxServerHeld bounds the bytes of requests (payloads and method names,
// as for MaxInFlight) that all of a Server's connections together hold past
// their MaxInFlight. A request that would take them past the bound is
// refused at once with CodeOverloaded, with a message that names
// MaxServerHeld (a notification is dropped); a single request of any size
// is held when none is. Each connection also holds at most 1 MiB of its
// own. bytes <= 0 means the default, 64 MiB. A DeMux made with New ignores
// it.
func MaxServerHeld(bytes int) Option {
	return func(c *core.Config) { c.MaxServerHeld = bytes }
}

// TCPUserTimeout sets TCP_USER_TIMEOUT, on Linux, on a connection that is a
// *net.TCPConn, or that wraps one and returns it from a NetConn method as
// *tls.Conn does: written data that the peer has not acknowledged within d
// fails the connection, so a peer that vanished without a word (unplugged,
// powered off, behind a NAT that forgot it) is given up in d instead of
// the system's retransmission limit, about 15 minutes. It does not bound a
// peer that acknowledges but sends nothing. On other systems, and for other
// streams, it does nothing.
// Zero or negative leaves the system's default. A Server's default is 30
// seconds; New's default leaves the system's.
func TCPUserTimeout(d time.Duration) Option {
	return func(c *core.Config) { c.TCPUserTimeout = d }
}

// Defaults that NewServer applies before the options it is given.
const (
	serverHandshakeTimeout = 10 * time.Second
	serverFrameTimeout     = 30 * time.Second
	serverTCPUserTimeout   = 30 * time.Second
	// The keepalive of mux.Dial: a PING after 30 s of silence, 10 s to
	// answer, as yamux does.
	serverKeepaliveInterval = 30 * time.Second
	serverKeepaliveTimeout  = 10 * time.Second
)

// serverDefaults are the options NewServer applies before the user's.
func serverDefaults() []Option {
	return []Option{
		HandshakeTimeout(serverHandshakeTimeout),
		FrameTimeout(serverFrameTimeout),
		TCPUserTimeout(serverTCPUserTimeout),
		Keepalive(serverKeepaliveInterval, serverKeepaliveTimeout),
	}
}

// ChunkSize sets the largest body a frame is written with, as
// mux.ChunkSize does: a response or stream item longer than n bytes leaves
// split into chunks interleaved with the frames behind it (which grow
// while nothing else is written; see channel.Config.ChunkSize).
func ChunkSize(n int) Option {
	return func(c *core.Config) { c.Channel.ChunkSize = n }
}

// QueueDelay paces the chunks of large responses and stream items as
// mux.QueueDelay does (allowing less while small frames share the
// stream): negative turns the pacing off.
func QueueDelay(d time.Duration) Option {
	return func(c *core.Config) { c.Channel.QueueDelay = d }
}
