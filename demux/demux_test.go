package demux_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// serve starts a DeMux over the other end of a fresh stream and returns a
// raw client for this end and Serve's result.
func serve(t *testing.T, kind transport.Kind, h demux.Handler, opts ...demux.Option) (*rpctest.Raw, *demux.DeMux, <-chan error) {
	c, s, err := transport.Pair(kind)
	require.NoError(t, err)
	d := demux.New(s, h, opts...)
	done := make(chan error, 1)
	go func() { done <- d.Serve() }()
	t.Cleanup(func() {
		c.Close()
		d.Close()
	})
	return rpctest.NewRaw(t, c), d, done
}

// waitServe waits for p's Serve to return and returns its error, failing
// the test if it does not return within the bound.
func waitServe(t *testing.T, p *rpctest.Pair) error {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- p.Wait() }()
	return recv(t, served, "Serve's return")
}

func echo() *demux.Router {
	r := demux.NewRouter()
	r.Handle("echo", demux.Func(func(_ context.Context, s string) (string, error) { return s, nil }))
	return r
}

func TestServeRejectsPeersThatAreNotMuxrpc(t *testing.T) {
	cases := []struct {
		name  string
		bytes []byte
		is    error
		says  string
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), frame.ErrBadPreface, "looks like HTTP"},
		{"zeros", make([]byte, 64), frame.ErrBadPreface, `"\x00\x00`},
		{"random", []byte{0x9e, 0x12, 0x77, 0x01, 0xfe, 0x33, 0x00, 0x42, 0x10}, frame.ErrBadPreface, "not muxrpc"},
		{"version", []byte("muxrpc\x00\x07"), frame.ErrVersion, "version 7"},
		{"short", []byte("mux"), frame.ErrBadPreface, "stream ended"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
				peer, _, done := serve(t, kind, echo())
				peer.Write(c.bytes)
				if c.name == "short" {
					peer.HangUp()
				}
				err := recv(t, done, "Serve's return")
				require.ErrorIs(t, err, c.is)
				assert.Contains(t, err.Error(), c.says)
			})
		})
	}
}

func TestServeSendsItsPreface(t *testing.T) {
	peer, d, done := serve(t, transport.Pipe, echo())
	got := make([]byte, len(frame.Preface))
	_, err := io.ReadFull(peer.RWC, got)
	require.NoError(t, err)
	assert.Equal(t, frame.Preface[:], got)
	require.NoError(t, d.Close())
	require.NoError(t, recv(t, done, "Serve's return"))
}

func TestProtocolViolationsEndTheStream(t *testing.T) {
	huge := binary.BigEndian.AppendUint32(nil, 0x7fffffff)
	cases := []struct {
		name string
		send func(p *rpctest.Raw)
		is   error
	}{
		{"length over the limit", func(p *rpctest.Raw) { p.Write(huge) }, frame.ErrTooLarge},
		{"unknown type", func(p *rpctest.Raw) {
			p.Write([]byte{0, 0, 0, 10, 99, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		}, frame.ErrMalformed},
		{"response to a server", func(p *rpctest.Raw) {
			p.Send(frame.Frame{Type: frame.TypeResponse, XID: 1, Payload: []byte{0xc0}})
		}, frame.ErrMalformed},
		{"eof inside a frame", func(p *rpctest.Raw) {
			p.Write([]byte{0, 0, 0, 40, byte(frame.TypeRequest), 0, 0, 0})
			p.HangUp()
		}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
				peer, _, done := serve(t, kind, echo())
				peer.Preface()
				c.send(peer)
				require.ErrorIs(t, recv(t, done, "Serve's return"), c.is)
			})
		})
	}
}

func TestDuplicateXIDIsAViolation(t *testing.T) {
	b := rpctest.NewBlocker(2)
	peer, _, done := serve(t, transport.Pipe, b)
	peer.Preface()
	peer.Send(rpctest.Request(5, "park", nil))
	recv(t, b.Started, "the first request's start")
	peer.Send(rpctest.Request(5, "park", nil))
	err := recv(t, done, "Serve's return")
	require.ErrorIs(t, err, frame.ErrMalformed)
	assert.Contains(t, err.Error(), "xid 5")
}

