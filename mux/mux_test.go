package mux_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

type echoArgs struct {
	Caller int
	Seq    int
	Data   []byte
}

func echoRouter() *demux.Router {
	r := demux.NewRouter()
	r.Handle("echo", demux.Func(func(_ context.Context, a echoArgs) (echoArgs, error) { return a, nil }))
	addStreamHandlers(r)
	return r
}

func TestConcurrentCallersGetTheirOwnReplies(t *testing.T) {
	for _, workers := range []int{0, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
				p := rpctest.Start(t, kind, echoRouter(), []demux.Option{demux.Workers(workers)})
				const callers, calls = 300, 3
				var wg sync.WaitGroup
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for s := range calls {
							in := echoArgs{Caller: c, Seq: s, Data: []byte(strings.Repeat("x", c))}
							var out echoArgs
							if err := p.Mux.Call(context.Background(), "echo", in, &out); err != nil {
								t.Errorf("caller %d call %d: %v", c, s, err)
								return
							}
							if out.Caller != c || out.Seq != s || string(out.Data) != string(in.Data) {
								t.Errorf("caller %d call %d got %+v", c, s, out)
							}
						}
					}()
				}
				awaitGroup(t, &wg, "the callers did not all get their replies")
			})
		})
	}
}

func TestGoDeliversIntoReply(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), nil)
		calls := make([]*mux.Call, 50)
		outs := make([]echoArgs, len(calls))
		for i := range calls {
			calls[i] = p.Mux.Go(context.Background(), "echo", echoArgs{Seq: i}, &outs[i])
		}
		for i, c := range calls {
			rpctest.Await(t, c.Done(), fmt.Sprintf("call %d did not finish", i))
			require.NoError(t, c.Err())
			assert.Equal(t, i, outs[i].Seq)
		}
	})
}

func TestWorkersBoundConcurrency(t *testing.T) {
	const workers, calls = 3, 12
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		var running, peak atomic.Int32
		gate := make(chan struct{})
		started := make(chan struct{}, calls)
		h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			started <- struct{}{}
			<-gate
			running.Add(-1)
			return nil, nil
		})
		p := rpctest.Start(t, kind, h, []demux.Option{demux.Workers(workers)})
		var wg sync.WaitGroup
		for range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.NoError(t, p.Mux.Call(context.Background(), "x", nil, nil))
			}()
		}
		for range workers {
			rpctest.Await(t, started, "a handler did not start") // the pool is full now; any extra handler would raise peak
		}
		close(gate)
		awaitGroup(t, &wg, "the calls did not all return once the handlers were released")
		assert.Equal(t, int32(workers), peak.Load())
	})
}

func TestOneWorkerRunsOneCallersRequestsInOrder(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		var order []int // no lock: one worker runs one request at a time
		r := demux.NewRouter()
		r.Handle("append", demux.Func(func(_ context.Context, n int) (int, error) {
			order = append(order, n)
			return len(order), nil
		}))
		p := rpctest.Start(t, kind, r, []demux.Option{demux.Workers(1)})
		const n = 200
		calls := make([]*mux.Call, n)
		for i := range n {
			if i%2 == 0 {
				require.NoError(t, p.Mux.Notify(rpctest.Context(t), "append", i))
				continue
			}
			calls[i] = p.Mux.Go(context.Background(), "append", i, nil)
		}
		var last int
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "append", n, &last))
		for _, c := range calls {
			if c != nil {
				rpctest.Await(t, c.Done(), "a call did not finish")
				require.NoError(t, c.Err())
			}
		}
		require.Equal(t, n+1, last)
		for i, v := range order {
			require.Equal(t, i, v)
		}
	})
}

