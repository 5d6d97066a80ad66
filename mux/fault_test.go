package mux_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// fakeServer connects a Mux to a hand-driven server end.
func fakeServer(t *testing.T, kind transport.Kind) (*mux.Mux, *rpctest.Raw) {
	c, s, err := transport.Pair(kind)
	require.NoError(t, err)
	m := mux.New(c)
	t.Cleanup(func() {
		m.Close()
		s.Close()
	})
	return m, rpctest.NewRaw(t, s)
}

func TestFaultsFromTheServer(t *testing.T) {
	cases := []struct {
		name  string
		serve func(p *rpctest.Raw, req frame.Frame)
		is    error
	}{
		{"eof inside a reply", func(p *rpctest.Raw, req frame.Frame) {
			p.Write([]byte{0, 0, 0, 30, byte(frame.TypeResponse), 0, 0, 0, 0})
			p.RWC.Close()
		}, io.ErrUnexpectedEOF},
		{"reply over the limit", func(p *rpctest.Raw, req frame.Frame) {
			p.Write([]byte{0x7f, 0xff, 0xff, 0xff})
		}, frame.ErrTooLarge},
		{"garbage type", func(p *rpctest.Raw, req frame.Frame) {
			p.Write([]byte{0, 0, 0, 10, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		}, frame.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
				m, srv := fakeServer(t, kind)
				errs := make(chan error, 3)
				for range 3 {
					go func() { errs <- m.Call(context.Background(), "x", 1, nil) }()
				}
				srv.Preface()
				require.NoError(t, srv.R.ReadPreface())
				var req frame.Frame
				for range 3 {
					req = srv.Read()
				}
				c.serve(srv, req)
				for range 3 {
					err := rpctest.Await(t, errs, "a call did not fail when the server broke the stream")
					assert.ErrorIs(t, err, mux.ErrClosed)
					assert.ErrorIs(t, err, c.is)
				}
			})
		})
	}
}

func TestRequestToAMuxThatDoesNotServeIsAnsweredNoMethod(t *testing.T) {
	// PROTOCOL.md §2: a side that serves nothing answers a REQUEST with
	// NoMethod and drops a NOTIFY; its stream and its calls go on.
	m, srv := fakeServer(t, transport.Pipe)
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())
	srv.Send(frame.Frame{Type: frame.TypeNotify, Method: "dropped", Payload: []byte{0xc0}})
	srv.Send(rpctest.Request(7, "callback", nil))
	answer := srv.Read()
	assert.Equal(t, frame.TypeError, answer.Type)
	assert.Equal(t, uint64(7), answer.XID)
	require.NotNil(t, answer.Err)
	assert.Equal(t, frame.CodeNoMethod, answer.Err.Code)
	assert.Contains(t, answer.Err.Message, "callback")

	result := make(chan error, 1)
	var got string
	go func() { result <- m.Call(context.Background(), "x", nil, &got) }()
	req := srv.Read()
	srv.Send(rpctest.Response(req.XID, "still alive"))
	select {
	case err := <-result:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the call after the refused request got no reply")
	}
	assert.Equal(t, "still alive", got)
}

func TestWrongPeerFailsCalls(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		m, srv := fakeServer(t, kind)
		srv.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		err := m.Call(rpctest.Context(t), "x", nil, nil)
		assert.ErrorIs(t, err, mux.ErrClosed)
		assert.ErrorIs(t, err, frame.ErrBadPreface)
		assert.Contains(t, err.Error(), "looks like HTTP")
	})
}

// TestSilentPeerFailsCallsAfterTheHandshakeTimeout dials a peer that
// accepts and never says a word: with HandshakeTimeout the stream ends
// when it passes, failing the call waiting, though keepalive, which
// needs the peer's preface first, would never notice.
func TestSilentPeerFailsCallsAfterTheHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	m, err := mux.Dial(rpctest.Context(t), "tcp", ln.Addr().String(), mux.HandshakeTimeout(50*time.Millisecond))
	require.NoError(t, err)
	defer m.Close()
	silent := rpctest.Await(t, accepted, "the listener did not accept the Mux's connection")
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err = m.Call(ctx, "x", nil, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, mux.ErrClosed)
	assert.ErrorIs(t, err, channel.ErrTimeout)
	assert.NoError(t, ctx.Err(), "the call ended with the stream, not with its context")
}