func TestRawRequestGetsItsReply(t *testing.T) {
	peer, _, _ := serve(t, transport.Pipe, echo())
	peer.Preface()
	require.NoError(t, peer.R.ReadPreface())
	peer.Send(rpctest.Request(42, "echo", "hi"))
	peer.Send(rpctest.Request(43, "echo", 12)) // bad args
	var f frame.Frame
	for range 2 {
		require.NoError(t, peer.R.ReadFrame(&f))
		switch f.XID {
		case 42:
			require.Equal(t, frame.TypeResponse, f.Type)
			var s string
			require.NoError(t, frame.DecodePayload(f.Payload, &s))
			assert.Equal(t, "hi", s)
		case 43:
			require.Equal(t, frame.TypeError, f.Type)
			assert.Equal(t, frame.CodeBadRequest, f.Err.Code)
		default:
			t.Fatalf("unexpected %v", &f)
		}
		f.Release()
	}
}

func TestCodeZeroGoesOutAsApplication(t *testing.T) {
	// Code 0 is never sent (PROTOCOL.md, section 8): a handler's
	// RemoteError with code 0, returned or wrapped, goes out as
	// CodeApplication, and the handler's own value is left alone.
	direct := &frame.RemoteError{Code: 0, Message: "x", Trace: "t"}
	inner := &frame.RemoteError{Code: 0, Message: "y"}
	r := demux.NewRouter()
	r.Handle("direct", demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) { return nil, direct }))
	r.Handle("wrapped", demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) {
		return nil, fmt.Errorf("wrapped: %w", inner)
	}))
	peer, _, _ := serve(t, transport.Pipe, r)
	peer.Preface()
	require.NoError(t, peer.R.ReadPreface())
	peer.Send(rpctest.Request(1, "direct", nil))
	peer.Send(rpctest.Request(2, "wrapped", nil))
	var f frame.Frame
	for range 2 {
		require.NoError(t, peer.R.ReadFrame(&f))
		require.Equal(t, frame.TypeError, f.Type)
		assert.Equal(t, frame.CodeApplication, f.Err.Code, "xid %d", f.XID)
		switch f.XID {
		case 1:
			assert.Equal(t, "x", f.Err.Message)
			assert.Equal(t, "t", f.Err.Trace)
		case 2:
			assert.Contains(t, f.Err.Message, "wrapped: ")
			assert.Contains(t, f.Err.Message, "y")
		default:
			t.Fatalf("unexpected %v", &f)
		}
		f.Release()
	}
	assert.Equal(t, frame.Code(0), direct.Code, "the handler's error was not changed")
	assert.Equal(t, frame.Code(0), inner.Code, "the handler's error was not changed")
}

func TestMaxInFlightStopsReading(t *testing.T) {
	const limit, calls = 2, 8
	var running, peak atomic.Int32
	gate := make(chan struct{})
	started := make(chan struct{}, calls)
	h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		n := running.Add(1)
		for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
		}
		started <- struct{}{}
		<-gate
		running.Add(-1)
		return nil, nil
	})
	p := rpctest.Start(t, transport.Pipe, h, []demux.Option{demux.MaxInFlight(limit)})
	results := make(chan error, calls)
	for range calls {
		go func() { results <- p.Mux.Call(context.Background(), "x", nil, nil) }()
	}
	for range limit {
		recv(t, started, "a handler's start")
	}
	close(gate)
	for range calls {
		require.NoError(t, recv(t, results, "a call's end"))
	}
	assert.Equal(t, int32(limit), peak.Load())
}

func TestStreamEndCancelsHandlers(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		seen := make(chan error, 1)
		started := make(chan struct{})
		h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			close(started)
			<-ctx.Done()
			seen <- ctx.Err()
			return nil, nil
		})
		p := rpctest.Start(t, kind, h, nil)
		call := p.Mux.Go(context.Background(), "x", nil, nil)
		recv(t, started, "the handler's start")
		require.NoError(t, p.Mux.Close())
		recv(t, call.Done(), "the call's end")
		assert.ErrorIs(t, call.Err(), mux.ErrClosed)
		assert.ErrorIs(t, recv(t, seen, "the handler's context ending"), context.Canceled)
		assert.True(t, rpctest.IsHangUp(waitServe(t, p)), "Serve reports the client's hang-up")
	})
}

