// Package systems adapts each RPC system the peer benchmark compares to one
// small interface: start a client and a server over a given pair of
// connected ends, and echo a byte slice.
package systems

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Caller makes echo calls. Echo is safe for concurrent use.
type Caller interface {
	// Echo sends in to the server's echo method and returns what came
	// back. It may reuse buf's capacity for the reply, where the system's
	// codec allows; the reply is valid until the next Echo with the same
	// buf. in must not be modified until Echo returns.
	Echo(ctx context.Context, in, buf []byte) ([]byte, error)
}

// System is one RPC system under test.
type System interface {
	// Name is the system's short name in flags and reports.
	Name() string
	// Note says how the system is set up, for the report.
	Note() string
	// Start serves echo on server and returns a Caller over client. The
	// system owns both ends from then on. Close on the returned Closer
	// shuts the client and the server down and waits for every goroutine
	// that the system lets it wait for.
	Start(client, server net.Conn) (Caller, io.Closer, error)
}

// All returns every system, in report order.
func All() []System {
	return []System{
		Raw{},
		Raw{Yield: true},
		Muxrpc{},
		Muxrpc{Typed: true},
		Muxrpc{Workers: 64},
		Muxrpc{Keepalive: true},
		NetRPC{},
		GRPC{},
		Gorpc{},
		Arpc{},
		DRPC{},
	}
}

// Flow returns the systems of the head-of-line benchmark (holbench), in
// report order: the raw framed echo, muxrpc with its default chunk size
// (16 KiB), with 4 and 64 KiB chunks and with its small calls sent
// urgent, and gRPC.
func Flow() []System {
	return []System{
		Raw{},
		Muxrpc{},
		Muxrpc{ChunkSize: 4 << 10},
		Muxrpc{ChunkSize: 64 << 10},
		Muxrpc{Urgent: true},
		Muxrpc{NoPace: true},
		Muxrpc{QueueDelay: time.Millisecond},
		Muxrpc{QueueDelay: 5 * time.Millisecond},
		GRPC{},
	}
}

// ByName returns the system with the given name, among All and Flow.
func ByName(name string) (System, bool) {
	for _, s := range append(All(), Flow()...) {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// closerFunc makes a function an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// oneConnListener is a net.Listener that hands out one pre-made conn and
// then blocks in Accept until it is closed, for servers that only know how
// to serve a listener.
type oneConnListener struct {
	mu     sync.Mutex
	conn   net.Conn
	closed chan struct{}
	once   sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	return &oneConnListener{conn: c, closed: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr() }

func (l *oneConnListener) addr() net.Addr {
	return fixedAddr("one-conn")
}

type fixedAddr string

func (a fixedAddr) Network() string { return "pre-made" }
func (a fixedAddr) String() string  { return string(a) }

// dialOnce returns a dial function that returns c the first time and an
// error after that, so that a client that redials after the connection
// dies does not get a second connection.
func dialOnce(c net.Conn) func() (net.Conn, error) {
	var mu sync.Mutex
	return func() (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if c == nil {
			return nil, errors.New("systems: the one connection was already used")
		}
		conn := c
		c = nil
		return conn, nil
	}
}