func TestLateAndUnknownRepliesAreDropped(t *testing.T) {
	m, srv := fakeServer(t, transport.Pipe)
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())
	result := make(chan error, 1)
	var got string
	go func() { result <- m.Call(context.Background(), "x", nil, &got) }()
	req := srv.Read()
	srv.Send(rpctest.Response(req.XID+100, "not yours"))
	srv.Send(rpctest.Response(req.XID, "yours"))
	require.NoError(t, rpctest.Await(t, result, "the call did not get its own reply"))
	assert.Equal(t, "yours", got)
}

func TestCancelSendsCancelFrame(t *testing.T) {
	m, srv := fakeServer(t, transport.Pipe)
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- m.Call(ctx, "x", nil, nil) }()
	req := srv.Read()
	cancel()
	assert.ErrorIs(t, rpctest.Await(t, result, "the canceled call did not return"), context.Canceled)
	f := srv.Read()
	assert.Equal(t, frame.TypeCancel, f.Type)
	assert.Equal(t, req.XID, f.XID)
	srv.Send(rpctest.Response(req.XID, "late")) // dropped
	go func() { result <- m.Call(context.Background(), "y", nil, nil) }()
	next := srv.Read()
	assert.Greater(t, next.XID, req.XID, "xids are not reused")
	srv.Send(rpctest.Response(next.XID, nil))
	require.NoError(t, rpctest.Await(t, result, "the call after the canceled one got no reply"))
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct {
	io.ReadWriteCloser
	n int
}

var errInjected = errors.New("injected write failure")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n, _ := w.ReadWriteCloser.Write(p[:w.n])
		w.n = 0
		return n, errInjected
	}
	w.n -= len(p)
	return w.ReadWriteCloser.Write(p)
}

func TestWriteErrorFailsCalls(t *testing.T) {
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	defer s.Close()
	m := mux.New(&failingWriter{ReadWriteCloser: c, n: len(frame.Preface) + 5})
	defer m.Close()
	err = m.Call(rpctest.Context(t), "x", nil, nil)
	assert.ErrorIs(t, err, mux.ErrClosed)
	assert.ErrorIs(t, err, errInjected)
}

func TestShortReadsAreFine(t *testing.T) {
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	oneByte := struct {
		io.Reader
		io.Writer
		io.Closer
	}{iotest.OneByteReader(c), c, c}
	m := mux.New(oneByte)
	defer m.Close()
	srv := rpctest.NewRaw(t, s)
	defer s.Close()
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())
	result := make(chan error, 1)
	var got string
	go func() { result <- m.Call(context.Background(), "x", nil, &got) }()
	req := srv.Read()
	srv.Send(rpctest.Response(req.XID, "one byte at a time"))
	require.NoError(t, rpctest.Await(t, result, "the call got no reply read one byte at a time"))
	assert.Equal(t, "one byte at a time", got)
}

