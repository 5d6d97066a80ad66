package demux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/core"
	"github.com/muxrpc/muxrpc/mux"
)

// gatedRouter serves echo, and block, which announces itself on started
// (if it has room) and returns once gate is closed or its context ends.
func gatedRouter(started chan<- struct{}, gate <-chan struct{}) *Router {
	r := NewRouter()
	r.Handle("echo", Func(func(_ context.Context, s string) (string, error) { return s, nil }))
	r.Handle("block", HandlerFunc(func(ctx context.Context, _ *Request) (any, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-gate:
			return "released", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	return r
}

// serveLocal serves s on a fresh TCP port of 127.0.0.1 until the test
// ends, and returns the address.
func serveLocal(t *testing.T, s *Server) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-served:
			assert.ErrorIs(t, err, ErrServerClosed)
		case <-time.After(waitLimit):
			t.Errorf("Serve did not return within %v of Close", waitLimit)
		}
	})
	return ln.Addr()
}

// dialLocal connects a Mux to addr; the test's end closes it.
func dialLocal(t *testing.T, addr net.Addr) *mux.Mux {
	conn, err := net.Dial(addr.Network(), addr.String())
	require.NoError(t, err)
	m := mux.New(conn)
	t.Cleanup(func() { m.Close() })
	return m
}

// waitStarted waits for n handlers to announce their start.
func waitStarted(t *testing.T, started <-chan struct{}, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-started:
		case <-time.After(waitLimit):
			t.Fatalf("%d of %d handlers started within %v", i, n, waitLimit)
		}
	}
}

// finished waits for call to end and returns its error.
func finished(t *testing.T, call *mux.Call) error {
	t.Helper()
	select {
	case <-call.Done():
		return call.Err()
	case <-time.After(waitLimit):
		t.Fatalf("a call did not end within %v", waitLimit)
		return nil
	}
}

// requireOverloaded checks that err is a CodeOverloaded refusal that names
// bound.
func requireOverloaded(t *testing.T, err error, bound string) {
	t.Helper()
	var re *frame.RemoteError
	require.True(t, errors.As(err, &re), "want a RemoteError, got %v", err)
	assert.Equal(t, frame.CodeOverloaded, re.Code)
	assert.Contains(t, re.Message, bound)
}

// budgetIsEmpty reports whether nothing of b is taken.
func budgetIsEmpty(b *budget) func() bool {
	return func() bool { return b.inFlight.Load() == 0 && b.held.Load() == 0 }
}

// echoWorks checks that a new call on m is served.
func echoWorks(t *testing.T, m *mux.Mux, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var out string
	require.NoError(t, m.Call(ctx, "echo", s, &out))
	require.Equal(t, s, out)
}

func TestMaxServerInFlightBoundsAllConnections(t *testing.T) {
	started, gate := make(chan struct{}, 8), make(chan struct{})
	s := NewServer(gatedRouter(started, gate), MaxInFlight(2), MaxServerInFlight(3))
	addr := serveLocal(t, s)
	a, b := dialLocal(t, addr), dialLocal(t, addr)
	echoWorks(t, a, "a before")
	echoWorks(t, b, "b before")
	require.Condition(t, budgetIsEmpty(s.budget), "budget taken before any call is in flight")

	ctx := boundedContext(t)
	calls := []*mux.Call{
		a.Go(ctx, "block", nil, nil),
		a.Go(ctx, "block", nil, nil),
		b.Go(ctx, "block", nil, nil),
	}
	waitStarted(t, started, 3)
	assert.Equal(t, int64(3), s.budget.inFlight.Load())

	// b is under its own MaxInFlight, and a would hold the request: both
	// are refused at once, by the server-wide bound.
	requireOverloaded(t, b.Call(ctx, "echo", "b past", nil), "MaxServerInFlight")
	requireOverloaded(t, a.Call(ctx, "echo", "a past", nil), "MaxServerInFlight")
	assert.Equal(t, int64(3), s.budget.inFlight.Load(), "refusals took a share")

	close(gate)
	for _, c := range calls {
		require.NoError(t, finished(t, c))
	}
	waitFor(t, "the budget is empty once the calls have finished", budgetIsEmpty(s.budget))
	echoWorks(t, a, "a after")
	echoWorks(t, b, "b after")
}

