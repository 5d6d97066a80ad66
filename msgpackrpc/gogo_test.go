package msgpackrpc_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// release lets a blocked "block" handler answer.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func testRouter(g *gate) *demux.Router {
	r := demux.NewRouter()
	r.Handle("add", demux.Func(func(ctx context.Context, args []int) (int, error) {
		sum := 0
		for _, a := range args {
			sum += a
		}
		return sum, nil
	}))
	r.Handle("echo", demux.Func(func(ctx context.Context, args []any) ([]any, error) { return args, nil }))
	r.Handle("fail", demux.Func(func(ctx context.Context, args []string) (any, error) {
		return nil, errors.New(args[0])
	}))
	r.Handle("invalid", demux.Func(func(ctx context.Context, args []string) (any, error) {
		return nil, &frame.RemoteError{Code: frame.CodeBadRequest, Message: args[0]}
	}))
	r.Handle("swap", demux.Func(func(ctx context.Context, args struct {
		_msgpack struct{} `msgpack:",as_array"`
		B        msgpackrpc.Buffer
		W        msgpackrpc.Window
	}) ([]any, error) {
		return []any{args.W, args.B}, nil
	}))
	r.Handle("panic", demux.Func(func(ctx context.Context, args []any) (any, error) { panic("boom") }))
	r.Handle("block", demux.Func(func(ctx context.Context, args []int) (int, error) {
		g.entered <- struct{}{}
		<-g.release
		return args[0], nil
	}))
	return r
}

// pair connects a Mux and a DeMux, both in the msgpack-rpc dialect, over
// an OS pipe.
func pair(t *testing.T, kind transport.Kind, mopts ...mux.Option) (*mux.Mux, *gate) {
	t.Helper()
	c, s, err := transport.Pair(kind)
	require.NoError(t, err)
	g := &gate{entered: make(chan struct{}, 16), release: make(chan struct{})}
	d := demux.New(s, testRouter(g), msgpackrpc.Dialect())
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(c, append([]mux.Option{msgpackrpc.Dialect()}, mopts...)...)
	t.Cleanup(func() {
		close(g.release)
		m.Close()
		d.Close()
		rpctest.Await(t, served, "Serve did not return after Close")
	})
	return m, g
}

func TestGoToGo(t *testing.T) {
	for _, kind := range []transport.Kind{transport.Pipe, transport.Mem, transport.TCP} {
		t.Run(string(kind), func(t *testing.T) {
			m, _ := pair(t, kind)
			ctx := testCtx(t)
			var n int
			require.NoError(t, m.Call(ctx, "add", []int{1, 2, 3}, &n))
			assert.Equal(t, 6, n)
			var out []any
			require.NoError(t, m.Call(ctx, "echo", "solo", &out), "a non-slice argument arrives as [v]")
			assert.Equal(t, []any{"solo"}, out)
			big := bytes.Repeat([]byte{7}, 200<<10)
			var back []byte
			require.NoError(t, m.Call(ctx, "echo", big, &[]any{&back}), "a large []byte, sent by reference")
			assert.Equal(t, big, back)
			var buf msgpackrpc.Buffer
			var win msgpackrpc.Window
			require.NoError(t, m.Call(ctx, "swap", []any{msgpackrpc.Buffer(3), msgpackrpc.Window(1000)}, &[]any{&win, &buf}))
			assert.Equal(t, msgpackrpc.Buffer(3), buf)
			assert.Equal(t, msgpackrpc.Window(1000), win)
		})
	}
}

func TestGoToGoErrors(t *testing.T) {
	m, _ := pair(t, transport.Pipe)
	ctx := testCtx(t)
	var re *frame.RemoteError
	require.ErrorAs(t, m.Call(ctx, "fail", []string{"no luck"}, nil), &re)
	assert.Equal(t, &frame.RemoteError{Code: frame.CodeApplication, Message: "no luck"}, re)
	require.ErrorAs(t, m.Call(ctx, "invalid", []string{"bad arg"}, nil), &re)
	assert.Equal(t, &frame.RemoteError{Code: frame.CodeBadRequest, Message: "bad arg"}, re)
	require.ErrorAs(t, m.Call(ctx, "nope", nil, nil), &re)
	assert.Equal(t, frame.CodeBadRequest, re.Code, "NoMethod travels as Neovim's Validation")
	assert.Contains(t, re.Message, `"nope"`)
	require.ErrorAs(t, m.Call(ctx, "add", []string{"x"}, nil), &re)
	assert.Equal(t, frame.CodeBadRequest, re.Code)
	require.ErrorAs(t, m.Call(ctx, "panic", nil, nil), &re)
	assert.Equal(t, frame.CodeApplication, re.Code, "a panic travels as Neovim's Exception")
	assert.Contains(t, re.Message, "boom")
	var n int
	require.NoError(t, m.Call(ctx, "add", []int{2, 2}, &n), "the connection survives")
	assert.Equal(t, 4, n)
}