func TestLifecycleEdges(t *testing.T) {
	t.Run("close before serve", func(t *testing.T) {
		c, s, err := transport.Pair(transport.Pipe)
		require.NoError(t, err)
		defer c.Close()
		d := demux.New(s, echo())
		require.NoError(t, d.Close())
		require.NoError(t, d.Serve())
		require.ErrorIs(t, d.Serve(), demux.ErrServing)
		require.NoError(t, d.Close(), "twice is fine")
	})
	t.Run("shutdown before serve", func(t *testing.T) {
		c, s, err := transport.Pair(transport.Pipe)
		require.NoError(t, err)
		defer c.Close()
		d := demux.New(s, echo())
		require.NoError(t, d.Shutdown(rpctest.Context(t)))
		require.NoError(t, d.Serve())
	})
	t.Run("shutdown idle", func(t *testing.T) {
		p := rpctest.Start(t, transport.TCP, echo(), nil)
		ctx := rpctest.Context(t)
		var s string
		require.NoError(t, p.Mux.Call(ctx, "echo", "x", &s))
		require.NoError(t, p.DeMux.Shutdown(ctx))
		require.NoError(t, waitServe(t, p))
		require.NoError(t, p.DeMux.Shutdown(ctx), "twice is fine")
		err := p.Mux.Call(ctx, "echo", "x", &s)
		assert.ErrorIs(t, err, mux.ErrClosed)
	})
}

func TestNotifyErrorsAreLogged(t *testing.T) {
	records := make(chan string, 64)
	h := slog.NewTextHandler(chanWriter(records), &slog.HandlerOptions{Level: slog.LevelDebug})
	r := demux.NewRouter()
	r.Handle("oops", demux.Func(func(context.Context, int) (int, error) { return 0, errors.New("nobody hears this") }))
	p := rpctest.Start(t, transport.Pipe, r, []demux.Option{demux.Logger(slog.New(h))})
	require.NoError(t, p.Mux.Notify(rpctest.Context(t), "oops", 1))
	rec := awaitRecord(t, records, "nobody hears this")
	assert.Contains(t, rec, "method=oops")
}

// awaitRecord returns the first log record that contains want, failing the
// test if none comes within 10 s.
func awaitRecord(t *testing.T, records <-chan string, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rec := <-records:
			if strings.Contains(rec, want) {
				return rec
			}
		case <-timeout:
			t.Fatalf("no log record with %q within 10 s", want)
		}
	}
}

func TestHandlerPanicIsLoggedWithMethodAndStack(t *testing.T) {
	records := make(chan string, 64)
	h := slog.NewTextHandler(chanWriter(records), &slog.HandlerOptions{Level: slog.LevelDebug})
	r := demux.NewRouter()
	r.Handle("boom", demux.Func(func(context.Context, int) (int, error) { panic("kaboom") }))
	p := rpctest.Start(t, transport.Pipe, r, []demux.Option{demux.Logger(slog.New(h))})
	err := p.Mux.Call(rpctest.Context(t), "boom", 1, nil)
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodePanic, re.Code)
	rec := awaitRecord(t, records, "panicked")
	assert.Contains(t, rec, "level=ERROR")
	assert.Contains(t, rec, "method=boom")
	assert.Contains(t, rec, "kaboom")
	assert.Contains(t, rec, "goroutine", "the record carries the stack")
}

func TestPeerFromContext(t *testing.T) {
	peers := make(chan demux.Peer, 1)
	h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		p, ok := demux.PeerFromContext(ctx)
		if !ok {
			return nil, errors.New("no peer in a handler's context")
		}
		peers <- p
		return nil, nil
	})
	_, ok := demux.PeerFromContext(context.Background())
	assert.False(t, ok)

	ctx := rpctest.Context(t)
	tcp := rpctest.Start(t, transport.TCP, h, nil)
	require.NoError(t, tcp.Mux.Call(ctx, "who", nil, nil))
	p := recv(t, peers, "the handler's report of its peer")
	require.IsType(t, &net.TCPAddr{}, p.RemoteAddr)
	assert.True(t, p.RemoteAddr.(*net.TCPAddr).IP.IsLoopback())
	assert.NotNil(t, p.LocalAddr)
	assert.Nil(t, p.TLS)

	pipe := rpctest.Start(t, transport.Pipe, h, nil)
	require.NoError(t, pipe.Mux.Call(ctx, "who", nil, nil))
	p = recv(t, peers, "the handler's report of its peer")
	assert.Nil(t, p.RemoteAddr, "OS pipes have no address")
}

