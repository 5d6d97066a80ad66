// Package core is the one connection under mux and demux: it owns a
// channel.Conn, runs its reader, and routes every frame by type to one of
// two halves. REQUEST, NOTIFY and CANCEL go to the serving half (a Server,
// built by demux), RESPONSE and ERROR to the calling half (a Caller, built
// by mux), GOAWAY to the calling half. Of the frames of streams, WANT, PUSH
// and CLOSE (sent by a caller) go to the serving half, YIELD and TAKE
// (sent by a server) to the calling half. A connection may have either half,
// or both, and the calling half may be attached after the connection has
// started, when a handler first calls back the peer.
//
// The reader never waits for a handler: a half takes each frame and
// returns at once, so replies to this side's calls keep arriving however
// busy the serving half is, and two ends that call each other cannot wedge
// each other's readers. What the reader itself answers (a refusal) takes
// the send queue's control slack (channel.Conn.SendControl) instead of
// waiting behind the replies queued there.
package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
)

// Server is the serving half of a connection, as the connection drives it.
// Accept and Cancel run on the reader goroutine and must not wait for a
// handler or for room in a full send queue (see channel.Conn.SendControl).
type Server interface {
	// Start is called once, when the reader starts, before any Accept.
	Start()
	// Accept takes over a REQUEST or NOTIFY frame. An error ends the
	// stream with that error.
	Accept(f *frame.Frame) error
	// Cancel handles a CANCEL frame.
	Cancel(xid uint64)
	// Stream takes over a WANT, PUSH or CLOSE frame, which belong to a
	// streaming request. An error ends the stream with that error.
	Stream(f *frame.Frame) error
	// Busy reports whether any accepted request is still to be answered.
	Busy() bool
	// Finish waits until every request accepted so far has been answered
	// (its reply queued for the writer) or until stop is closed. It is
	// called when the peer has stopped sending but can still read.
	Finish(stop <-chan struct{})
	// Stop cancels the contexts of the requests accepted so far and of any
	// accepted later. It may be called more than once, from any goroutine.
	Stop()
	// Wait is called once, after the reader has ended and Stop has been
	// called: it drops what was never started and waits for every
	// goroutine of the serving half.
	Wait()
}

// Caller is the calling half of a connection. Its methods run on the
// reader goroutine, except Fail, and must not block.
type Caller interface {
	// Reply takes over a RESPONSE or ERROR frame.
	Reply(f *frame.Frame)
	// Item takes over a YIELD or TAKE frame, which belong to a streaming
	// call. An error ends the stream with that error.
	Item(f *frame.Frame) error
	// GoAway tells the calling half that the peer takes no new requests.
	GoAway(reason *frame.RemoteError)
	// Fail tells the calling half that the stream is gone: no reply will
	// come. It is called once, possibly at once when the half is attached
	// to a connection that has already ended.
	Fail(err error)
}

// Conn is one connection: a channel.Conn, its reader, and the halves it
// routes frames to. Make one with New; the zero Conn is not usable.
type Conn struct {
	ch     *channel.Conn
	rwc    io.ReadWriteCloser
	server Server // nil if this side does not serve
	log    *slog.Logger
	done   chan struct{}

	caller atomic.Pointer[Caller] // set once; read by the reader per reply

	mu      sync.Mutex
	state   connState          // guarded by mu
	started bool               // Serve has been called; guarded by mu
	goAway  *frame.RemoteError // the peer's GOAWAY, for a caller attached later; guarded by mu
	failErr error              // why the connection ended, once done is closed; guarded by mu
	served  chan struct{}      // closed when Serve has returned
}

// connState is where a Conn is in its life.
type connState uint8

const (
	stateNew     connState = iota // Serve not called yet
	stateServing                  // Serve is reading
	stateEnded                    // Serve has ended, or Close came before it
)

// New makes a connection over rwc with cfg; nothing is read or written
// until Serve is called.
func New(rwc io.ReadWriteCloser, cfg Config) *Conn {
	chcfg := cfg.Channel
	if chcfg.Logger == nil {
		chcfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		rwc:    rwc,
		log:    chcfg.Logger,
		done:   make(chan struct{}),
		served: make(chan struct{}),
	}
	chcfg.HalfClose = cfg.Serve != nil
	chcfg.Accept = c.acceptType
	c.ch = channel.New(rwc, chcfg)
	if cfg.Serve != nil {
		c.server = cfg.Serve(c, &cfg)
	}
	return c
}