func TestRemoteErrors(t *testing.T) {
	r := demux.NewRouter()
	r.Handle("fail", demux.Func(func(_ context.Context, s string) (string, error) {
		return "", errors.New("no luck for " + s)
	}))
	r.Handle("coded", demux.Func(func(_ context.Context, _ string) (string, error) {
		return "", fmt.Errorf("wrapped: %w", &frame.RemoteError{Code: frame.CodeOverloaded, Message: "busy"})
	}))
	r.Handle("int", demux.Func(func(_ context.Context, n int) (int, error) { return n, nil }))
	r.Handle("canceled", demux.Func(func(_ context.Context, _ int) (int, error) {
		return 0, fmt.Errorf("gave up: %w", context.Canceled)
	}))
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, r, nil)
		ctx := rpctest.Context(t)
		cases := []struct {
			method string
			args   any
			code   frame.Code
			msg    string
		}{
			{"fail", "bob", frame.CodeApplication, "no luck for bob"},
			{"coded", "x", frame.CodeOverloaded, "wrapped: remote: Overloaded: busy"},
			{"nothere", 1, frame.CodeNoMethod, `no method "nothere"`},
			{"int", "not an int", frame.CodeBadRequest, `arguments of "int" do not decode into int`},
			{"int", msgpack.RawMessage{0xdd, 0xff, 0xff, 0xff, 0xff}, frame.CodeBadRequest, "claims 4294967295 items"},
			{"int", msgpack.RawMessage{0xdf, 0xff, 0xff, 0xff, 0xff}, frame.CodeBadRequest, "claims"},
			{"int", msgpack.RawMessage{0xc6, 0xff, 0xff, 0xff, 0xff}, frame.CodeBadRequest, "value of 4294967295 bytes"},
			{"canceled", 1, frame.CodeCanceled, "gave up"},
		}
		for _, c := range cases {
			var out any
			err := p.Mux.Call(ctx, c.method, c.args, &out)
			var re *frame.RemoteError
			require.ErrorAs(t, err, &re, c.method)
			assert.Equal(t, c.code, re.Code, c.method)
			assert.Contains(t, re.Message, c.msg, c.method)
			assert.NotErrorIs(t, err, mux.ErrClosed)
		}
		var out any
		assert.ErrorIs(t, p.Mux.Call(ctx, "canceled", 1, &out), context.Canceled)
		var n int
		require.NoError(t, p.Mux.Call(ctx, "int", 7, &n), "the server keeps serving")
		assert.Equal(t, 7, n)
	})
}

func panicky(int) int { panic("handler blew up") }

func TestPanicComesBackWithTrace(t *testing.T) {
	r := demux.NewRouter()
	r.Handle("panic", demux.Func(func(_ context.Context, n int) (int, error) { return panicky(n), nil }))
	r.Handle("ok", demux.Func(func(_ context.Context, n int) (int, error) { return n, nil }))
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, r, []demux.Option{demux.Workers(1)})
		err := p.Mux.Call(rpctest.Context(t), "panic", 1, nil)
		var re *frame.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, frame.CodePanic, re.Code)
		assert.Equal(t, "handler blew up", re.Message)
		assert.Contains(t, re.Trace, "mux_test.panicky")
		var n int
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "ok", 2, &n))
		assert.Equal(t, 2, n)
	})
}

func TestCancelReachesHandler(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		handlerErr := make(chan error, 1)
		started := make(chan struct{}, 1)
		r := echoRouter()
		r.Handle("wait", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			started <- struct{}{}
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return "too late", nil
		}))
		p := rpctest.Start(t, kind, r, nil)
		ctx, cancel := context.WithCancel(context.Background())
		call := p.Mux.Go(ctx, "wait", nil, new(string))
		var sync string
		syncErr := make(chan error, 1)
		go func() {
			<-started
			cancel()
			syncErr <- nil
		}()
		rpctest.Await(t, syncErr, "the handler did not start, so the call was not canceled")
		rpctest.Await(t, call.Done(), "the canceled call did not finish")
		assert.ErrorIs(t, call.Err(), context.Canceled)
		assert.NotErrorIs(t, call.Err(), mux.ErrClosed)
		assert.ErrorIs(t, rpctest.Await(t, handlerErr, "the handler's context was not canceled"), context.Canceled, "the CANCEL frame cancels the handler's context")

		// The same through Call, and the Mux still serves its next caller.
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() {
			select {
			case <-started:
			case <-ctx2.Done(): // Call returned without the handler starting
			case <-time.After(waitLimit):
				t.Error("the handler of the second call did not start")
			}
			cancel2()
		}()
		err := p.Mux.Call(ctx2, "wait", nil, &sync)
		cancel2()
		assert.ErrorIs(t, err, context.Canceled)
		rpctest.Await(t, handlerErr, "the second call's handler's context was not canceled")
		var out echoArgs
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Seq: 9}, &out))
		assert.Equal(t, 9, out.Seq)
	})
}

func TestCanceledContextFailsBeforeSending(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, echoRouter(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, p.Mux.Call(ctx, "echo", echoArgs{}, nil), context.Canceled)
	call := p.Mux.Go(ctx, "echo", echoArgs{}, nil)
	rpctest.Await(t, call.Done(), "the call with a canceled context did not fail")
	assert.ErrorIs(t, call.Err(), context.Canceled)
	assert.ErrorIs(t, p.Mux.Notify(ctx, "echo", echoArgs{}), context.Canceled)
}