// chanWriter passes each log record to a channel, dropping it if the
// channel is full.
type chanWriter chan<- string

func (w chanWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

func TestRouterRejectsBadRegistrations(t *testing.T) {
	r := demux.NewRouter()
	r.Handle("a", echo())
	assert.Panics(t, func() { r.Handle("a", echo()) })
	assert.Panics(t, func() { r.Handle("", echo()) })
	assert.Panics(t, func() { r.Handle("b", nil) })
}

func TestHandlerContextEndsWhenHandlerReturns(t *testing.T) {
	kept := make(chan context.Context, 1)
	h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		kept <- ctx
		return nil, nil
	})
	p := rpctest.Start(t, transport.Pipe, h, nil)
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "x", nil, nil))
	ctx := recv(t, kept, "the handler's report of its context")
	recv(t, ctx.Done(), "the handler's context ending")
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
}

func TestGoroutinesAreReusedAndStopped(t *testing.T) {
	// Sequential calls in goroutine-per-request mode reuse an idle
	// goroutine; goleak in TestMain checks they all exit with the DeMux.
	p := rpctest.Start(t, transport.Pipe, echo(), nil)
	ctx := rpctest.Context(t)
	for i := range 100 {
		var s string
		require.NoError(t, p.Mux.Call(ctx, "echo", fmt.Sprint(i), &s))
		require.Equal(t, fmt.Sprint(i), s)
	}
	// A goroutine per request would leave up to 100 runners parked (they
	// exit only after seconds idle); reused ones are one or two, a few if
	// replies overtake the runners' parking on a busy machine.
	buf := make([]byte, 1<<20)
	runners := strings.Count(string(buf[:runtime.Stack(buf, true)]), "demux.(*serving).runner(")
	assert.Less(t, runners, 10, "runners were not reused")
	assert.Positive(t, runners)
}

func TestRequestBytesEchoesWithoutCopying(t *testing.T) {
	// Many calls at once with distinct payloads: a reply encoded from a
	// request buffer after its release would come back with another call's
	// bytes, or, built with -tags muxrpc_poison (make test runs that), with
	// the poison that released buffers are overwritten with.
	h := demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		b, err := req.Bytes()
		if err != nil {
			return nil, err
		}
		return b[len(b)/2:], nil // a part of the request's bytes
	})
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, h, nil)
		errs := make(chan error, 64)
		for i := range 64 {
			go func() {
				errs <- func() error {
					in := bytes.Repeat([]byte{byte(i)}, 2+i*997)
					var out []byte
					for range 20 {
						if err := p.Mux.Call(t.Context(), "echo", in, &out); err != nil {
							return err
						}
						if !bytes.Equal(in[len(in)/2:], out) {
							return fmt.Errorf("caller %d: reply of %d bytes is not its request's tail", i, len(out))
						}
					}
					return nil
				}()
			}()
		}
		for range 64 {
			require.NoError(t, recv(t, errs, "a caller's end"))
		}

		var s string
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", "abcdef", &s))
		assert.Equal(t, "def", s)

		err := p.Mux.Call(rpctest.Context(t), "echo", 42, nil)
		var re *frame.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, frame.CodeBadRequest, re.Code)
		assert.Contains(t, re.Message, "not a single byte string")
	})
}

func TestFuncResultThroughMiddleware(t *testing.T) {
	type sum struct{ A, B int }
	add := demux.Func(func(_ context.Context, s sum) (int, error) { return s.A + s.B, nil })
	var seen any
	logged := demux.HandlerFunc(func(ctx context.Context, req *demux.Request) (any, error) {
		res, err := add.ServeRPC(ctx, req) // a wrapper sees the typed result
		seen = res
		return res, err
	})
	router := demux.NewRouter()
	router.Handle("add", add)
	router.Handle("logged", logged)
	p := rpctest.Start(t, transport.Pipe, router, nil)
	for _, method := range []string{"add", "logged"} {
		var got int
		require.NoError(t, p.Mux.Call(rpctest.Context(t), method, sum{2, 3}, &got), method)
		assert.Equal(t, 5, got, method)
	}
	assert.Equal(t, 5, seen)
	err := p.Mux.Call(rpctest.Context(t), "add", "not a sum", nil)
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeBadRequest, re.Code)
}

