package channel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
)

// countingRWC counts the Write calls that reach the stream.
type countingRWC struct {
	io.ReadWriteCloser
	writes atomic.Int64
}

func (c *countingRWC) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.ReadWriteCloser.Write(p)
}

func cancelFrame(xid uint64) *frame.Frame {
	return &frame.Frame{Type: frame.TypeCancel, XID: xid}
}

// serve runs c.Serve with a handler that drops every frame, and returns
// Serve's result.
func serve(c *channel.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- c.Serve(func(f *frame.Frame) error {
			f.Release()
			return nil
		})
	}()
	return done
}

func TestQueuedFramesLeaveInFewWrites(t *testing.T) {
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	rwc := &countingRWC{ReadWriteCloser: a}
	c := channel.New(rwc, channel.Config{})
	ctx := rpctest.Context(t)
	const n = 1000 // 14 bytes each: all fit in the writer's buffer
	for i := range n {
		require.NoError(t, c.Send(ctx, cancelFrame(uint64(i+1))))
	}
	done := serve(c)
	peer := rpctest.NewRaw(t, b)
	require.NoError(t, peer.R.ReadPreface())
	for i := range n {
		f := peer.Read()
		require.Equal(t, uint64(i+1), f.XID, "frames keep their order")
	}
	// The writer took all n frames at once: they leave in writes of 32
	// frames, so that a peer can start on the first while the rest follow.
	assert.Equal(t, int64(1+(n+31)/32), rwc.writes.Load(), "the preface, then one write per 32 frames")
	require.NoError(t, c.Drain(ctx))
	require.NoError(t, c.Close())
	require.ErrorIs(t, rpctest.Await(t, done, "Serve did not return after Close"), channel.ErrClosed)
	b.Close()
}

func TestDrainWaitsForTheWrite(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write completes only once read
	c := channel.New(a, channel.Config{})
	done := serve(c)
	peer := rpctest.NewRaw(t, b)
	drained := make(chan error, 1)
	require.NoError(t, c.Send(rpctest.Context(t), cancelFrame(7)))
	go func() { drained <- c.Drain(context.Background()) }()
	require.NoError(t, peer.R.ReadPreface())
	assert.Equal(t, uint64(7), peer.Read().XID)
	require.NoError(t, rpctest.Await(t, drained, "Drain did not return once the frame was read"))
	require.NoError(t, c.Close())
	rpctest.Await(t, done, "Serve did not return after Close")
	b.Close()
}

func TestFullQueueBlocksSendUntilContextEnds(t *testing.T) {
	a, b := net.Pipe() // nobody reads b, so the writer blocks for good
	defer b.Close()
	c := channel.New(a, channel.Config{QueueBytes: 1024})
	done := serve(c)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Send waits only when the queue is full; then it gives up at once
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = c.Send(ctx, cancelFrame(uint64(i+1)))
	}
	require.ErrorIs(t, err, context.Canceled)

	blocked := make(chan error, 1)
	go func() { blocked <- c.Send(context.Background(), cancelFrame(1)) }()
	require.NoError(t, c.Close())
	require.ErrorIs(t, rpctest.Await(t, blocked, "Close did not free a blocked Send"), channel.ErrClosed, "Close frees a blocked Send")
	require.ErrorIs(t, rpctest.Await(t, done, "Serve did not return after Close"), channel.ErrClosed)
}

// gatedRWC holds every Write until open is closed, or fails it once the
// stream is closed.
type gatedRWC struct {
	io.ReadWriteCloser
	open   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newGatedRWC(rwc io.ReadWriteCloser) *gatedRWC {
	return &gatedRWC{ReadWriteCloser: rwc, open: make(chan struct{}), closed: make(chan struct{})}
}

func (g *gatedRWC) Write(p []byte) (int, error) {
	select {
	case <-g.open:
	case <-g.closed:
		return 0, io.ErrClosedPipe
	}
	return g.ReadWriteCloser.Write(p)
}

func (g *gatedRWC) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.ReadWriteCloser.Close()
}

// waitUntil polls cond every millisecond until it holds, and fails the
// test, naming what it waited for, if it does not within 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	const bound = 10 * time.Second
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v in vain for %s", bound, what)
		}
		<-tick.C
	}
}

// fullQueue is a Conn whose writer is stuck on the preface until open is
// closed, with a send queue of limit bytes, and the frames the tests send
// through it: small frames (xids 1 and 3) and a big one (xid 2) that fits
// in the queue alone but not beside a small one.
type fullQueue struct {
	t      testing.TB
	c      *channel.Conn
	gate   *gatedRWC
	peer   *rpctest.Raw
	served <-chan error
	big    *frame.Frame
}