func TestBlockedWriterDoesNotWedgeCallersOrClose(t *testing.T) {
	c, s := net.Pipe() // synchronous: writes block until the other end reads
	defer s.Close()
	m := mux.New(c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := m.Call(ctx, "x", nil, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, m.Close(), "Close unblocks the writer and returns")
	assert.ErrorIs(t, m.Call(rpctest.Context(t), "x", nil, nil), mux.ErrClosed)
}

func TestFullSendQueueHonoursContext(t *testing.T) {
	c, s := net.Pipe() // nobody reads s: the writer blocks and the queue fills
	defer s.Close()
	m := mux.New(c)
	defer m.Close()
	big := make([]byte, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	const calls = 8 // 8 MiB: twice what the send queue holds
	errs := make(chan error, calls)
	for range calls {
		go func() { errs <- m.Call(ctx, "x", big, nil) }()
	}
	cancel() // ends calls parked on the full queue and those already queued
	for range calls {
		assert.ErrorIs(t, rpctest.Await(t, errs, "a call on the full send queue did not end with its context"), context.Canceled)
	}
}

// writeSignal announces each Write on its stream before making it.
type writeSignal struct {
	net.Conn
	writes chan<- struct{}
}

func (w writeSignal) Write(b []byte) (int, error) {
	w.writes <- struct{}{}
	return w.Conn.Write(b)
}

func TestErrNotSentOnlyForRequestsNeverWritten(t *testing.T) {
	c, s := net.Pipe() // synchronous: a write blocks until the peer reads it
	defer s.Close()
	writes := make(chan struct{}, 16)
	m := mux.New(writeSignal{c, writes})
	defer m.Close()
	srv := rpctest.NewRaw(t, s)
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())
	nthWrite := func(what string) {
		t.Helper()
		select {
		case <-writes:
		case <-time.After(10 * time.Second):
			t.Fatalf("the writer did not start writing %s", what)
		}
	}
	nthWrite("the preface")

	written := m.Go(context.Background(), "written", nil, nil)
	nthWrite("the first request")
	srv.Read() // the first request has left whole; nothing answers it
	takenByTheWriter := m.Go(context.Background(), "taken", nil, nil)
	nthWrite("the second request") // nobody reads: the writer is stuck in it
	queued := []*mux.Call{
		m.Go(context.Background(), "queued1", nil, nil),
		m.Go(context.Background(), "queued2", nil, nil),
	}
	require.NoError(t, m.Close())

	for _, call := range []*mux.Call{written, takenByTheWriter} {
		rpctest.Await(t, call.Done(), "a call whose request may have been written did not fail on Close")
		assert.ErrorIs(t, call.Err(), mux.ErrClosed)
		assert.NotErrorIs(t, call.Err(), mux.ErrNotSent, "a request that may have been written is 'maybe ran'")
	}
	for _, call := range queued {
		rpctest.Await(t, call.Done(), "a call still in the send queue did not fail on Close")
		assert.ErrorIs(t, call.Err(), mux.ErrClosed)
		assert.ErrorIs(t, call.Err(), mux.ErrNotSent, "a request still in the queue was never written")
	}
	later := m.Call(rpctest.Context(t), "later", nil, nil)
	assert.ErrorIs(t, later, mux.ErrNotSent)
	assert.ErrorIs(t, later, mux.ErrClosed)
}

func TestErrNotSentBeforeSending(t *testing.T) {
	m, srv := fakeServer(t, transport.Pipe)
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := m.Call(ctx, "x", nil, nil)
	assert.ErrorIs(t, err, mux.ErrNotSent)
	assert.ErrorIs(t, err, context.Canceled)

	err = m.Call(rpctest.Context(t), "x", make(chan int), nil)
	assert.ErrorIs(t, err, mux.ErrNotSent, "arguments that do not encode")

	// A call sent before the GOAWAY is answered as the server chooses; one
	// started after it is not sent.
	result := make(chan error, 1)
	go func() { result <- m.Call(context.Background(), "before", nil, nil) }()
	req := srv.Read()
	srv.Send(frame.Frame{Type: frame.TypeGoAway, Err: &frame.RemoteError{Code: frame.CodeShutdown, Message: "bye"}})
	srv.Send(frame.Frame{Type: frame.TypeError, XID: req.XID, Err: &frame.RemoteError{Code: frame.CodeShutdown, Message: "bye"}})
	err = rpctest.Await(t, result, "the call sent before the GOAWAY got no answer")
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeShutdown, re.Code, "refused by the server: did not run")
	err = m.Notify(rpctest.Context(t), "after", nil)
	assert.ErrorIs(t, err, mux.ErrNotSent)
	assert.ErrorIs(t, err, mux.ErrClosed)
	assert.ErrorAs(t, err, &re)
}
