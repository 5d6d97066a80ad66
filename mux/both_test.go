package mux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
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

// bothKinds are the transports the two-way tests run over.
var bothKinds = []transport.Kind{transport.Pipe, transport.Mem, transport.TCP, transport.Unix}

// waitLimit bounds every wait in these tests; reaching it is the failure.
const waitLimit = rpctest.WaitLimit

// awaitGroup waits for wg or fails the test saying what did not happen.
func awaitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	rpctest.Await(t, done, what)
}

// awaitErr runs f on a goroutine of its own and returns what it returns,
// or fails the test saying what did not happen if it has not returned
// within waitLimit.
func awaitErr(t *testing.T, f func() error, what string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	return rpctest.Await(t, done, what)
}

// namedRouter answers "<name>.echo" with its argument prefixed by name.
func namedRouter(name string) *demux.Router {
	r := demux.NewRouter()
	r.Handle(name+".echo", demux.Func(func(_ context.Context, s string) (string, error) {
		return name + ":" + s, nil
	}))
	return r
}

// twoWay connects two Muxes that each serve a router over kind.
func twoWay(t *testing.T, kind transport.Kind, a, b demux.Handler, opts ...mux.Option) (*mux.Mux, *mux.Mux) {
	t.Helper()
	ca, cb, err := transport.Pair(kind)
	require.NoError(t, err)
	ma := mux.New(ca, append([]mux.Option{demux.Handle(a)}, opts...)...)
	mb := mux.New(cb, append([]mux.Option{demux.Handle(b)}, opts...)...)
	t.Cleanup(func() {
		ma.Close()
		mb.Close()
	})
	return ma, mb
}

func TestBothEndsCallAndServeAtOnce(t *testing.T) {
	for _, kind := range bothKinds {
		t.Run(string(kind), func(t *testing.T) {
			ma, mb := twoWay(t, kind, namedRouter("a"), namedRouter("b"))
			const n = 64
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			for i := range n {
				wg.Add(2)
				go func() {
					defer wg.Done()
					var got string
					if err := ma.Call(context.Background(), "b.echo", fmt.Sprint(i), &got); err != nil || got != fmt.Sprint("b:", i) {
						errs <- fmt.Errorf("a called b with %d: got %q, %v", i, got, err)
					}
				}()
				go func() {
					defer wg.Done()
					var got string
					if err := mb.Call(context.Background(), "a.echo", fmt.Sprint(i), &got); err != nil || got != fmt.Sprint("a:", i) {
						errs <- fmt.Errorf("b called a with %d: got %q, %v", i, got, err)
					}
				}()
			}
			awaitGroup(t, &wg, "the calls both ways did not all return")
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// pingPong serves "<name>.down": with depth d > 0 it calls "<other>.down"
// with d-1 back over the connection the request came on, and returns its
// name followed by what that call returned.
func pingPong(name, other string) *demux.Router {
	r := demux.NewRouter()
	r.Handle(name+".down", demux.Func(func(ctx context.Context, d int) (string, error) {
		if d == 0 {
			return name, nil
		}
		peer, ok := mux.FromContext(ctx)
		if !ok {
			return "", errors.New("no Mux in a handler's context")
		}
		var rest string
		if err := peer.Call(ctx, other+".down", d-1, &rest); err != nil {
			return "", err
		}
		return name + rest, nil
	}))
	return r
}

func TestNestedCallbacksManyLevelsDeep(t *testing.T) {
	// The client calls the server, whose handler calls the client back,
	// whose handler calls the server again, and so on: each level waits
	// for the next while the reader keeps reading replies.
	for _, kind := range bothKinds {
		t.Run(string(kind), func(t *testing.T) {
			c, s, err := transport.Pair(kind)
			require.NoError(t, err)
			d := demux.New(s, pingPong("s", "c"))
			served := make(chan error, 1)
			go func() { served <- d.Serve() }()
			m := mux.New(c, demux.Handle(pingPong("c", "s")))
			defer func() {
				require.NoError(t, m.Close())
				rpctest.Await(t, served, "Serve did not return after the client closed")
				d.Close()
			}()
			var got string
			require.NoError(t, m.Call(rpctest.Context(t), "s.down", 7, &got))
			assert.Equal(t, "scscscsc", got)

			// Many chains at once.
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var got string
					if err := m.Call(context.Background(), "s.down", i%6, &got); err != nil {
						t.Errorf("chain %d: %v", i, err)
					}
				}()
			}
			awaitGroup(t, &wg, "the chains of callbacks did not all return")
		})
	}
}

func TestNestedCallbacksWithOneWorkerEachSide(t *testing.T) {
	// Workers(1) on both sides. A chain that enters each side once works:
	// the client's call runs on the server's worker, the callback on the
	// client's. A chain that comes back to a side whose one worker is
	// busy waits for it: that is the documented deadlock, and it ends
	// when the call's context does, after which both sides work again.
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	d := demux.New(s, pingPong("s", "c"), demux.Workers(1))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(c, demux.Handle(pingPong("c", "s")), demux.Workers(1))
	defer func() {
		require.NoError(t, m.Close())
		rpctest.Await(t, served, "Serve did not return after the client closed")
		d.Close()
	}()
	var got string
	require.NoError(t, m.Call(rpctest.Context(t), "s.down", 1, &got))
	assert.Equal(t, "sc", got)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = m.Call(ctx, "s.down", 2, &got)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the third level waits for the server's only worker")

	// Once the chain has unwound, the single workers serve again.
	done := make(chan error, 1)
	go func() { done <- m.Call(context.Background(), "s.down", 1, &got) }()
	require.NoError(t, rpctest.Await(t, done, "a call after the deadlocked chain got no answer"))
	assert.Equal(t, "sc", got)
}

func TestFromContext(t *testing.T) {
	_, ok := mux.FromContext(context.Background())
	assert.False(t, ok, "a context no handler received has no Mux")

	got := make(chan [2]*mux.Mux, 1)
	r := demux.NewRouter()
	r.Handle("same", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		first, _ := mux.FromContext(ctx)
		derived, cancel := context.WithCancel(ctx)
		defer cancel()
		second, _ := mux.FromContext(derived)
		got <- [2]*mux.Mux{first, second}
		return nil, nil
	}))
	p := rpctest.Start(t, transport.Pipe, r, nil)
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "same", nil, nil))
	pair := rpctest.Await(t, got, "the handler did not run")
	require.NotNil(t, pair[0])
	assert.Same(t, pair[0], pair[1], "one connection, one Mux")

	// A server-side Mux fails at once once its connection is gone.
	p.Mux.Close()
	rpctest.Await(t, pair[0].Done(), "the server's Mux did not see the connection end")
	err := pair[0].Call(rpctest.Context(t), "x", nil, nil)
	assert.ErrorIs(t, err, mux.ErrClosed)
}