func TestMaxServerHeldBoundsAllConnections(t *testing.T) {
	started, gate := make(chan struct{}, 8), make(chan struct{})
	s := NewServer(gatedRouter(started, gate), MaxInFlight(1), MaxServerHeld(1000))
	addr := serveLocal(t, s)
	a, b := dialLocal(t, addr), dialLocal(t, addr)

	ctx := boundedContext(t)
	calls := []*mux.Call{a.Go(ctx, "block", nil, nil), b.Go(ctx, "block", nil, nil)}
	waitStarted(t, started, 2)
	payload := string(bytes.Repeat([]byte{'x'}, 600))
	calls = append(calls, a.Go(ctx, "block", payload, nil)) // held on a: past its MaxInFlight
	waitFor(t, "a request held", func() bool { return s.budget.held.Load() > 0 })
	held := s.budget.held.Load()
	assert.Greater(t, held, int64(600))

	// b holds nothing of its own, far below its 1 MiB, but the server
	// holds a's request: together past MaxServerHeld.
	requireOverloaded(t, b.Call(ctx, "echo", payload, nil), "MaxServerHeld")
	assert.Equal(t, held, s.budget.held.Load(), "the refusal took a share")
	assert.Equal(t, int64(3), s.budget.inFlight.Load(), "the refusal is not in flight")
	// A small one still fits.
	calls = append(calls, b.Go(ctx, "echo", "small", nil))
	waitFor(t, "a second request held", func() bool { return s.budget.held.Load() > held })

	close(gate)
	for _, c := range calls {
		require.NoError(t, finished(t, c))
	}
	waitFor(t, "the budget is empty once the calls have finished", budgetIsEmpty(s.budget))
	echoWorks(t, a, "a after")
	echoWorks(t, b, "b after")
}

func TestServerBudgetReturnsToZeroAsConnectionsComeAndGo(t *testing.T) {
	// Each round ten clients send two notifications and two calls, all of
	// which block: two run on each connection and two are held, and the
	// server-wide bound is full. Then each sends a notification and two
	// calls more, which are refused. Then the server closes four of the
	// connections: their held requests are dropped while their handlers,
	// canceled, linger. Two clients hang up, and the handlers are let go:
	// canceled ones return, the others finish, and the other clients hang
	// up once answered. Every path gives its share back: retire, Wait's
	// drop, refusals.
	const clients, closed, hungUp, serverMax = 10, 4, 2, 40
	type gates struct{ release, linger chan struct{} }
	var current atomic.Pointer[gates]
	r := NewRouter()
	r.Handle("block", HandlerFunc(func(ctx context.Context, _ *Request) (any, error) {
		g := current.Load()
		select {
		case <-g.release:
			return "released", nil
		case <-ctx.Done():
			<-g.linger
			return nil, ctx.Err()
		}
	}))
	s := NewServer(r, MaxInFlight(2), MaxServerInFlight(serverMax))
	addr := serveLocal(t, s)
	ctx := boundedContext(t)
	for round := range 3 {
		g := &gates{release: make(chan struct{}), linger: make(chan struct{})}
		current.Store(g)
		var once sync.Once
		letGo := func() { once.Do(func() { close(g.linger); close(g.release) }) }
		t.Cleanup(letGo) // if the round fails, before the Server is closed
		var muxes []*mux.Mux
		var conns []net.Conn
		var calls [][]*mux.Call
		for range clients {
			conn, err := net.Dial(addr.Network(), addr.String())
			require.NoError(t, err)
			m := mux.New(conn)
			t.Cleanup(func() { m.Close() })
			muxes, conns = append(muxes, m), append(conns, conn)
			var cs []*mux.Call
			for range 2 {
				require.NoError(t, m.Notify(ctx, "block", nil))
				cs = append(cs, m.Go(ctx, "block", nil, nil))
			}
			calls = append(calls, cs)
		}
		waitFor(t, fmt.Sprintf("round %d: %d requests in flight", round, serverMax), func() bool {
			return s.budget.inFlight.Load() == serverMax
		})
		for _, m := range muxes {
			first := m.Go(ctx, "block", nil, nil)
			require.NoError(t, m.Notify(ctx, "block", nil))
			// Frames of one connection are read in order: once the last
			// call is answered, the notification before it was dropped.
			last := m.Go(ctx, "block", nil, nil)
			requireOverloaded(t, finished(t, first), "MaxServerInFlight")
			requireOverloaded(t, finished(t, last), "MaxServerInFlight")
		}
		assert.Equal(t, int64(serverMax), s.budget.inFlight.Load(), "round %d: refusals took a share", round)
		held := s.budget.held.Load() // every Accept before the refusals has returned
		assert.Positive(t, held, "round %d: none held", round)

		// The server closes the first connections. Close waits for the
		// handlers, which linger, so it runs aside.
		closing := make(chan error, closed)
		for _, conn := range conns[:closed] {
			d := s.demuxOf(t, conn.LocalAddr())
			go func() { closing <- d.Close() }()
		}
		// Every connection holds as much, and no handler has returned, so
		// only Wait can have let go of their held requests; their running
		// ones still count.
		waitFor(t, fmt.Sprintf("round %d: the held requests of the closed connections dropped", round), func() bool {
			return s.budget.held.Load() == held*(clients-closed)/clients &&
				s.budget.inFlight.Load() == serverMax-2*closed
		})
		for _, m := range muxes[closed : closed+hungUp] {
			m.Close()
		}
		letGo()
		for range closed {
			select {
			case <-closing:
			case <-time.After(waitLimit):
				t.Fatalf("round %d: DeMux.Close did not return within %v of the handlers' return", round, waitLimit)
			}
		}
		for c, cs := range calls {
			for _, call := range cs {
				err := finished(t, call)
				if c < closed+hungUp {
					assert.ErrorIs(t, err, mux.ErrClosed, "round %d: a call on a connection closed", round)
				} else {
					assert.NoError(t, err, "round %d: a released call", round)
				}
			}
		}
		for _, m := range muxes[closed+hungUp:] {
			m.Close()
		}
		waitFor(t, fmt.Sprintf("round %d: the budget is empty", round), budgetIsEmpty(s.budget))
		waitFor(t, fmt.Sprintf("round %d: every connection has ended", round), func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.conns) == 0
		})
	}
}

