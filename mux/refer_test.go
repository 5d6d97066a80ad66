package mux_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// Calls whose context cannot end send a large []byte argument without
// copying it; every other call copies it. These tests hold the request
// half-written on a net.Pipe (whose writes wait for the reader) and change
// the argument at the moment a copy would matter.

// pipeServer is the server end of a net.Pipe, read and written by hand.
type pipeServer struct {
	t    *testing.T
	conn net.Conn
	raw  *rpctest.Raw // for writing frames
}

func newPipeServer(t *testing.T) (*mux.Mux, *pipeServer) {
	c, s := net.Pipe()
	// The tests read each request as one frame: no chunks.
	m := mux.New(c, mux.ChunkSize(2<<20))
	t.Cleanup(func() {
		m.Close()
		s.Close()
	})
	p := &pipeServer{t: t, conn: s, raw: rpctest.NewRaw(t, s)}
	var preface [len(frame.Preface)]byte
	p.read(preface[:])
	p.raw.Preface()
	return m, p
}

func (p *pipeServer) read(b []byte) {
	p.t.Helper()
	_, err := io.ReadFull(p.conn, b)
	require.NoError(p.t, err)
}

// requestHead reads a REQUEST's fixed header, method and payload header
// for method "x" with a bin 32 payload, and returns its xid and the
// payload's length.
func (p *pipeServer) requestHead() (xid uint64, n int) {
	p.t.Helper()
	var h [frame.HeaderSize + 2 + 1 + 5]byte
	p.read(h[:])
	require.Equal(p.t, byte(frame.TypeRequest), h[4])
	require.Equal(p.t, "x", string(h[frame.HeaderSize+2:frame.HeaderSize+3]))
	require.Equal(p.t, byte(0xc6), h[frame.HeaderSize+3], "bin 32")
	return binary.BigEndian.Uint64(h[6:14]), int(binary.BigEndian.Uint32(h[frame.HeaderSize+4:]))
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

func TestGoCopiesALargeArgument(t *testing.T) {
	m, p := newPipeServer(t)
	arg := pattern(1 << 20)
	want := bytes.Clone(arg)
	call := m.Go(context.Background(), "x", arg, nil)
	clear(arg) // Go has returned: the argument is the caller's again
	_, n := p.requestHead()
	got := make([]byte, n)
	p.read(got)
	assert.Equal(t, want, got, "the request carries the bytes as they were when Go was called")
	m.Close()
	rpctest.Await(t, call.Done(), "the call did not finish after Close")
}

func TestCancelableCallCopiesALargeArgument(t *testing.T) {
	m, p := newPipeServer(t)
	arg := pattern(1 << 20)
	want := bytes.Clone(arg)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { errs <- m.Call(ctx, "x", arg, nil) }()
	_, n := p.requestHead() // the writer is in the middle of the request
	cancel()
	require.ErrorIs(t, rpctest.Await(t, errs, "the canceled call did not return"), context.Canceled)
	clear(arg) // Call has returned: the argument is the caller's again
	got := make([]byte, n)
	p.read(got)
	assert.Equal(t, want, got, "the request carries the bytes as they were when Call was called")
}

func TestCallReferringToItsArgumentReturnsOnlyOnceItIsWritten(t *testing.T) {
	// A server that answers before it has read the whole request: the
	// call must not return, and its caller must not get the argument
	// back, while the request still refers to it.
	m, p := newPipeServer(t)
	arg := pattern(1 << 20)
	want := bytes.Clone(arg)
	errs := make(chan error, 1)
	go func() {
		err := m.Call(context.Background(), "x", arg, nil)
		clear(arg) // what a caller may do once Call has returned
		errs <- err
	}()
	xid, n := p.requestHead()
	p.raw.Send(rpctest.Response(xid, nil))
	got := make([]byte, n)
	p.read(got)
	assert.Equal(t, want, got, "the argument changed while the request was being written")
	require.NoError(t, rpctest.Await(t, errs, "the call did not return once its request was written"))
}

func TestLargeArgumentsRoundTrip(t *testing.T) {
	// Large []byte arguments with and without a context that can end, over
	// every transport: the bytes arrive intact either way.
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		r := demux.NewRouter()
		r.Handle("echo", demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
			return req.Bytes()
		}))
		p := rpctest.Start(t, kind, r, nil)
		for _, n := range []int{32<<10 - 1, 32 << 10, 1 << 20} {
			arg := pattern(n)
			var reply []byte
			require.NoError(t, p.Mux.Call(context.Background(), "echo", arg, &reply))
			assert.Equal(t, arg, reply, "%d bytes, context.Background", n)
			ctx, cancel := context.WithCancel(context.Background())
			reply = nil
			require.NoError(t, p.Mux.Call(ctx, "echo", arg, &reply))
			cancel()
			assert.Equal(t, arg, reply, "%d bytes, cancelable context", n)
		}
	})
}