func TestServerPushesNotificationsToSubscribers(t *testing.T) {
	// Pub/sub: "subscribe" keeps the caller's Mux; the server later
	// notifies every subscriber on its own connection.
	var mu sync.Mutex
	var subscribers []*mux.Mux
	r := demux.NewRouter()
	r.Handle("subscribe", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		m, _ := mux.FromContext(ctx)
		mu.Lock()
		subscribers = append(subscribers, m)
		mu.Unlock()
		return nil, nil
	}))
	s := demux.NewServer(r)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		require.NoError(t, s.Close())
		assert.ErrorIs(t, rpctest.Await(t, served, "Serve did not return"), demux.ErrServerClosed)
	}()

	const clients = 3
	news := make(chan string, clients)
	for i := range clients {
		onNews := demux.NewRouter()
		onNews.Handle("news", demux.Func(func(_ context.Context, s string) (any, error) {
			news <- fmt.Sprintf("client %d got %s", i, s)
			return nil, nil
		}))
		m, err := mux.Dial(rpctest.Context(t), "tcp", ln.Addr().String(), demux.Handle(onNews))
		require.NoError(t, err)
		defer m.Close()
		require.NoError(t, m.Call(rpctest.Context(t), "subscribe", nil, nil))
	}
	mu.Lock()
	for _, m := range subscribers {
		require.NoError(t, m.Notify(rpctest.Context(t), "news", "extra"))
	}
	mu.Unlock()
	var got []string
	for range clients {
		got = append(got, rpctest.Await(t, news, "a subscriber got no notification"))
	}
	assert.ElementsMatch(t, []string{"client 0 got extra", "client 1 got extra", "client 2 got extra"}, got)
}

func TestDoneAndErrWithoutACall(t *testing.T) {
	c, s, err := transport.Pair(transport.TCP)
	require.NoError(t, err)
	d := demux.New(s, namedRouter("s"))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(c)
	defer m.Close()
	var got string
	require.NoError(t, m.Call(rpctest.Context(t), "s.echo", "x", &got))
	select {
	case <-m.Done():
		t.Fatal("Done is closed while the stream is alive")
	default:
	}
	assert.NoError(t, m.Err())

	require.NoError(t, d.Close())
	rpctest.Await(t, served, "Serve did not return after Close")
	rpctest.Await(t, m.Done(), "the Mux did not see the server close")
	assert.ErrorIs(t, m.Err(), mux.ErrClosed)
	assert.True(t, rpctest.IsHangUp(m.Err()), "Err names the hang-up: %v", m.Err())
}

// halfCloser is a stream whose writing side the test can close alone.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// osPipes is a stream of two OS pipes whose writing end closes alone, as a
// parent closes a child's stdin while it still reads the child's stdout.
type osPipes struct {
	r, w *os.File
}

func (p osPipes) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p osPipes) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p osPipes) CloseWrite() error           { return p.w.Close() }
func (p osPipes) Close() error                { return errors.Join(p.r.Close(), p.w.Close()) }