// TestCanceledCall checks what cancellation does without a wire form: the
// call returns at once, the peer is not told, and its late reply is
// dropped without disturbing the calls that follow.
func TestCanceledCall(t *testing.T) {
	m, g := pair(t, transport.Pipe)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- m.Call(ctx, "block", []int{1}, nil) }()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not start within 10s")
	}
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the canceled call did not return within 10s")
	}
	// A deadline works the same way.
	dctx, dcancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer dcancel()
	assert.ErrorIs(t, m.Call(dctx, "block", []int{2}, nil), context.DeadlineExceeded)
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the second handler did not start within 10s")
	}
	g.release <- struct{}{} // both handlers answer now; nobody waits for the replies
	g.release <- struct{}{}
	var n int
	require.NoError(t, m.Call(testCtx(t), "add", []int{5}, &n))
	assert.Equal(t, 5, n)
	assert.NoError(t, m.Err())
}

// TestServerAndDial serves the dialect with demux.NewServer, whose
// keepalive default must stay off, and dials it with mux.Dial.
func TestServerAndDial(t *testing.T) {
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(g.release)
	srv := demux.NewServer(testRouter(g), msgpackrpc.Dialect(), demux.Keepalive(time.Millisecond, time.Millisecond))
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		require.NoError(t, srv.Close())
		rpctest.Await(t, served, "Serve did not return after Close")
	}()
	m, err := mux.Dial(testCtx(t), "unix", ln.Addr().String(), msgpackrpc.Dialect(), mux.Keepalive(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	defer m.Close()
	var n int
	require.NoError(t, m.Call(testCtx(t), "add", []int{40, 2}, &n))
	assert.Equal(t, 42, n)
	// With keepalive on, an idle stream of a codec without PING would end
	// as unresponsive within a few milliseconds: it must stay up.
	select {
	case <-m.Done():
		t.Fatalf("the connection ended while idle: %v", m.Err())
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, m.Call(testCtx(t), "add", []int{1}, &n))
}

func TestAuthKeyRefused(t *testing.T) {
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	defer s.Close()
	m := mux.New(c, msgpackrpc.Dialect(), mux.AuthKey([]byte("secret")))
	defer m.Close()
	err = m.Call(testCtx(t), "add", nil, nil)
	assert.ErrorIs(t, err, channel.ErrAuth)
	assert.ErrorIs(t, err, mux.ErrClosed)
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// rawPeer is the far end of a Mux in the dialect, driven byte by byte.
func rawPeer(t *testing.T, opts ...mux.Option) (*mux.Mux, io.ReadWriteCloser) {
	t.Helper()
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	m := mux.New(c, append([]mux.Option{msgpackrpc.Dialect()}, opts...)...)
	t.Cleanup(func() {
		s.Close()
		m.Close()
	})
	return m, s
}

// TestPeerViolations checks that a peer breaking the protocol ends the
// connection with an error that names the violation, and that a reply for
// a msgid nobody waits for is dropped, as a late reply is.
func TestPeerViolations(t *testing.T) {
	tests := []struct {
		name, msg string
		says      string
	}{
		{"wrong array size", "92 01 01", "array of 2 elements, want 3 or 4"},
		{"string msgid", "94 00 a1 31 a4 6563686f 90", `msgid is a str ("1")`},
		{"unknown type", "94 05 01 c0 c0", "unknown msgpack-rpc message type 5"},
		{"invalid msgpack", "c1", "not an array"},
		{"params not an array", "93 02 a4 6563686f 07", "want an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, peer := rawPeer(t, demux.Handle(testRouter(nil)))
			_, err := peer.Write(unhex(t, tt.msg))
			require.NoError(t, err)
			select {
			case <-m.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the violation did not end the connection within 10s")
			}
			require.ErrorIs(t, m.Err(), frame.ErrMalformed)
			assert.Contains(t, m.Err().Error(), tt.says)
		})
	}
	t.Run("reply for an unknown msgid", func(t *testing.T) {
		m, peer := rawPeer(t)
		done := make(chan error, 1)
		var n int
		go func() { done <- m.Call(testCtx(t), "x", nil, &n) }()
		// Read the request (msgid 1), answer 77 first, then msgid 1.
		req := make([]byte, 6)
		_, err := io.ReadFull(peer, req)
		require.NoError(t, err)
		assert.Equal(t, "940001a17890", fmt.Sprintf("%x", req))
		_, err = peer.Write(unhex(t, "94 01 4d c0 05  94 01 01 c0 2a"))
		require.NoError(t, err)
		select {
		case err := <-done:
			require.NoError(t, err)
			assert.Equal(t, 42, n)
		case <-time.After(10 * time.Second):
			t.Fatal("the call did not return within 10s")
		}
		assert.NoError(t, m.Err())
	})
	t.Run("a reply to a side that made no call", func(t *testing.T) {
		c, s, err := transport.Pair(transport.Pipe)
		require.NoError(t, err)
		d := demux.New(s, testRouter(nil), msgpackrpc.Dialect())
		_, err = c.Write(unhex(t, "94 01 01 c0 c0"))
		require.NoError(t, err)
		served := make(chan error, 1)
		go func() { served <- d.Serve() }()
		err = rpctest.Await(t, served, "Serve did not end on the stray reply")
		c.Close()
		require.ErrorIs(t, err, frame.ErrMalformed)
		assert.Contains(t, err.Error(), "this side has made no call")
	})
	t.Run("Neovim-style report of our violation", func(t *testing.T) {
		m, peer := rawPeer(t)
		_, err := peer.Write(unhex(t, "94 01 00 92 00 ab 626164206d657373616765 c0"))
		require.NoError(t, err)
		rpctest.Await(t, m.Done(), "the peer's report of a violation did not end the connection")
		var re *frame.RemoteError
		require.ErrorIs(t, m.Err(), frame.ErrPeerViolation)
		require.ErrorAs(t, m.Err(), &re)
		assert.Equal(t, "bad message", re.Message)
	})
}

// TestShutdownWithoutGoAway checks what a server's graceful shutdown does
// without a GOAWAY on the wire: the request in flight is answered, a
// request that arrives meanwhile is refused with an error that says so,
// then the stream closes and the client's later calls fail with ErrClosed.
func TestShutdownWithoutGoAway(t *testing.T) {
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	d := demux.New(s, testRouter(g), msgpackrpc.Dialect())
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(c, msgpackrpc.Dialect())
	defer m.Close()
	ctx := testCtx(t)

	inFlight := m.Go(ctx, "block", []int{7}, new(int))
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not start within 10s")
	}
	shut := make(chan error, 1)
	go func() { shut <- d.Shutdown(ctx) }()
	// Wait, bounded, until the DeMux refuses new requests: until then a
	// call may still be served.
	var refused error
	deadline := time.After(10 * time.Second)
	for refused == nil {
		select {
		case <-deadline:
			t.Fatal("the shutting-down DeMux did not refuse a new request within 10s")
		default:
		}
		var n int
		if err := m.Call(ctx, "add", []int{1}, &n); err != nil {
			refused = err
		}
	}
	var re *frame.RemoteError
	require.ErrorAs(t, refused, &re)
	assert.Equal(t, frame.CodeApplication, re.Code, "CodeShutdown travels as Neovim's Exception")
	assert.Contains(t, re.Message, "shut")

	close(g.release)
	select {
	case <-inFlight.Done():
		require.NoError(t, inFlight.Err(), "the request in flight is answered")
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight was not answered within 10s")
	}
	require.NoError(t, rpctest.Await(t, shut, "Shutdown did not return"))
	require.NoError(t, rpctest.Await(t, served, "Serve did not return after Shutdown"))
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection did not end within 10s of the server closing it")
	}
	assert.ErrorIs(t, m.Call(ctx, "add", []int{1}, nil), mux.ErrClosed)
}

// TestNoStreamsInThisDialect checks that a streaming call, which has no
// wire form in msgpack-rpc, fails before anything is sent, and that the
// connection goes on.
func TestNoStreamsInThisDialect(t *testing.T) {
	m, _ := pair(t, transport.Pipe)
	ctx := testCtx(t)
	_, err := m.Stream(ctx, "add", []int{1})
	require.ErrorIs(t, err, mux.ErrNotSent)
	assert.ErrorContains(t, err, "no streams")
	var n int
	require.NoError(t, m.Call(ctx, "add", []int{1, 2}, &n))
	assert.Equal(t, 3, n)
}