// Channel returns the framed stream, for sending.
func (c *Conn) Channel() *channel.Conn { return c.ch }

// Logger returns where the connection logs; never nil.
func (c *Conn) Logger() *slog.Logger { return c.log }

// Transport returns the stream the connection was made over.
func (c *Conn) Transport() io.ReadWriteCloser { return c.rwc }

// Server returns the serving half, or nil if this side does not serve.
func (c *Conn) Server() Server { return c.server }

// Done is closed once the connection has ended: the reader has stopped,
// every call has failed and the serving half's goroutines have exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is alive, then why it ended:
// channel.ErrClosed after Close, an error wrapping io.EOF when the peer
// hung up, or the protocol violation or I/O error that ended it.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failErr
}

// SetCaller attaches the calling half made by mk, unless one is attached
// already, and returns the one attached. A caller attached to a connection
// that has ended is failed at once; one attached after a GOAWAY is told.
func (c *Conn) SetCaller(mk func() Caller) Caller {
	if p := c.caller.Load(); p != nil {
		return *p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.caller.Load(); p != nil {
		return *p
	}
	caller := mk()
	c.caller.Store(&caller)
	if c.goAway != nil {
		caller.GoAway(c.goAway)
	}
	if c.failErr != nil {
		caller.Fail(c.failErr)
	}
	return caller
}

// Serve reads the stream and routes its frames until it ends, then fails
// every call, stops the serving half and waits for its goroutines. When
// the peer stops sending (a clean end of stream) while this side can still
// write, the serving half first finishes the requests it accepted and
// their replies are written. Serve returns why the connection ended (see
// Err); it returns channel.ErrClosed at once if Close came first, and an
// error if called twice.
func (c *Conn) Serve() error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrServing
	}
	c.started = true
	if c.state == stateEnded { // Close came first
		c.mu.Unlock()
		return channel.ErrClosed
	}
	c.state = stateServing
	c.mu.Unlock()
	defer close(c.served)
	if c.server != nil {
		c.server.Start()
	}
	err := c.ch.Serve(c.route)
	if errors.Is(err, io.EOF) && c.ch.Err() == nil {
		// The peer has stopped sending but may still read: no reply to a
		// call of ours can come, but the requests it sent are answered.
		c.failCalls(err)
		if c.server != nil {
			if c.server.Busy() && c.canWrite() {
				c.server.Finish(c.ch.Done())
			}
			c.ch.Drain(context.Background()) // replies already queued; returns early if the stream dies
		}
	}
	c.ch.Close()
	c.end(err)
	return err
}

// canWrite tells a peer that has stopped sending that this side takes no
// new requests (it cannot send any), and reports whether the stream still
// takes writes. A peer that closed the whole stream, not only its sending
// side, fails a write: a pipe or a unix socket at once; a TCP peer answers
// the first write with a reset, which fails the second. So the GOAWAY is
// sent twice, which PROTOCOL.md allows (a later GOAWAY is ignored), and a
// peer that is gone is told from one that still reads without waiting for
// a handler to finish.
func (c *Conn) canWrite() bool {
	for range 2 {
		c.ch.Send(context.Background(), &frame.Frame{Type: frame.TypeGoAway, Err: &frame.RemoteError{
			Code: frame.CodeShutdown, Message: "peer stopped sending",
		}})
		if c.ch.Drain(context.Background()) != nil {
			return false
		}
	}
	return c.ch.Err() == nil
}

// end fails the calling half with err, stops the serving half and waits
// for it, then marks the connection done.
func (c *Conn) end(err error) {
	c.failCalls(err)
	if c.server != nil {
		c.server.Stop()
		c.server.Wait()
	}
	c.mu.Lock()
	c.state = stateEnded
	c.mu.Unlock()
	close(c.done)
}

// failCalls records err as why the connection ended, if it is the first,
// and fails the calling half, if any, once.
func (c *Conn) failCalls(err error) {
	c.mu.Lock()
	if c.failErr != nil {
		c.mu.Unlock()
		return
	}
	c.failErr = err
	p := c.caller.Load()
	c.mu.Unlock()
	if p != nil {
		(*p).Fail(err)
	}
}