func TestHalfCloseGetsEveryReply(t *testing.T) {
	// The client sends 20 requests and closes its writing side; the server
	// finishes every handler and delivers every reply before it closes.
	makers := map[string]func(t *testing.T) (client halfCloser, server io.ReadWriteCloser){
		"tcp": func(t *testing.T) (halfCloser, io.ReadWriteCloser) {
			c, s, err := transport.Pair(transport.TCP)
			require.NoError(t, err)
			return c.(*net.TCPConn), s
		},
		"pipes": func(t *testing.T) (halfCloser, io.ReadWriteCloser) {
			toServer, fromClient, err := os.Pipe()
			require.NoError(t, err)
			toClient, fromServer, err := os.Pipe()
			require.NoError(t, err)
			return osPipes{r: toClient, w: fromClient}, osPipes{r: toServer, w: fromServer}
		},
	}
	for name, mk := range makers {
		t.Run(name, func(t *testing.T) {
			client, server := mk(t)
			defer client.Close()
			b := rpctest.NewBlocker(20)
			d := demux.New(server, b)
			served := make(chan error, 1)
			go func() { served <- d.Serve() }()
			defer d.Close()

			raw := rpctest.NewRaw(t, client)
			raw.Preface()
			for xid := uint64(1); xid <= 20; xid++ {
				raw.Send(rpctest.Request(xid, "work", nil))
			}
			for range 20 {
				rpctest.Await(t, b.Started, "a request did not start")
			}
			require.NoError(t, client.CloseWrite())
			require.NoError(t, raw.R.ReadPreface())
			b.Release()
			answered := map[uint64]bool{}
			for len(answered) < 20 {
				f := raw.Read()
				switch f.Type {
				case frame.TypeGoAway: // the server saw the EOF
				case frame.TypeResponse:
					var s string
					require.NoError(t, frame.DecodePayload(f.Payload, &s))
					assert.Equal(t, "released", s)
					answered[f.XID] = true
				default:
					t.Fatalf("unexpected %v", &f)
				}
				f.Release()
			}
			err := rpctest.Await(t, served, "Serve did not return once every reply was written")
			assert.ErrorIs(t, err, io.EOF)
			for { // the server closes after the last reply, and perhaps a GOAWAY
				var f frame.Frame
				err := raw.R.ReadFrame(&f)
				if err != nil {
					assert.ErrorIs(t, err, io.EOF)
					break
				}
				assert.Equal(t, frame.TypeGoAway, f.Type, "nothing but a GOAWAY after the last reply")
			}
		})
	}
}

// TestHalfCloseGetsLargeReplies checks that a server delivers replies
// larger than a chunk to a client that has closed its writing side: the
// chunks go on though no PONG can come back to pace them.
func TestHalfCloseGetsLargeReplies(t *testing.T) {
	c, s, err := transport.Pair(transport.TCP)
	require.NoError(t, err)
	client := c.(*net.TCPConn)
	defer client.Close()
	gate := make(chan struct{})
	r := demux.NewRouter()
	r.Handle("big", demux.Func(func(ctx context.Context, n int) ([]byte, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return bytes.Repeat([]byte{'b'}, n), nil
	}))
	d := demux.New(s, r)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer d.Close()

	raw := rpctest.NewRaw(t, client)
	raw.Preface()
	const n = 1 << 20
	for xid := uint64(1); xid <= 3; xid++ {
		raw.Send(rpctest.Request(xid, "big", n))
	}
	require.NoError(t, client.CloseWrite())
	// Bounds every read below: a reply stuck waiting for a PONG fails the
	// read, and the test, with a timeout.
	require.NoError(t, client.SetReadDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, raw.R.ReadPreface())
	close(gate)
	answered := map[uint64]int{}
	for len(answered) < 3 {
		f := raw.Read()
		switch f.Type {
		case frame.TypeGoAway, frame.TypePing: // the EOF seen; PINGs this peer cannot answer
		case frame.TypeResponse:
			var b []byte
			require.NoError(t, frame.DecodePayload(f.Payload, &b))
			answered[f.XID] = len(b)
		default:
			t.Fatalf("unexpected %v", &f)
		}
		f.Release()
	}
	assert.Equal(t, map[uint64]int{1: n, 2: n, 3: n}, answered)
	assert.ErrorIs(t, rpctest.Await(t, served, "Serve did not return once every reply was written"), io.EOF)
}

func TestFullHangUpCancelsHandlersInFlight(t *testing.T) {
	// A client that closes its whole stream, not only its writing side,
	// is owed nothing: the server finds it cannot write, cancels the
	// handlers that are still running and returns, without waiting for
	// them to finish on their own.
	for _, kind := range bothKinds {
		t.Run(string(kind), func(t *testing.T) {
			c, s, err := transport.Pair(kind)
			require.NoError(t, err)
			blocker := rpctest.NewBlocker(1)
			d := demux.New(s, blocker)
			served := make(chan error, 1)
			go func() { served <- d.Serve() }()
			defer d.Close()
			m := mux.New(c)
			call := m.Go(context.Background(), "work", nil, new(string))
			rpctest.Await(t, blocker.Started, "the request did not start")
			require.NoError(t, m.Close())
			rpctest.Await(t, call.Done(), "the call in flight did not fail when the client closed")
			assert.ErrorIs(t, call.Err(), mux.ErrClosed)
			err = rpctest.Await(t, served, "Serve waited for a handler of a client that is gone")
			assert.True(t, rpctest.IsHangUp(err), "Serve reports the hang-up, got %v", err)
		})
	}
}