func newFullQueue(t *testing.T) *fullQueue {
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	big := &frame.Frame{Type: frame.TypeResponse, XID: 2}
	require.NoError(t, big.EncodePayload(make([]byte, 100)))
	smallSize := frame.Native.FrameSize(cancelFrame(1))
	limit := frame.Native.FrameSize(big) + smallSize - 1
	gate := newGatedRWC(a)
	c := channel.New(gate, channel.Config{QueueBytes: limit})
	q := &fullQueue{t: t, c: c, gate: gate, peer: rpctest.NewRaw(t, b), served: serve(c), big: big}
	t.Cleanup(func() {
		c.Close()
		rpctest.Await(t, q.served, "Serve did not return after Close")
	})
	require.NoError(t, c.Send(rpctest.Context(t), cancelFrame(1)))
	return q
}

// send starts a Send of f in the background; its result arrives on the
// returned channel.
func (q *fullQueue) send(ctx context.Context, f *frame.Frame) <-chan error {
	done := make(chan error, 1)
	go func() { done <- q.c.Send(ctx, f) }()
	return done
}

// waiters waits until n Sends wait for room, or done has a result (a Send
// that did not wait, which the caller then sees).
func (q *fullQueue) waiters(n int, done <-chan error) {
	q.t.Helper()
	waitUntil(q.t, fmt.Sprintf("%d Sends to wait for room", n), func() bool {
		return q.c.Waiting() == n || len(done) > 0
	})
}

// line lines up two Sends behind the first frame: the big frame's, with
// ctx, and behind it a small frame's (xid 3), which would fit beside the
// first frame. It returns the channels of their results.
func (q *fullQueue) line(ctx context.Context) (bigDone, smallDone <-chan error) {
	q.t.Helper()
	bigDone = q.send(ctx, q.big)
	q.waiters(1, bigDone)
	smallDone = q.send(context.Background(), cancelFrame(3))
	q.waiters(2, smallDone)
	return bigDone, smallDone
}

func TestSendControlGoesPastAFullQueue(t *testing.T) {
	q := newFullQueue(t)
	bigDone, smallDone := q.line(context.Background())
	// A control frame is queued at once, ahead of the waiting line, while
	// the queue is within its slack.
	require.NoError(t, q.c.SendControl(rpctest.Context(t), cancelFrame(4)))
	assert.Equal(t, 2, q.c.Waiting(), "the line is untouched")

	// Past the slack it waits like any Send (here: until its ctx ends).
	huge := &frame.Frame{Type: frame.TypeResponse, XID: 5}
	require.NoError(t, huge.EncodePayload(make([]byte, 2*channel.ControlSlack)))
	ctx, cancel := context.WithCancel(context.Background())
	hugeDone := make(chan error, 1)
	go func() { hugeDone <- q.c.SendControl(ctx, huge) }()
	q.waiters(3, hugeDone)
	cancel()
	select {
	case err := <-hugeDone:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("a SendControl past the slack did not give up when its ctx ended")
	}

	close(q.gate.open)
	require.NoError(t, rpctest.Await(t, bigDone, "the big frame's Send did not return once the writer went on"))
	require.NoError(t, rpctest.Await(t, smallDone, "the small frame's Send did not return once the writer went on"))
	require.NoError(t, q.peer.R.ReadPreface())
	for _, xid := range []uint64{1, 4, 2, 3} {
		assert.Equal(t, xid, q.peer.Read().XID, "the control frame left before the waiting line")
	}
}

func TestFullQueueTakesSendsInTheirOrder(t *testing.T) {
	q := newFullQueue(t)
	// The small frame would fit beside the first, but the big one waits
	// before it: it must not get ahead of it (else big frames starve).
	bigDone, smallDone := q.line(context.Background())
	assert.Empty(t, smallDone, "a later Send waited behind the big one")

	close(q.gate.open)
	require.NoError(t, rpctest.Await(t, bigDone, "the big frame's Send did not return once the writer went on"))
	require.NoError(t, rpctest.Await(t, smallDone, "the small frame's Send did not return once the writer went on"))
	require.NoError(t, q.peer.R.ReadPreface())
	for _, xid := range []uint64{1, 2, 3} {
		assert.Equal(t, xid, q.peer.Read().XID, "frames leave in the order their Sends came")
	}
}

func TestCanceledSendLeavesTheLine(t *testing.T) {
	q := newFullQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	bigDone, smallDone := q.line(ctx)

	cancel()
	require.ErrorIs(t, rpctest.Await(t, bigDone, "the canceled Send did not return"), context.Canceled)
	assert.Nil(t, q.big.Payload, "the canceled frame was released")
	// The small frame fits beside the first: it goes in as soon as the
	// big one has left the line, though the writer is still stuck.
	require.NoError(t, rpctest.Await(t, smallDone, "the small frame's Send did not go in once the big one left the line"))
	assert.Zero(t, q.c.Waiting())

	close(q.gate.open)
	require.NoError(t, q.peer.R.ReadPreface())
	assert.Equal(t, uint64(1), q.peer.Read().XID)
	assert.Equal(t, uint64(3), q.peer.Read().XID, "the canceled frame was not written")
}