// demuxOf returns the DeMux that serves the client at addr.
func (s *Server) demuxOf(t *testing.T, addr net.Addr) *DeMux {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := range s.conns {
		if d.conn.Transport().(net.Conn).RemoteAddr().String() == addr.String() {
			return d
		}
	}
	t.Fatalf("no connection from %v", addr)
	return nil
}

func TestServerDefaultsAndTheUsersOptions(t *testing.T) {
	cfg := core.NewConfig(NewServer(echoRouter()).opts)
	assert.Equal(t, 10*time.Second, cfg.Channel.HandshakeTimeout)
	assert.Equal(t, 30*time.Second, cfg.Channel.FrameTimeout)
	assert.Equal(t, 30*time.Second, cfg.TCPUserTimeout)
	assert.Zero(t, cfg.IdleTimeout)
	b := NewServer(echoRouter()).budget
	assert.Equal(t, int64(16384), b.maxInFlight)
	assert.Equal(t, int64(64<<20), b.maxHeld)

	s := NewServer(echoRouter(), HandshakeTimeout(0), FrameTimeout(time.Second), TCPUserTimeout(-1),
		IdleTimeout(time.Minute), MaxServerInFlight(5), MaxServerHeld(7))
	cfg = core.NewConfig(s.opts)
	assert.Zero(t, cfg.Channel.HandshakeTimeout, "the user's options win")
	assert.Equal(t, time.Second, cfg.Channel.FrameTimeout)
	assert.Equal(t, time.Duration(-1), cfg.TCPUserTimeout)
	assert.Equal(t, time.Minute, cfg.IdleTimeout)
	assert.Equal(t, int64(5), s.budget.maxInFlight)
	assert.Equal(t, int64(7), s.budget.maxHeld)

	// New has none of these: no bound, and no server-wide budget.
	client, server, err := channel.Pipe()
	require.NoError(t, err)
	defer client.Close()
	d := New(server, echoRouter(), MaxServerInFlight(1))
	defer d.Close()
	assert.Nil(t, d.s.budget)
	assert.Zero(t, d.s.idleAfter)
	assert.Zero(t, core.NewConfig(nil).Channel.HandshakeTimeout)
}

// echoRouter serves echo.
func echoRouter() *Router { return gatedRouter(nil, nil) }
