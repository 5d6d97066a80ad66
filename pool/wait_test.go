package pool_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

type result struct {
	who string
	err error
}

// TestWaitForReadyWaitsForAServerToComeBack stops the only server: a
// plain call fails at once with ErrUnavailable, one made WaitForReady
// waits, and gets its answer from the server that comes back.
func TestWaitForReadyWaitsForAServerToComeBack(t *testing.T) {
	s := startServer(t, "a")
	p := dialPool(t, []*server{s})
	addr := s.addr
	s.srv.Close()
	eventually(t, "calls did not fail with ErrUnavailable once the only server was gone", func() bool {
		err := p.Call(rpctest.Context(t), "who", struct{}{}, nil)
		return errors.Is(err, pool.ErrNotRun) && errors.Is(err, pool.ErrUnavailable)
	})

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	got := make(chan result, 1)
	go func() {
		var r result
		r.err = p.Call(pool.WaitForReady(ctx), "who", struct{}{}, &r.who)
		got <- r
	}()
	// Let the endpoint fail a dial while the call waits: it keeps waiting.
	before := p.Stats().DialFailures
	eventually(t, "the Pool did not redial the endpoint that was gone", func() bool {
		return p.Stats().DialFailures > before
	})
	select {
	case r := <-got:
		t.Fatalf("the call made WaitForReady did not wait for the server: %+v", r)
	default:
	}
	startServerAt(t, "a2", addr)
	r := rpctest.Await(t, got, "the call made WaitForReady did not finish once the server came back")
	require.NoError(t, r.err)
	assert.Equal(t, "a2", r.who)
}

// TestWaitForReadyEndsWithItsContext checks that a call made WaitForReady
// with no server to be had fails when its context ends, saying both why
// it stopped waiting and why no connection was ready.
func TestWaitForReadyEndsWithItsContext(t *testing.T) {
	s := startServer(t, "a")
	p := dialPool(t, []*server{s})
	s.srv.Close()
	eventually(t, "calls did not fail with ErrUnavailable once the only server was gone", func() bool {
		return errors.Is(p.Call(rpctest.Context(t), "who", struct{}{}, nil), pool.ErrUnavailable)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := p.Call(pool.WaitForReady(ctx), "who", struct{}{}, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, pool.ErrNotRun)
	assert.ErrorIs(t, err, pool.ErrUnavailable, "the reason no connection was ready")
}

// TestDialWaitForReady dials an address where no server listens yet:
// plain, Dial fails; made WaitForReady, it goes on dialing after failures
// and returns once a server starts there.
func TestDialWaitForReady(t *testing.T) {
	addr := freeAddr(t)
	failed := make(chan error, 64)
	dial := func(ctx context.Context, network, addr string) (*mux.Mux, error) {
		m, err := mux.Dial(ctx, network, addr)
		if err != nil {
			select {
			case failed <- err:
			default:
			}
		}
		return m, err
	}
	opts := []pool.Option{pool.Backoff(time.Millisecond, 10*time.Millisecond), pool.DialFunc(dial)}
	plain := rpctest.Context(t)
	_, err := pool.Dial(plain, "tcp", pool.Static(addr), opts...)
	require.Error(t, err, "nothing listens yet")
	require.NoError(t, plain.Err(), "a plain Dial gave up on its own, before its context ended")
	for len(failed) > 0 {
		<-failed
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	type dialed struct {
		p   *pool.Pool
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		p, err := pool.Dial(pool.WaitForReady(ctx), "tcp", pool.Static(addr), opts...)
		done <- dialed{p, err}
	}()
	for range 2 { // a plain Dial would have returned after the first
		rpctest.Await(t, failed, "Dial made WaitForReady did not dial again after a failure")
	}
	select {
	case d := <-done:
		t.Fatalf("Dial made WaitForReady returned before a server listened: %v", d.err)
	default:
	}
	startServerAt(t, "late", addr)
	d := rpctest.Await(t, done, "Dial made WaitForReady did not return once the server listened")
	require.NoError(t, d.err)
	defer d.p.Close()
	var who string
	require.NoError(t, d.p.Call(ctx, "who", struct{}{}, &who))
	assert.Equal(t, "late", who)
}