func TestDeadlineTravelsToHandler(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		r := demux.NewRouter()
		r.Handle("budget", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			d, ok := ctx.Deadline()
			if !ok {
				return time.Duration(0), nil
			}
			return time.Until(d), nil
		}))
		r.Handle("block", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}))
		p := rpctest.Start(t, kind, r, nil)

		var left time.Duration
		require.NoError(t, p.Mux.Call(context.Background(), "budget", nil, &left))
		assert.Zero(t, left, "no deadline, no budget")

		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		require.NoError(t, p.Mux.Call(ctx, "budget", nil, &left))
		assert.Greater(t, left, 59*time.Minute)
		assert.LessOrEqual(t, left, time.Hour)

		short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancelShort()
		err := p.Mux.Call(short, "block", nil, nil)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestStreamDeathFailsEveryParkedCaller(t *testing.T) {
	for _, how := range []string{"server closes", "mux closes"} {
		t.Run(how, func(t *testing.T) {
			rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
				const callers = 50
				b := rpctest.NewBlocker(callers)
				p := rpctest.Start(t, kind, b, nil)
				errs := make(chan error, callers)
				for range callers {
					go func() { errs <- p.Mux.Call(context.Background(), "park", nil, nil) }()
				}
				for range callers {
					rpctest.Await(t, b.Started, "a parked call's handler did not start")
				}
				if how == "server closes" {
					require.NoError(t, p.DeMux.Close())
				} else {
					require.NoError(t, p.Mux.Close())
				}
				for range callers {
					err := rpctest.Await(t, errs, "a parked call did not fail when the stream died")
					assert.ErrorIs(t, err, mux.ErrClosed)
					if how == "server closes" {
						assert.True(t, rpctest.IsHangUp(err), "cause is kept: %v", err)
					}
				}
				err := p.Mux.Call(rpctest.Context(t), "park", nil, nil)
				assert.ErrorIs(t, err, mux.ErrClosed, "later calls fail at once")
				assert.ErrorIs(t, p.Mux.Notify(rpctest.Context(t), "park", nil), mux.ErrClosed)
				call := p.Mux.Go(context.Background(), "park", nil, nil)
				rpctest.Await(t, call.Done(), "a call after the stream died did not fail")
				assert.ErrorIs(t, call.Err(), mux.ErrClosed)
				serveErr := awaitErr(t, p.Wait, "Serve did not return after the stream died")
				if how == "mux closes" {
					assert.True(t, rpctest.IsHangUp(serveErr), "Serve reports the client's hang-up: %v", serveErr)
				} else {
					assert.NoError(t, serveErr)
				}
			})
		})
	}
}

func TestNotifyRunsHandlerAndSendsNothing(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		got := make(chan string, 1)
		r := echoRouter()
		r.Handle("note", demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
			var s string
			if err := req.Decode(&s); err != nil {
				return nil, err
			}
			if !req.Notify || req.XID != 0 {
				s = "not a notification"
			}
			got <- s
			return "dropped", errors.New("dropped too")
		}))
		p := rpctest.Start(t, kind, r, nil)
		require.NoError(t, p.Mux.Notify(rpctest.Context(t), "note", "hello"))
		assert.Equal(t, "hello", rpctest.Await(t, got, "the notification's handler did not run"))
		require.NoError(t, p.Mux.Notify(rpctest.Context(t), "nothere", "hello"), "no reply, not even an error")
		var out echoArgs
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Seq: 1}, &out))
		assert.Equal(t, 1, out.Seq)
	})
}

