package demux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
)

// requireGoneAway checks that err is what a call gets after the server's
// GOAWAY: mux.ErrClosed wrapping a CodeShutdown RemoteError.
func requireGoneAway(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, mux.ErrClosed)
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeShutdown, re.Code)
}

func TestIdleTimeoutShutsDownAQuietConnection(t *testing.T) {
	const idle = 100 * time.Millisecond
	t.Run("Server", func(t *testing.T) {
		s := demux.NewServer(echo(), demux.IdleTimeout(idle))
		ln := listen(t, "tcp")
		startServer(t, s, ln)
		m := dial(t, ln.Addr())
		start := time.Now()
		hello(t, m, "one call, then quiet")
		recv(t, m.Done(), "the end of the idle connection")
		assert.GreaterOrEqual(t, time.Since(start), idle, "closed before it had been idle for IdleTimeout")
		requireGoneAway(t, callEcho(m, "after"))

		// The server serves on: a new connection is served, and ends the
		// same way.
		m = dial(t, ln.Addr())
		hello(t, m, "a new connection")
		recv(t, m.Done(), "the end of the second idle connection")
	})
	t.Run("DeMux", func(t *testing.T) {
		client, server, err := channel.Pipe()
		require.NoError(t, err)
		d := demux.New(server, echo(), demux.IdleTimeout(idle))
		served := make(chan error, 1)
		go func() { served <- d.Serve() }()
		m := mux.New(client)
		defer m.Close()
		start := time.Now()
		hello(t, m, "one call, then quiet")
		recv(t, m.Done(), "the end of the idle connection")
		assert.GreaterOrEqual(t, time.Since(start), idle)
		require.NoError(t, recv(t, served, "Serve's return"), "Serve returns nil, as after Shutdown")
		requireGoneAway(t, callEcho(m, "after"))
		require.NoError(t, d.Shutdown(rpctest.Context(t)), "Shutdown after the idle shutdown")
	})
	t.Run("no request at all", func(t *testing.T) {
		s := demux.NewServer(echo(), demux.IdleTimeout(idle))
		ln := listen(t, "tcp")
		startServer(t, s, ln)
		m := dial(t, ln.Addr())
		recv(t, m.Done(), "the end of a connection that never called")
		requireGoneAway(t, callEcho(m, "after"))
	})
}

func TestIdleTimeoutSparesABusyConnection(t *testing.T) {
	const idle = 100 * time.Millisecond
	router, started, release, _ := blockingRouter()
	s := demux.NewServer(router, demux.IdleTimeout(idle))
	ln := listen(t, "tcp")
	startServer(t, s, ln)
	m := dial(t, ln.Addr())

	// Calls back to back for five idle timeouts: never idle.
	start := time.Now()
	calls := 0
	for time.Since(start) < 5*idle {
		require.NoError(t, callEcho(m, fmt.Sprint("call ", calls)), "call %d, %v after the first", calls, time.Since(start))
		calls++
	}
	t.Logf("%d calls in %v", calls, time.Since(start))

	// One call in flight for three idle timeouts: not idle either. Nothing
	// happens in that time, so there is nothing to wait on but the time.
	inFlight := m.Go(context.Background(), "block", nil, nil)
	recv(t, started, "the blocking handler's start")
	select {
	case <-m.Done():
		t.Fatalf("closed with a call in flight: %v", m.Err())
	case <-time.After(3 * idle):
	}
	close(release)
	require.NoError(t, waitCall(t, inFlight, "the long call's reply"))
	hello(t, m, "after the long call")

	// Once quiet, it ends.
	quiet := time.Now()
	recv(t, m.Done(), "the end of the connection once quiet")
	assert.GreaterOrEqual(t, time.Since(quiet), idle)
	requireGoneAway(t, callEcho(m, "after"))
}

// waitGoroutines waits until at most n goroutines run, failing the test
// with a dump of them if that takes longer than the bound. There is no
// event to wait on: goroutines exit just after what a test can see.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines %v later, want at most %d:\n%s",
				runtime.NumGoroutine(), bound, n, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

func TestHandshakeTimeoutDisconnectsClientsThatSayNothing(t *testing.T) {
	// Needs channel to enforce Config.HandshakeTimeout.
	const (
		timeout = 200 * time.Millisecond
		each    = 50
		slack   = 5 // goroutines of the runtime and of other tests, coming and going
	)
	s := demux.NewServer(echo(), demux.HandshakeTimeout(timeout))
	ln := listen(t, "tcp")
	startServer(t, s, ln)
	hello(t, dial(t, ln.Addr()), "a client that speaks") // the Server is serving
	before := runtime.NumGoroutine()

	start := time.Now()
	conns := make([]net.Conn, 2*each)
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		if i >= each {
			_, err := c.Write(frame.Preface[:len(frame.Preface)/2])
			require.NoError(t, err)
		}
		conns[i] = c
	}
	for i, c := range conns {
		what := "a client that sent nothing"
		if i >= each {
			what = "a client that sent half a preface"
		}
		require.NoError(t, c.SetReadDeadline(start.Add(bound)))
		_, err := io.Copy(io.Discard, c) // the server's preface, then the end
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d, %s, still open %v after it was made, with a HandshakeTimeout of %v",
				i, what, time.Since(start), timeout)
		}
		c.Close()
	}
	elapsed := time.Since(start)
	t.Logf("%d connections closed in %v", len(conns), elapsed)
	assert.GreaterOrEqual(t, elapsed, timeout, "closed before the HandshakeTimeout")
	waitGoroutines(t, before+slack)
}
