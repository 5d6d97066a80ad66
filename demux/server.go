package demux

import (
	"github.com/muxrpc/muxrpc/internal/core"

	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Server.Serve after a call to Shutdown or
// Close.
var ErrServerClosed = errors.New("demux: Server closed")

// Server accepts connections on listeners and serves each with a DeMux of
// its own, until Shutdown or Close. Its methods are safe for concurrent
// use. Make one with NewServer; the zero Server is not usable.
type Server struct {
	handler  Handler
	opts     []Option // the defaults, then NewServer's options
	maxConns int
	budget   *budget // shared by every connection
	log      *slog.Logger

	// wg counts the goroutines that serve connections, one per entry of
	// conns. It is added to only under mu before done is closed, so
	// Shutdown and Close wait for it once they have closed done.
	wg sync.WaitGroup

	mu        sync.Mutex
	done      chan struct{}                   // closed, under mu, by Shutdown or Close
	listeners map[*onceCloseListener]struct{} // those Serve accepts on; guarded by mu
	conns     map[*DeMux]struct{}             // connections being served; guarded by mu
}

// NewServer returns a Server that serves h on every connection it
// accepts. Each connection gets a DeMux made by New with opts, so the
// options tune every connection alike; MaxConns bounds how many are served
// at once, MaxServerInFlight and MaxServerHeld bound the requests of all of
// them together, and Logger also receives the Server's own debug records
// about failed accepts and refused connections.
//
// A Server is meant to face clients it does not trust, so it bounds by
// default what New leaves open: NewServer applies
//
//	HandshakeTimeout(10*time.Second), FrameTimeout(30*time.Second), TCPUserTimeout(30*time.Second)
//
// before opts, which may change them (zero turns each off).
func NewServer(h Handler, opts ...Option) *Server {
	opts = append(serverDefaults(), opts...)
	cfg := core.NewConfig(opts)
	log := cfg.Channel.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		handler:   h,
		opts:      opts, // a new slice: append copied the caller's
		maxConns:  cfg.MaxConns,
		budget:    newBudget(&cfg),
		log:       log,
		done:      make(chan struct{}),
		listeners: make(map[*onceCloseListener]struct{}),
		conns:     make(map[*DeMux]struct{}),
	}
}

// Serve accepts connections on ln and serves each on a goroutine of its
// own, with a DeMux, until ln fails or the Server is shut down or closed.
// A connection accepted while MaxConns connections are being served is
// closed at once without being served.
//
// Accept errors that may pass (timeouts, and ECONNABORTED, EMFILE and
// ENFILE) are retried after a pause that starts at 5ms and doubles up to
// one second, as net/http does; they are logged at debug level to the
// Logger option, if any.
//
// Serve may be called with several listeners at once. It always returns a
// non-nil error and closes ln: ErrServerClosed after Shutdown or Close
// (also when called after them), otherwise the error Accept returned.
// Connections it accepted are served on after it returns, until they end
// or the Server is shut down or closed.
func (s *Server) Serve(ln net.Listener) error {
	l := &onceCloseListener{Listener: ln}
	defer l.Close()
	if !s.trackListener(l, true) {
		return ErrServerClosed
	}
	defer s.trackListener(l, false)

	var delay time.Duration // how long to wait after a failed accept
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return ErrServerClosed
			}
			if !temporary(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Debug("muxrpc server: accept failed; retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		if !s.serveConn(conn) {
			return ErrServerClosed
		}
	}
}

// serveConn starts serving conn on a goroutine of its own, or closes it if
// MaxConns connections are being served. It reports false, having closed
// conn, if the Server is shutting down.
func (s *Server) serveConn(conn net.Conn) bool {
	s.mu.Lock()
	if s.shuttingDown() {
		s.mu.Unlock()
		conn.Close()
		return false
	}
	if s.maxConns > 0 && len(s.conns) >= s.maxConns {
		s.mu.Unlock()
		s.log.Debug("muxrpc server: connection refused: MaxConns reached", "remote", conn.RemoteAddr(), "max", s.maxConns)
		conn.Close()
		return true
	}
	d := newDeMux(conn, s.handler, s.opts, withBudget(s.budget))
	s.conns[d] = struct{}{}
	s.wg.Add(1) // before done is closed, which is before any Wait
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		d.Serve() // the DeMux has logged why the stream ended
		s.mu.Lock()
		delete(s.conns, d)
		s.mu.Unlock()
	}()
	return true
}

// Shutdown stops the Server gracefully. First it closes every listener, so
// that Serve returns ErrServerClosed and no connection is accepted any
// more. Then it shuts down every connection at once, as DeMux.Shutdown
// does: each client is told to send no new requests, the requests in
// flight run to the end without their contexts being canceled, their
// replies are written, and the connection is closed. Shutdown returns when
// every connection has been closed and every goroutine the Server started
// to serve one has exited.
//
// If ctx ends first, Shutdown closes every remaining connection as Close
// does, waits for the same goroutines, and returns ctx's error. Otherwise
// it returns the error of closing the listeners, if any. A handler that
// ignores the cancellation of its context holds Shutdown up. Shutdown does
// not wait for Serve to return, and after Shutdown the Server cannot be
// used again; Shutdown and Close may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	conns, lnErr := s.stop()
	errs := make(chan error, len(conns))
	for _, d := range conns {
		go func() { errs <- d.Shutdown(ctx) }()
	}
	var err error
	for range conns {
		if e := <-errs; e != nil && errors.Is(e, ctx.Err()) {
			err = ctx.Err()
		}
	}
	s.wg.Wait()
	if err != nil {
		return err
	}
	return lnErr
}

// Close stops the Server at once: it closes every listener, so that Serve
// returns ErrServerClosed, and closes every connection as DeMux.Close
// does, canceling the contexts of the handlers still running and dropping
// their replies; callers in flight see their calls fail with an error
// wrapping mux.ErrClosed. Close waits for the handlers to return and for
// every goroutine the Server started to exit, and returns the error of
// closing the listeners, if any. Close may be called more than once, and
// during Shutdown, which it cuts short.
func (s *Server) Close() error {
	conns, lnErr := s.stop()
	var wg sync.WaitGroup
	for _, d := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Close()
		}()
	}
	wg.Wait()
	s.wg.Wait()
	return lnErr
}

// stop marks the Server as shutting down, closes the listeners and
// returns the connections being served and the first error of closing a
// listener.
func (s *Server) stop() ([]*DeMux, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shuttingDown() {
		close(s.done)
	}
	var err error
	for l := range s.listeners {
		if e := l.Close(); e != nil && err == nil {
			err = e
		}
		delete(s.listeners, l)
	}
	conns := make([]*DeMux, 0, len(s.conns))
	for d := range s.conns {
		conns = append(conns, d)
	}
	return conns, err
}

// trackListener adds l to the listeners that Shutdown and Close close, or
// removes it. It reports false, adding nothing, if the Server is shutting
// down.
func (s *Server) trackListener(l *onceCloseListener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, l)
		return true
	}
	if s.shuttingDown() {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

// shuttingDown reports whether Shutdown or Close has been called.
func (s *Server) shuttingDown() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// temporary reports whether an accept error may pass, so that accepting
// again after a pause is worth it: a timeout, a connection aborted before
// it was accepted, or too many open files.
func temporary(err error) bool {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// onceCloseListener closes its Listener once, however often Close is
// called: Serve and Shutdown both close it.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