func TestShutdownFinishesInFlightAndRefusesNew(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		const inflight = 10
		b := rpctest.NewBlocker(inflight)
		p := rpctest.Start(t, kind, b, nil)
		results := make(chan error, inflight)
		replies := make([]string, inflight)
		for i := range inflight {
			go func() { results <- p.Mux.Call(context.Background(), "park", nil, &replies[i]) }()
		}
		for range inflight {
			rpctest.Await(t, b.Started, "a call's handler did not start")
		}
		shutdown := make(chan error, 1)
		go func() { shutdown <- p.DeMux.Shutdown(context.Background()) }()

		// New calls fail: refused by the server until the GOAWAY arrives,
		// then at once by the Mux. Both carry CodeShutdown.
		for {
			err := p.Mux.Call(rpctest.Context(t), "park", nil, nil)
			var re *frame.RemoteError
			require.ErrorAs(t, err, &re)
			require.Equal(t, frame.CodeShutdown, re.Code)
			if errors.Is(err, mux.ErrClosed) {
				break
			}
		}
		b.Release()
		for range inflight {
			require.NoError(t, rpctest.Await(t, results, "a call in flight did not finish during Shutdown"))
		}
		for _, r := range replies {
			assert.Equal(t, "released", r)
		}
		require.NoError(t, rpctest.Await(t, shutdown, "Shutdown did not return once the calls in flight finished"))
		require.NoError(t, awaitErr(t, p.Wait, "Serve did not return after Shutdown"))
	})
}

func TestShutdownHonoursContext(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		b := rpctest.NewBlocker(1)
		p := rpctest.Start(t, kind, b, nil)
		result := make(chan error, 1)
		go func() { result <- p.Mux.Call(context.Background(), "park", nil, nil) }()
		rpctest.Await(t, b.Started, "the handler did not start")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, p.DeMux.Shutdown(ctx), context.Canceled)
		assert.ErrorIs(t, rpctest.Await(t, result, "the call in flight did not fail when Shutdown gave up"), mux.ErrClosed, "the stream was closed with the call in flight")
		require.NoError(t, awaitErr(t, p.Wait, "Serve did not return after Shutdown gave up"))
	})
}

func TestOversizedArgsFailOnlyThatCall(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), []demux.Option{demux.MaxFrameSize(4096)}, mux.MaxFrameSize(4096))
		var out echoArgs
		err := p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Data: make([]byte, 5000)}, &out)
		assert.ErrorIs(t, err, frame.ErrTooLarge)
		assert.NotErrorIs(t, err, mux.ErrClosed)
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Seq: 3, Data: make([]byte, 3000)}, &out))
		assert.Equal(t, 3, out.Seq)
	})
}

func TestOversizedResultIsAnsweredWithAnError(t *testing.T) {
	r := demux.NewRouter()
	r.Handle("big", demux.Func(func(_ context.Context, n int) ([]byte, error) { return make([]byte, n), nil }))
	p := rpctest.Start(t, transport.Pipe, r, []demux.Option{demux.MaxFrameSize(4096)}, mux.MaxFrameSize(4096))
	var out []byte
	err := p.Mux.Call(rpctest.Context(t), "big", 5000, &out)
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeInternal, re.Code)
	assert.Contains(t, re.Message, "too large")
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "big", 100, &out))
	assert.Len(t, out, 100)
}

func TestNonPointerReplyFailsBeforeSending(t *testing.T) {
	// The handler must not run (its side effect would be done) when the
	// reply could never be decoded.
	ran := make(chan struct{}, 1)
	r := demux.NewRouter()
	r.Handle("effect", demux.Func(func(context.Context, int) (int, error) {
		ran <- struct{}{}
		return 1, nil
	}))
	p := rpctest.Start(t, transport.Pipe, r, nil)
	var value int
	var nilPtr *int
	for _, reply := range []any{value, nilPtr} {
		err := p.Mux.Call(rpctest.Context(t), "effect", 1, reply)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "non-nil pointer")
		assert.NotErrorIs(t, err, mux.ErrClosed)
		c := p.Mux.Go(context.Background(), "effect", 1, reply)
		rpctest.Await(t, c.Done(), "the call with a non-pointer reply did not fail")
		assert.Contains(t, c.Err().Error(), "non-nil pointer")
	}
	// A call that does run comes after those on the stream: if they had
	// been sent, their handlers would have run first.
	var out int
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "effect", 1, &out))
	rpctest.Await(t, ran, "the handler did not run for the call that was sent")
	assert.Empty(t, ran, "a call with a non-pointer reply reached the handler")
}

func TestReplyDecodeErrorIsTheCallersOnly(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, echoRouter(), nil)
	var wrong int
	err := p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Seq: 1}, &wrong)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `call "echo": decoding the reply into *int`, "the error names the method and the Go type")
	var out echoArgs
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Seq: 2}, &out))
}

func TestUnencodableArgs(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, echoRouter(), nil)
	err := p.Mux.Call(rpctest.Context(t), "echo", make(chan int), nil)
	require.Error(t, err)
	assert.NotErrorIs(t, err, mux.ErrClosed)
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{}, nil))
}