func TestUnencodableResultIsAnInternalError(t *testing.T) {
	router := demux.NewRouter()
	router.Handle("plain", demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) {
		return make(chan int), nil
	}))
	router.Handle("typed", demux.Func(func(context.Context, struct{}) (chan int, error) {
		return make(chan int), nil
	}))
	router.Handle("ok", demux.Func(func(context.Context, struct{}) (int, error) { return 7, nil }))
	p := rpctest.Start(t, transport.Pipe, router, nil)
	for _, method := range []string{"plain", "typed"} {
		err := p.Mux.Call(rpctest.Context(t), method, struct{}{}, nil)
		var re *frame.RemoteError
		require.ErrorAs(t, err, &re, method)
		assert.Equal(t, frame.CodeInternal, re.Code, method)
		assert.Contains(t, re.Message, "result of "+method, method)
	}
	var n int
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "ok", nil, &n), "the stream is still usable")
	assert.Equal(t, 7, n)
}

func TestNotifyReachesATypedHandler(t *testing.T) {
	got := make(chan string, 1)
	router := demux.NewRouter()
	router.Handle("note", demux.Func(func(_ context.Context, s string) (string, error) {
		got <- s
		return "dropped: a notification gets no reply", nil
	}))
	p := rpctest.Start(t, transport.Pipe, router, nil)
	require.NoError(t, p.Mux.Notify(rpctest.Context(t), "note", "hello"))
	assert.Equal(t, "hello", recv(t, got, "the notification's arrival"))
	var n string
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "note", "call", &n), "no stray reply got in the way")
	assert.Equal(t, "call", recv(t, got, "the call's arrival"))
	assert.Equal(t, "dropped: a notification gets no reply", n)
}

func TestBlockingHandlersDoNotHoldUpQueuedRequests(t *testing.T) {
	// Every handler blocks until all of them have started: the calls
	// finish only if each queued request gets a runner while the others
	// block (or fail when the safety timeout ends their contexts).
	const calls = 64
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		var started atomic.Int32
		all := make(chan struct{})
		h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			if started.Add(1) == calls {
				close(all)
			}
			select {
			case <-all:
				return "done", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		p := rpctest.Start(t, kind, h, nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		pending := make([]*mux.Call, calls)
		replies := make([]string, calls)
		for i := range pending { // from one goroutine: they leave together
			pending[i] = p.Mux.Go(ctx, "block", nil, &replies[i])
		}
		for i, c := range pending {
			<-c.Done()
			require.NoError(t, c.Err(), "call %d (%d handlers had started)", i, started.Load())
			assert.Equal(t, "done", replies[i])
		}
	})
}

func TestHangUpIsSeenPastMaxInFlight(t *testing.T) {
	// Every handler waits for its context and the client sends more
	// requests than MaxInFlight, then hangs up: the DeMux must read on past
	// the limit to see that, and end the stream, cancel the handlers and
	// drop the requests it held without running them.
	const limit, calls = 4, 12
	modes := map[string][]demux.Option{
		"goroutines": {demux.MaxInFlight(limit)},
		"workers":    {demux.Workers(2), demux.MaxInFlight(limit)},
	}
	for name, opts := range modes {
		t.Run(name, func(t *testing.T) {
			rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
				b := rpctest.NewBlocker(calls)
				p := rpctest.Start(t, kind, b, opts)
				pending := make([]*mux.Call, calls)
				for i := range pending {
					pending[i] = p.Mux.Go(context.Background(), "wait", nil, nil)
				}
				started := min(limit, 2)
				if name == "goroutines" {
					started = limit
				}
				for range started {
					recv(t, b.Started, "a request's start")
				}
				require.NoError(t, p.Mux.Close())
				served := make(chan error, 1)
				go func() { served <- p.Wait() }()
				select {
				case err := <-served:
					assert.True(t, rpctest.IsHangUp(err), "Serve returns the hang-up, got %v", err)
				case <-time.After(time.Minute): // a safety net: this wait is the failure
					t.Fatal("Serve did not see the client hang up past MaxInFlight")
				}
				assert.Len(t, b.Started, 0, "a held or queued request ran after the hang-up")
				for _, c := range pending {
					recv(t, c.Done(), "a pending call's end")
					assert.ErrorIs(t, c.Err(), mux.ErrClosed)
				}
			})
		})
	}
}
