package mux_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// callbacks counts GoFunc's callbacks per call and checks, in each, that
// the call has finished.
type callbacks struct {
	t    *testing.T
	mu   sync.Mutex
	runs map[*mux.Call]int // guarded by mu
	ran  chan *mux.Call
}

func newCallbacks(t *testing.T, n int) *callbacks {
	return &callbacks{t: t, runs: map[*mux.Call]int{}, ran: make(chan *mux.Call, n)}
}

func (cb *callbacks) fn(c *mux.Call) {
	select {
	case <-c.Done():
	default:
		cb.t.Errorf("callback ran before Done was closed")
	}
	cb.mu.Lock()
	cb.runs[c]++
	cb.mu.Unlock()
	cb.ran <- c
}

// exactlyOnce checks that each of calls got exactly one callback.
func (cb *callbacks) exactlyOnce(calls ...*mux.Call) {
	cb.t.Helper()
	cb.mu.Lock()
	defer cb.mu.Unlock()
	for i, c := range calls {
		assert.Equal(cb.t, 1, cb.runs[c], "callbacks of call %d (err %v)", i, c.Err())
	}
	assert.Len(cb.t, cb.runs, len(calls), "callbacks for calls not started")
}

func futureRouter() *demux.Router {
	r := demux.NewRouter()
	r.Handle("echo", demux.Func(func(_ context.Context, s string) (string, error) { return s, nil }))
	r.Handle("fail", demux.Func(func(_ context.Context, s string) (string, error) { return "", errors.New(s) }))
	r.Handle("block", demux.HandlerFunc(func(ctx context.Context, req *demux.Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	return r
}

func TestGoFuncCallsBackOnceHoweverTheCallEnds(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, futureRouter(), nil)
	cb := newCallbacks(t, 16)
	bg := context.Background()
	var calls []*mux.Call

	var reply string
	c := p.Mux.GoFunc(bg, "echo", "hi", &reply, cb.fn)
	require.Same(t, c, rpctest.Await(t, cb.ran, "the callback of a call that succeeds"))
	require.NoError(t, c.Err())
	assert.Equal(t, "hi", reply, "the reply is decoded before the callback")
	calls = append(calls, c)

	c = p.Mux.GoFunc(bg, "fail", "no", nil, cb.fn)
	require.Same(t, c, rpctest.Await(t, cb.ran, "the callback of a call that fails remotely"))
	var re *frame.RemoteError
	require.ErrorAs(t, c.Err(), &re)
	calls = append(calls, c)

	ctx, cancel := context.WithCancel(bg)
	c = p.Mux.GoFunc(ctx, "block", nil, nil, cb.fn)
	cancel()
	require.Same(t, c, rpctest.Await(t, cb.ran, "the callback of a canceled call"))
	assert.ErrorIs(t, c.Err(), context.Canceled)
	calls = append(calls, c)

	// Failing before sending: the callback runs before GoFunc returns.
	c = p.Mux.GoFunc(ctx, "echo", "x", nil, cb.fn)
	require.Len(t, cb.ran, 1, "callback of a call whose context had ended, before GoFunc returned")
	require.Same(t, c, <-cb.ran)
	assert.ErrorIs(t, c.Err(), mux.ErrNotSent)
	calls = append(calls, c)
	c = p.Mux.GoFunc(bg, "echo", make(chan int), nil, cb.fn)
	require.Len(t, cb.ran, 1, "callback of a call whose arguments do not encode, before GoFunc returned")
	require.Same(t, c, <-cb.ran)
	assert.ErrorIs(t, c.Err(), mux.ErrNotSent)
	calls = append(calls, c)

	// Stream death: both calls waiting get their callback.
	live, stop := context.WithCancel(bg) // a context that can end, but does not
	defer stop()
	started := []*mux.Call{p.Mux.GoFunc(bg, "block", nil, nil, cb.fn), p.Mux.GoFunc(live, "block", nil, nil, cb.fn)}
	require.NoError(t, p.DeMux.Close())
	for range started {
		c := rpctest.Await(t, cb.ran, "the callback of a call whose stream died")
		assert.ErrorIs(t, c.Err(), mux.ErrClosed)
	}
	calls = append(calls, started...)

	// After the stream died, a call fails at once.
	c = p.Mux.GoFunc(bg, "echo", "x", nil, cb.fn)
	require.Same(t, c, rpctest.Await(t, cb.ran, "the callback of a call on a closed Mux"))
	assert.ErrorIs(t, c.Err(), mux.ErrClosed)
	calls = append(calls, c)

	require.NoError(t, p.Mux.Close()) // the reader has exited: no callback is left to come
	cb.exactlyOnce(calls...)
}

func TestGoFuncNilCallbackIsGo(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, futureRouter(), nil)
	var reply string
	c := p.Mux.GoFunc(context.Background(), "echo", "hi", &reply, nil)
	rpctest.Await(t, c.Done(), "the call did not finish")
	require.NoError(t, c.Err())
	assert.Equal(t, "hi", reply)
}

func TestGoFuncCallbacksRaceCancelAndReply(t *testing.T) {
	// Replies and cancellations race: whichever finishes a call, its
	// callback runs once.
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, futureRouter(), nil)
		const n = 500
		cb := newCallbacks(t, n)
		calls := make([]*mux.Call, n)
		for i := range calls {
			ctx, cancel := context.WithCancel(context.Background())
			method := "echo"
			if i%3 == 0 {
				method = "block"
			}
			calls[i] = p.Mux.GoFunc(ctx, method, "x", nil, cb.fn)
			if i%2 == 0 {
				cancel()
			} else {
				defer cancel()
			}
		}
		// Every call ends by itself but those to "block" not canceled
		// (i%6 == 3), which Close ends.
		blocked := 0
		for i := range n {
			if i%6 == 3 {
				blocked++
			}
		}
		ended := 0
		for ; ended < n-blocked; ended++ {
			rpctest.Await(t, cb.ran, fmt.Sprintf("callback %d of %d", ended+1, n-blocked))
		}
		require.NoError(t, p.Mux.Close())
		for ; ended < n; ended++ {
			rpctest.Await(t, cb.ran, "the callback of a call failed by Close")
		}
		cb.exactlyOnce(calls...)
	})
}