// Close closes the stream at once, dropping frames not yet written, cancels
// the contexts of running handlers and, if Serve was called, waits for it
// to return. It returns the error of closing the stream, if any, and is
// safe to call more than once.
func (c *Conn) Close() error {
	c.mu.Lock()
	state := c.state
	if state == stateNew {
		c.state = stateEnded
	}
	c.mu.Unlock()
	err := c.ch.Close() // first, so that canceled handlers' replies go nowhere
	switch state {
	case stateNew: // Serve will not run: end here instead
		c.end(channel.ErrClosed)
		close(c.served)
	default:
		if c.server != nil {
			c.server.Stop()
		}
		<-c.served
	}
	return err
}

// acceptType refuses, before its body is read, a reply to a side that has
// made no call: no RESPONSE or ERROR can be due to it.
func (c *Conn) acceptType(t frame.Type) error {
	if (t == frame.TypeResponse || t == frame.TypeError || t == frame.TypeYield || t == frame.TypeTake) && c.caller.Load() == nil {
		return fmt.Errorf("%w: a %v frame, but this side has made no call", frame.ErrMalformed, t)
	}
	return nil
}

// route runs on the reader goroutine for each frame that arrives.
func (c *Conn) route(f *frame.Frame) error {
	switch f.Type {
	case frame.TypeResponse, frame.TypeError:
		p := c.caller.Load()
		if p == nil {
			f.Release()
			return fmt.Errorf("%w: a %v frame, but this side has made no call", frame.ErrMalformed, f.Type)
		}
		(*p).Reply(f)
		return nil
	case frame.TypeRequest, frame.TypeNotify:
		if c.server == nil {
			return c.refuse(f)
		}
		return c.server.Accept(f)
	case frame.TypeCancel:
		if c.server != nil {
			c.server.Cancel(f.XID)
		}
		f.Release()
		return nil
	case frame.TypeYield, frame.TypeTake:
		p := c.caller.Load()
		if p == nil {
			f.Release()
			return fmt.Errorf("%w: a %v frame, but this side has made no call", frame.ErrMalformed, f.Type)
		}
		return (*p).Item(f)
	case frame.TypeWant, frame.TypePush, frame.TypeClose:
		if c.server == nil {
			f.Release()
			return fmt.Errorf("%w: a %v frame, but this side serves no requests", frame.ErrMalformed, f.Type)
		}
		return c.server.Stream(f)
	case frame.TypeGoAway:
		c.mu.Lock()
		if c.goAway == nil {
			c.goAway = f.Err
			if c.goAway == nil {
				c.goAway = &frame.RemoteError{Code: frame.CodeShutdown, Message: "peer is shutting down"}
			}
		}
		reason := c.goAway
		p := c.caller.Load()
		c.mu.Unlock()
		if p != nil {
			(*p).GoAway(reason)
		}
		f.Release()
		return nil
	}
	f.Release()
	return fmt.Errorf("%w: unexpected %v frame", frame.ErrMalformed, f.Type)
}

// refuse answers a request on a side that serves nothing: a REQUEST gets
// an ERROR with CodeNoMethod, a NOTIFY is dropped.
func (c *Conn) refuse(f *frame.Frame) error {
	xid, method, notify := f.XID, f.Method, f.Type == frame.TypeNotify
	f.Release()
	if notify {
		return nil
	}
	c.ch.SendControl(context.Background(), &frame.Frame{Type: frame.TypeError, XID: xid, Err: &frame.RemoteError{
		Code: frame.CodeNoMethod, Message: fmt.Sprintf("no method %q: this side serves no requests", method),
	}})
	return nil
}

// ErrServing is returned by a second call to Serve.
var ErrServing = errors.New("core: Serve called twice")

// Started reports whether Serve has been called.
func (c *Conn) Started() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// ctxKey is the context key under which a handler's context carries its
// connection.
type ctxKey struct{}

// Key is the context key whose value is the *Conn a request arrived on.
var Key any = ctxKey{}

// FromContext returns the connection a handler's ctx belongs to, or nil.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(Key).(*Conn)
	return c
}
