package pool_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/pool"
)

// startImpostor listens on loopback TCP and, on each connection, writes
// greeting (nothing if nil) and holds the connection until the client
// closes it: a server that is not a muxrpc server. It stops at cleanup.
func startImpostor(t *testing.T, greeting []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1024)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if greeting != nil {
					c.Write(greeting)
				}
				io.Copy(io.Discard, c) // until the client hangs up
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(conns)
		for c := range conns { // unblock those the clients left open
			c.Close()
		}
		awaitGroup(t, &wg, "the impostor's goroutines did not all end")
	})
	return ln.Addr().String()
}

var notMuxrpc = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

// TestNoCallGoesToAPeerThatIsNotMuxrpc gives the Pool a muxrpc server,
// an endpoint that answers with HTTP and one that accepts and says
// nothing: the last two never become ready, their dials count as
// failures, and every call goes to the muxrpc server, none failing.
// (Were a connection ready once dialed, the calls sent to the silent peer
// would wait there until keepalive gave up on it, and fail.)
func TestNoCallGoesToAPeerThatIsNotMuxrpc(t *testing.T) {
	good := startServer(t, "a")
	talker, silent := startImpostor(t, notMuxrpc), startImpostor(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	p, err := pool.Dial(ctx, "tcp", pool.Static(good.addr, talker, silent), fastKeepalive,
		pool.Backoff(time.Millisecond, 5*time.Millisecond), pool.DialTimeout(50*time.Millisecond))
	require.NoError(t, err)
	defer p.Close()
	for i := range 400 {
		var who string
		require.NoError(t, p.Call(ctx, "who", struct{}{}, &who), "call %d", i)
		require.Equal(t, "a", who)
	}
	eventually(t, "the endpoints that are no muxrpc servers did not fail their dials", func() bool {
		return p.Stats().DialFailures >= 4
	})
	s := p.Stats()
	assert.Zero(t, s.MaybeRan+s.NotRun, "no call failed")
	assert.Equal(t, 1, s.Conns, "only the muxrpc server's connection is ready")
}

// TestDialFailsOnAPeerThatIsNotMuxrpc checks Dial over endpoints that
// never turn out to be muxrpc servers: one that answers with something
// else fails with frame.ErrBadPreface, and one that accepts and never
// answers fails once the DialTimeout has passed, each attempt of it.
func TestDialFailsOnAPeerThatIsNotMuxrpc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := pool.Dial(ctx, "tcp", pool.Static(startImpostor(t, notMuxrpc)), pool.Backoff(time.Millisecond, 5*time.Millisecond))
	require.Error(t, err)
	assert.ErrorIs(t, err, frame.ErrBadPreface)

	_, err = pool.Dial(ctx, "tcp", pool.Static(startImpostor(t, nil)),
		pool.Backoff(time.Millisecond, 5*time.Millisecond), pool.DialTimeout(20*time.Millisecond))
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the silent peer's handshake timed out")
	assert.NoError(t, ctx.Err(), "Dial's own context did not end")
}