func TestCloseFreesEveryWaitingSend(t *testing.T) {
	q := newFullQueue(t)
	bigDone, smallDone := q.line(context.Background())
	require.NoError(t, q.c.Close())
	require.ErrorIs(t, rpctest.Await(t, bigDone, "Close did not free the big frame's Send"), channel.ErrClosed)
	require.ErrorIs(t, rpctest.Await(t, smallDone, "Close did not free the small frame's Send"), channel.ErrClosed)
	assert.Nil(t, q.big.Payload, "the frame of a failed Send was released")
}

func TestOversizedSendLeavesTheConnAlive(t *testing.T) {
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	defer b.Close()
	c := channel.New(a, channel.Config{MaxFrameSize: 64})
	defer c.Close()
	ctx := rpctest.Context(t)
	f := &frame.Frame{Type: frame.TypeResponse, XID: 1}
	require.NoError(t, f.EncodePayload(make([]byte, 100)))
	require.ErrorIs(t, c.Send(ctx, f), frame.ErrTooLarge)
	assert.Nil(t, f.Payload, "the payload was released")
	require.NoError(t, c.Err())
	require.NoError(t, c.Send(ctx, cancelFrame(1)))
}

func TestServeEdges(t *testing.T) {
	t.Run("close before serve", func(t *testing.T) {
		a, b, err := channel.Pipe()
		require.NoError(t, err)
		defer b.Close()
		c := channel.New(a, channel.Config{})
		require.NoError(t, c.Close())
		require.ErrorIs(t, rpctest.Await(t, serve(c), "Serve did not return on a closed Conn"), channel.ErrClosed)
		require.ErrorIs(t, c.Send(rpctest.Context(t), cancelFrame(1)), channel.ErrClosed)
		rpctest.Await(t, c.Done(), "Done was not closed after Close")
	})
	t.Run("serve twice", func(t *testing.T) {
		a, b, err := channel.Pipe()
		require.NoError(t, err)
		defer b.Close()
		c := channel.New(a, channel.Config{})
		done := serve(c)
		peer := rpctest.NewRaw(t, b)
		require.NoError(t, peer.R.ReadPreface()) // Serve has started
		require.Error(t, c.Serve(nil))
		require.NoError(t, c.Close())
		rpctest.Await(t, done, "Serve did not return after Close")
	})
	t.Run("peer hangs up before its preface", func(t *testing.T) {
		a, b, err := channel.Pipe()
		require.NoError(t, err)
		c := channel.New(a, channel.Config{})
		done := serve(c)
		require.NoError(t, b.Close())
		err = rpctest.Await(t, done, "Serve did not return after the peer hung up") // the reader or the writer notices first; both say so
		require.True(t, errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF), "%v", err)
		c.Close()
	})
	t.Run("handler error ends the stream", func(t *testing.T) {
		a, b, err := channel.Pipe()
		require.NoError(t, err)
		defer b.Close()
		c := channel.New(a, channel.Config{})
		boom := errors.New("boom")
		done := make(chan error, 1)
		go func() {
			done <- c.Serve(func(f *frame.Frame) error {
				f.Release()
				return boom
			})
		}()
		peer := rpctest.NewRaw(t, b)
		peer.Preface()
		peer.Send(*cancelFrame(3))
		require.ErrorIs(t, rpctest.Await(t, done, "Serve did not return after its handler failed"), boom)
		rpctest.Await(t, c.Done(), "Done was not closed after the handler failed")
		require.ErrorIs(t, c.Err(), boom)
		c.Close()
	})
}

func TestPipeEndsSeeEOF(t *testing.T) {
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	_, err = a.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(b, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))
	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "closing twice is fine")
	_, err = b.Read(buf)
	assert.ErrorIs(t, err, io.EOF)
	_, err = b.Write([]byte("x"))
	assert.Error(t, err, "the reader end is gone")
	require.NoError(t, b.Close())
}

// slowCloseRWC is a stream whose peer has hung up (Read says io.EOF) and
// whose Close takes until release is closed, then fails with errSlowClose.
type slowCloseRWC struct {
	entered chan struct{} // closed when Close is called
	release chan struct{}
}

var errSlowClose = errors.New("slow close failed")

func (s *slowCloseRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (s *slowCloseRWC) Write(p []byte) (int, error) { return len(p), nil }

func (s *slowCloseRWC) Close() error {
	close(s.entered)
	<-s.release
	return errSlowClose
}

func TestCloseWaitsForAClosingStream(t *testing.T) {
	rwc := &slowCloseRWC{entered: make(chan struct{}), release: make(chan struct{})}
	c := channel.New(rwc, channel.Config{})
	served := serve(c)
	select {
	case <-rwc.entered: // the reader saw EOF and is closing the stream
	case <-time.After(10 * time.Second):
		t.Fatal("the Conn did not close the stream after reading EOF")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while the stream's Close was still running", err)
	default:
	}
	close(rwc.release)
	select {
	case err := <-closed:
		require.ErrorIs(t, err, errSlowClose, "Close returns the error of closing the stream, whoever closed it")
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the stream's Close did")
	}
	select {
	case err := <-served:
		require.ErrorIs(t, err, io.EOF)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}
