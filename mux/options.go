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

// Keepalive makes the Mux check that its peer is alive without a call:
// after interval with nothing from the peer it sends a PING, and if
// nothing at all arrives within timeout of that PING leaving (while this
// side's own writes make no progress either), the stream ends: every call
// waiting fails with an error for which errors.Is(err, ErrClosed) and
// errors.Is(err, channel.ErrUnresponsive) hold, and Done is closed. A busy
// peer is not taken for dead: any byte from it is a sign of life, and it
// answers a PING from its reader, not behind its handlers. Zero or
// negative values turn keepalive off. The peer must answer PING
// (PROTOCOL.md), as muxrpc does since keepalive exists.
//
// Dial and Start turn it on with DefaultKeepaliveInterval and
// DefaultKeepaliveTimeout; New leaves it off, as the peer of a plain
// stream may be a program that does not speak keepalive. With a dialect
// that has no PING (msgpackrpc.Dialect), it does nothing.
func Keepalive(interval, timeout time.Duration) Option {
	return func(c *core.Config) {
		c.Channel.KeepaliveInterval, c.Channel.KeepaliveTimeout = interval, timeout
	}
}

// The keepalive that Dial and Start use unless told otherwise: a PING after
// 30 s of silence, and 10 s for a sign of life after it, as yamux does.
const (
	DefaultKeepaliveInterval = 30 * time.Second
	DefaultKeepaliveTimeout  = 10 * time.Second
)

// DefaultHandshakeTimeout is the HandshakeTimeout that Dial uses unless
// told otherwise.
const DefaultHandshakeTimeout = 10 * time.Second

// HandshakeTimeout bounds the time from the start of the Mux until the
// peer's preface (and its proof, with AuthKey) has fully arrived: a peer
// that accepts the connection and says nothing, or half a preface, ends
// the stream when it passes, and every call waiting fails with an error
// for which errors.Is(err, ErrClosed) and errors.Is(err,
// channel.ErrTimeout) hold. Keepalive does not cover that time, since a
// peer that has not sent its preface is not known to answer PINGs. Zero
// or negative means no bound. Dial applies
// HandshakeTimeout(DefaultHandshakeTimeout) before the options it is
// given; New and Start leave it unbounded, as a child process may take a
// while to start.
func HandshakeTimeout(d time.Duration) Option {
	return func(c *core.Config) { c.Channel.HandshakeTimeout = d }
}

// AuthKey makes the Mux prove to its peer, and require the peer to prove,
// that both hold key, right after the prefaces and before any call leaves
// (a mutual HMAC-SHA256 challenge, PROTOCOL.md). If the peer holds another
// key or none, the stream ends and calls fail with an error for which
// errors.Is(err, channel.ErrAuth) holds, and ErrNotSent too: no request
// left. The Mux proves the key in the role of the side that opened the
// stream, so its peer must be a demux.DeMux or a demux.Server, which take
// the other role: two Muxes with keys fail the handshake. An empty key
// turns authentication off, the default. Keep the key
// secret and long (32 random bytes); it does not encrypt the stream: use
// TLS for that.
func AuthKey(key []byte) Option {
	return func(c *core.Config) { c.Channel.AuthKey = key }
}

// ChunkSize sets the largest body a frame is written with (default
// channel.DefaultChunkSize, 16 KiB): a longer request, response or stream
// item leaves split into chunks of this size, interleaved with the frames
// queued behind it, so that a small call waits for at most one chunk of a
// large one instead of all of it. Larger chunks cost fewer frames and
// writes per large message; smaller ones bound the wait more tightly.
// While nothing but large messages has been written for a while (4 MiB),
// a paced writer lets chunks grow with its window, up to 16 times this
// size (see channel.Config.ChunkSize). It is a demux option too.
func ChunkSize(n int) Option {
	return func(c *core.Config) { c.Channel.ChunkSize = n }
}

// QueueDelay sets how much the chunks of large messages may queue up in
// the network beyond the shortest round trip seen before the writer holds
// back further chunks (default channel.DefaultQueueDelay, 20 ms; negative
// turns the pacing off). The writer learns what the peer has read from
// PINGs it sends between chunks, so that on a slow link, or behind a
// relay that buffers, a small call waits for about two chunks of a large
// one rather than for everything queued ahead of it. While small frames
// share the stream with large messages, it allows less: four of the
// shortest round trips, at least 450 µs (see channel.Config.QueueDelay).
// It is a demux option too.
func QueueDelay(d time.Duration) Option {
	return func(c *core.Config) { c.Channel.QueueDelay = d }
}
