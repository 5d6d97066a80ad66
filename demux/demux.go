package demux

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/internal/core"
	"github.com/muxrpc/muxrpc/internal/sockopt"
)

// ErrServing is returned by a second call to Serve.
var ErrServing = errors.New("demux: Serve called twice")

// DeMux serves the requests of one stream. Its methods are safe for
// concurrent use. Make one with New; the zero DeMux is not usable.
//
// Handlers can call the client back on the same stream: mux.FromContext
// gives the Mux of the connection a handler's ctx belongs to.
type DeMux struct {
	conn *core.Conn
	s    *serving
}

// New returns a DeMux that will serve h over rwc once Serve is called. The
// DeMux owns rwc from now on; Close and Shutdown close it. opts may include
// options of package mux (they are the same type), such as mux.Logger.
func New(rwc io.ReadWriteCloser, h Handler, opts ...Option) *DeMux {
	return newDeMux(rwc, h, opts)
}

// newDeMux is New, with options applied after Handle: NewServer's share
// of its budget.
func newDeMux(rwc io.ReadWriteCloser, h Handler, opts []Option, after ...Option) *DeMux {
	cfg := core.NewConfig(opts)
	Handle(h)(&cfg)
	cfg.Channel.Accepted = true // the server side of authentication
	for _, o := range after {
		o(&cfg)
	}
	conn := core.New(rwc, cfg)
	if nc, ok := rwc.(net.Conn); ok && cfg.TCPUserTimeout > 0 {
		sockopt.SetUserTimeout(nc, cfg.TCPUserTimeout)
	}
	return &DeMux{conn: conn, s: conn.Server().(*serving)}
}

// Serve reads and serves requests until the stream ends. It returns nil
// after Close or Shutdown, or when IdleTimeout has shut the DeMux down, and
// otherwise the reason the stream ended: an error wrapping io.EOF when the
// client closed it, an error wrapping frame.ErrBadPreface for a peer that
// is not a muxrpc client, frame.ErrMalformed or frame.ErrTooLarge for a
// protocol violation, channel.ErrTimeout for a client too slow over its
// preface or a frame (HandshakeTimeout, FrameTimeout), or the I/O error.
//
// When the client stops sending but can still read (it closed only its
// writing side, as TCP's CloseWrite does, or as a parent does by closing a
// child's stdin), the requests already read are finished and answered
// before Serve returns io.EOF. Otherwise, before returning, Serve cancels
// the contexts of handlers still running and waits for them. Serve may be
// called once.
func (d *DeMux) Serve() error {
	err := d.conn.Serve()
	switch {
	case errors.Is(err, core.ErrServing):
		return ErrServing
	case errors.Is(err, channel.ErrClosed):
		return nil
	}
	return err
}

// Shutdown stops the DeMux gracefully: it tells the client to send no new
// requests (a GOAWAY frame, after which the client's new calls fail at
// once), answers requests that arrive anyway with CodeShutdown, waits for
// the requests already accepted to finish and their replies to be written,
// then closes the stream. Handlers' contexts are not canceled while they
// finish.
//
// If ctx ends first, Shutdown closes the DeMux as Close does and returns
// ctx's error. Shutdown does not wait for Serve to be called; it waits for
// Serve's goroutines if it was.
func (d *DeMux) Shutdown(ctx context.Context) error {
	if !d.conn.Started() { // nothing was read, so nothing is owed
		return d.Close()
	}
	err := d.s.shutdown(ctx)
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	if errors.Is(err, channel.ErrClosed) {
		err = nil // already closed: nothing was left to deliver
	}
	return err
}

// Close stops the DeMux at once: it cancels the contexts of running
// handlers, closes the stream, dropping replies not yet written, and waits
// for Serve's goroutines, handlers included, to exit. It returns the error
// of closing the stream, if any, and is safe to call more than once.
func (d *DeMux) Close() error {
	return d.conn.Close()
}