func TestGroupWaitsForEveryCall(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, futureRouter(), nil)
	g := mux.NewGroup(context.Background())
	replies := make([]string, 100)
	for i := range replies {
		g.Go(p.Mux, "echo", fmt.Sprint(i), &replies[i])
	}
	require.NoError(t, awaitErr(t, g.Wait, "Wait did not return once every call was answered"))
	for i, r := range replies {
		assert.Equal(t, fmt.Sprint(i), r)
	}
	assert.ErrorIs(t, g.Context().Err(), context.Canceled, "Wait cancels the Group's context")
	require.NoError(t, awaitErr(t, g.Wait, "a second Wait did not return"), "Wait again")
	empty := mux.NewGroup(context.Background())
	require.NoError(t, awaitErr(t, empty.Wait, "Wait on an empty Group did not return"), "an empty Group")
}

func TestGroupReturnsTheFirstErrorAndCancelsTheRest(t *testing.T) {
	started := make(chan struct{}, 10)
	canceled := make(chan struct{}, 10)
	r := futureRouter()
	r.Handle("park", demux.HandlerFunc(func(ctx context.Context, req *demux.Request) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		canceled <- struct{}{}
		return nil, ctx.Err()
	}))
	p := rpctest.Start(t, transport.Pipe, r, nil)
	g := mux.NewGroup(context.Background())
	var parked []*mux.Call
	for range 10 {
		parked = append(parked, g.Go(p.Mux, "park", nil, nil))
	}
	for i := range 10 {
		rpctest.Await(t, started, fmt.Sprintf("parked handler %d did not start", i))
	}
	failed := g.Go(p.Mux, "fail", "first", nil)
	err := awaitErr(t, g.Wait, "Wait did not return after a call failed")
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re, "Wait returns the failed call's error")
	assert.Equal(t, "first", re.Message)
	assert.Equal(t, failed.Err(), err)
	for i, c := range parked {
		assert.ErrorIs(t, c.Err(), context.Canceled, "parked call %d", i)
	}
	for i := range 10 {
		rpctest.Await(t, canceled, fmt.Sprintf("parked handler %d was not told to cancel", i))
	}
	// A call started after Wait fails at once, before it is sent.
	late := g.Go(p.Mux, "echo", "x", nil)
	rpctest.Await(t, late.Done(), "the late call did not finish")
	assert.ErrorIs(t, late.Err(), mux.ErrNotSent)
	assert.Equal(t, err, awaitErr(t, g.Wait, "a second Wait did not return"), "the first error stays the Group's")
}

func TestGroupParksManyCallsWithoutAGoroutineEach(t *testing.T) {
	gate := make(chan struct{})
	var handled atomic.Int32
	const n = 1000
	r := demux.NewRouter()
	r.Handle("wait", demux.HandlerFunc(func(ctx context.Context, req *demux.Request) (any, error) {
		defer handled.Add(1)
		select {
		case <-gate:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	// One worker: the server parks no goroutine per request either.
	p := rpctest.Start(t, transport.Pipe, r, []demux.Option{demux.Workers(1)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := runtime.NumGoroutine()
	g := mux.NewGroup(ctx)
	for range n {
		g.Go(p.Mux, "wait", nil, nil)
	}
	added := runtime.NumGoroutine() - before
	t.Logf("%d calls in a Group added %d goroutines", n, added)
	assert.Less(t, added, 20, "goroutines added by %d parked calls of a Group", n)
	close(gate)
	waited := make(chan error, 1)
	go func() { waited <- g.Wait() }()
	require.NoError(t, rpctest.Await(t, waited, "Wait did not return after the handlers were released"))
	assert.Equal(t, int32(n), handled.Load(), "handlers run")
}
