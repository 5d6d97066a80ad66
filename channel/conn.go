package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/muxrpc/muxrpc/frame"
)

// ErrClosed is the error of a Conn closed by its own side with Close.
var ErrClosed = errors.New("channel: closed")

// DefaultQueueBytes bounds the bytes of frames waiting for the writer when
// Config.QueueBytes is zero. Send blocks while the queue is fuller.
const DefaultQueueBytes = 4 << 20

// maxKeptQueue is the most queue slots the writer keeps between batches.
const maxKeptQueue = 1024

// flushEvery is the most frames the writer puts in one write. A long batch
// leaves in several writes so that the peer starts on its first frames
// while the rest are still being encoded and written. Written whole, the
// batches of 256 concurrent callers moved in waves, with both ends idle
// between waves and each wave waiting for an idle CPU to wake up; that
// made p99 latency about half as long again as with writes of 32 frames
// (bench/README.md). Large frames do not wait for the count: the frame
// writer writes out what it holds once it has 64 KiB.
const flushEvery = 32

// Config tunes a Conn. The zero Config is ready to use.
type Config struct {
	// MaxFrameSize is the largest frame, as its length field counts it,
	// that the Conn reads or sends. Zero or negative means
	// frame.DefaultMaxFrameSize (16 MiB). Both sides should agree: a frame
	// above the receiver's limit ends the receiver's stream.
	MaxFrameSize int
	// QueueBytes bounds the frames waiting for the writer. Zero or negative
	// means DefaultQueueBytes. A single frame larger than the bound is
	// accepted when the queue is empty.
	QueueBytes int
	// Codec is the wire dialect; nil means frame.Native.
	Codec frame.Codec
	// Logger receives debug records about the stream; nil means silence.
	Logger *slog.Logger
	// HalfClose keeps the Conn alive when the peer ends the stream
	// cleanly (at a frame boundary) while this side may still write: Serve
	// then returns an error wrapping io.EOF with the writer still running,
	// Err stays nil, Send and Drain still work, and the owner calls Close
	// once it has sent what it owes. Without it, the end of the stream
	// ends the Conn at once.
	HalfClose bool
	// HandshakeTimeout bounds the time from Serve's start until the peer's
	// preface, and the authentication that follows it when AuthKey is set,
	// has fully arrived; the stream then ends with an error wrapping
	// ErrTimeout. Zero or negative means no bound.
	HandshakeTimeout time.Duration
	// FrameTimeout bounds the time a frame may take to arrive once its
	// header has: d, plus one second for every FrameRate bytes of it that
	// have arrived, so that a large frame on a slow but moving link arrives
	// while a peer that starts a frame and stalls, or trickles it, is cut
	// off within about d. The stream then ends with an error wrapping
	// ErrTimeout. Zero or negative means no bound.
	FrameTimeout time.Duration
	// KeepaliveInterval and KeepaliveTimeout turn keepalive on when both
	// are positive: after KeepaliveInterval without a byte from the peer,
	// the Conn sends a PING, and if nothing at all arrives within
	// KeepaliveTimeout of that PING being written (while this side's own
	// writes make no progress either), the stream ends with an error
	// wrapping ErrUnresponsive. The PING may wait in the network behind
	// what this side wrote since it last heard from the peer, so the
	// timeout grows by a second for every FrameRate bytes of that. Only a
	// peer that answers PING (PROTOCOL.md) may be sent one; with a Codec
	// that has no PING (frame.Limits), keepalive stays off.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	// AuthKey, when not empty, makes both sides prove they hold the same
	// key right after the prefaces (PROTOCOL.md), before any other frame
	// is sent or accepted. A peer without the key, or with another, ends
	// the stream with an error wrapping ErrAuth on both sides. With a Codec
	// that has no CHALLENGE (frame.Limits), Serve fails with ErrAuth.
	AuthKey []byte
	// Accepted says that this side accepted the stream (a server) rather
	// than opened it; authentication gives the two sides their roles by
	// it, so exactly one end of a stream must set it when AuthKey is set.
	Accepted bool
	// ChunkSize is the largest body a frame is written with: a REQUEST,
	// NOTIFY, RESPONSE, YIELD or PUSH with a longer body leaves split into
	// chunks (PROTOCOL.md), interleaved with the frames queued behind it.
	// Zero or negative means DefaultChunkSize. A codec that cannot split
	// (one whose Writer is not a frame.ChunkWriter) writes every frame
	// whole.
	//
	// With pacing on (QueueDelay), once only split messages have been
	// written for 4 MiB, with no frame written whole among them, chunks
	// grow to an eighth of the pace's window, up to 16 times ChunkSize:
	// with no small frame to wait behind them, longer chunks cost fewer
	// copies and system calls per byte. The first frame written whole
	// brings them back to ChunkSize. On a slow link the window, and so
	// the chunk, stays small.
	ChunkSize int
	// QueueDelay paces the chunks of split messages: the writer keeps no
	// more of them in flight (written and not yet read by the peer, which
	// it learns from the PONGs of PINGs it sends between chunks) than the
	// link carries within QueueDelay beyond its shortest round trip, and
	// at least one chunk, so that frames that overtake a large message in
	// the writer are not then stuck behind it in the network, socket
	// buffers or a relay in front of a slow link. Zero means
	// DefaultQueueDelay; negative turns pacing off.
	//
	// While frames written whole share the stream with split messages
	// (one was written within the last 4 MiB of chunks), the writer
	// allows less: four times the shortest round trip, at least 450 µs
	// and at most QueueDelay, so that on a fast link a small frame waits
	// behind well under a millisecond of chunks, while on a slow or
	// distant one it allows QueueDelay as before.
	QueueDelay time.Duration
	// Accept, if set, is asked about each frame's type as soon as its
	// header is read, before its body is read or allocated; an error ends
	// the stream with that error.
	Accept func(frame.Type) error
}

// FrameRate is the slowest rate, in bytes per second, at which a frame's
// bytes may keep arriving without running out of Config.FrameTimeout.
const FrameRate = 64 << 10

// Errors that end a stream.
var (
	// ErrUnresponsive is wrapped by the error of a stream whose peer did
	// not answer a keepalive PING in time.
	ErrUnresponsive = errors.New("channel: peer unresponsive")
	// ErrTimeout is wrapped by the error of a stream whose peer took too
	// long over its preface, its authentication or a frame.
	ErrTimeout = errors.New("channel: peer too slow")
	// ErrAuth is wrapped by the error of a stream whose peer did not prove
	// it holds the same AuthKey, or asked for a proof this side cannot
	// give.
	ErrAuth = errors.New("channel: authentication failed")
)

// Conn is one framed stream shared by many goroutines. Send, Drain, Close,
// Done and Err are safe for concurrent use; Serve is called once, by the
// owner that reads. Make one with New; the zero Conn is not usable.
type Conn struct {
	rwc        io.ReadWriteCloser
	codec      frame.Codec
	max        int
	limit      int
	chunk      int
	queueDelay time.Duration        // Config.QueueDelay; 0: no pace
	pace       atomic.Pointer[pace] // set by the writer if it paces chunks
	peerDone   atomic.Bool          // the peer has half-closed: no PONG will come
	log        *slog.Logger
	halfClose  bool
	accept     func(frame.Type) error // Config.Accept
	auth       *auth                  // nil without an AuthKey
	authErr    error                  // why auth could not be prepared
	guard      guard

	wake       chan struct{} // a token means the queue may hold frames
	ready      chan struct{} // closed once the peer's preface (and proof) has arrived
	done       chan struct{} // closed when the Conn has failed or closed
	writerDone chan struct{} // closed when the writer has exited
	watchDone  chan struct{} // closed when the watchdog has exited, or at once without one
	closed     chan struct{} // closed when rwc.Close has returned and closeErr is set

	mu        sync.Mutex
	err       error         // the first error; the Conn is dead once set
	started   bool          // Serve has been called
	queue     []frame.Frame // frames for the writer, oldest first
	urgent    []frame.Frame // frames the writer sends before the queue: PING and PONG
	queued    int           // bytes in queue
	waiters   []*sendWaiter // Sends waiting for room in queue, oldest first
	unflushed bool          // frames were queued since the last flush
	pushed    uint64        // frames queued so far
	taken     uint64        // frames the writer has taken from the queue so far
	woken     bool          // a wake token was sent since the writer last took the queue
	drained   []chan struct{}
	closeErr  error // what closing rwc returned
}

// New wraps rwc. Nothing is read or written until Serve is called; Send may
// queue frames before that.
func New(rwc io.ReadWriteCloser, cfg Config) *Conn {
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = frame.DefaultMaxFrameSize
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.Codec == nil {
		cfg.Codec = frame.Native
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		rwc:        rwc,
		codec:      cfg.Codec,
		max:        cfg.MaxFrameSize,
		chunk:      cmp.Or(max(cfg.ChunkSize, 0), DefaultChunkSize),
		queueDelay: cmp.Or(cfg.QueueDelay, DefaultQueueDelay),
		limit:      cfg.QueueBytes,
		log:        cfg.Logger,
		halfClose:  cfg.HalfClose,
		accept:     cfg.Accept,
		wake:       make(chan struct{}, 1),
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		watchDone:  make(chan struct{}),
		closed:     make(chan struct{}),
	}
	c.guard.handshake = max(cfg.HandshakeTimeout, 0)
	c.guard.frame = max(cfg.FrameTimeout, 0)
	if cfg.KeepaliveInterval > 0 && cfg.KeepaliveTimeout > 0 && carries(cfg.Codec, frame.TypePing) {
		c.guard.interval, c.guard.timeout = cfg.KeepaliveInterval, cfg.KeepaliveTimeout
	}
	c.auth, c.authErr = newAuth(cfg.AuthKey, !cfg.Accepted)
	if len(cfg.AuthKey) > 0 && !carries(cfg.Codec, frame.TypeChallenge) {
		c.auth, c.authErr = nil, fmt.Errorf("%w: the wire dialect has no authentication frames", ErrAuth)
	}
	return c
}

// carries reports whether codec has a wire form for frames of type t (see
// frame.Limits). Keepalive is off with a codec that has no PING: its peer
// could not answer one.
func carries(codec frame.Codec, t frame.Type) bool {
	l, ok := codec.(frame.Limits)
	return !ok || l.Carries(t)
}

// Codec is the wire dialect the Conn speaks.
func (c *Conn) Codec() frame.Codec { return c.codec }

// MaxFrameSize is the frame size limit in force.
func (c *Conn) MaxFrameSize() int { return c.max }

// Done is closed when the Conn has failed or been closed; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Ready is closed once Serve has read the peer's preface and found it
// good, and, with an AuthKey, once the handshake has succeeded: the peer
// speaks this dialect, and the frames it sends from then on are read. With
// a dialect that has no preface (msgpack-rpc), it is closed as soon as
// Serve starts reading. A
// Conn that fails first (a peer that speaks something else, hangs up or
// fails the handshake) never closes it: wait for Done too.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// Err returns the first error the Conn met, ErrClosed after Close, or nil
// while it is alive.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Serve writes this side's preface, reads and checks the peer's, then reads
// frames and passes each to handle until the stream ends. handle runs on
// the reading goroutine: it must not block for long, must not keep f, and
// owns f's payload (it calls f.Release or hands the frame on). An error
// from handle ends the stream with that error.
//
// Serve starts the writer goroutine and returns only after it has exited,
// except at a clean end of stream with Config.HalfClose set, when the
// writer runs on until Close. It returns the first error the Conn met: one that satisfies
// errors.Is(err, io.EOF) when the peer closed the stream (a write that
// failed because the peer hung up wraps io.EOF too), ErrClosed after
// Close.
func (c *Conn) Serve(handle func(f *frame.Frame) error) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("channel: Serve called twice")
	}
	c.started = true
	err := c.err
	c.mu.Unlock()
	if err == nil && c.authErr != nil {
		c.fail(c.authErr)
		err = c.authErr
	}
	if err != nil {
		close(c.writerDone)
		close(c.watchDone)
		return err
	}
	g := &c.guard
	var src io.Reader = c.rwc
	if g.on() {
		now := time.Now().UnixNano()
		g.lastRead.Store(now)
		g.lastWrite.Store(now)
		src = meteredReader{r: c.rwc, g: g}
		go c.watch()
	} else {
		close(c.watchDone)
	}
	go c.writeLoop()

	r := c.codec.NewReader(src, c.max)
	err = r.ReadPreface()
	if err == io.EOF {
		// No byte came at all: the peer hung up, as PROTOCOL.md says, which
		// callers test with errors.Is(err, io.EOF). (A peer that closes
		// right after connecting may not have had its preface written yet.)
		err = fmt.Errorf("peer closed the stream before its preface: %w", io.EOF)
	}
	if c.auth != nil {
		if err == nil {
			err = c.authenticate(r)
		} else {
			// A peer that hangs up or fails before its preface, while this
			// side asks for a proof, has not authenticated: a peer without
			// the key closes the stream on seeing the CHALLENGE.
			err = fmt.Errorf("%w: the stream ended before the handshake: %w", ErrAuth, err)
		}
	}
	g.handshook.Store(true)
	if err == nil {
		close(c.ready)
	}
	r.SetTypeFilter(c.acceptType)
	var f frame.Frame // reused: handle copies what it keeps
	for err == nil {
		err = r.ReadFrame(&f)
		g.endFrame()
		if err != nil {
			break
		}
		switch f.Type {
		case frame.TypePing: // answered at once, ahead of the queue
			c.sendUrgent(frame.Frame{Type: frame.TypePong, XID: f.XID})
		case frame.TypePong: // its arrival is the sign of life
			if f.XID&pacePingBit != 0 {
				if p := c.pace.Load(); p != nil {
					p.ack(f.XID)
				}
			}
		default:
			err = handle(&f)
		}
	}
	if err == io.EOF && c.halfClose && c.Err() == nil {
		// The peer sends no more PONGs: chunks must not wait for them.
		c.peerDone.Store(true)
		if p := c.pace.Load(); p != nil {
			p.stop()
		}
		return err // the writer goes on until Close
	}
	if c.auth != nil && errors.Is(err, ErrAuth) {
		c.waitAsked()
	}
	c.fail(err)
	<-c.writerDone
	<-c.watchDone
	return c.Err()
}

// acceptType checks each frame's type once its header has arrived, before
// its body is read: the frames of keepalive are the Conn's own, those of
// authentication belong to the handshake only, and the owner's Accept
// decides about the others.
func (c *Conn) acceptType(t frame.Type) error {
	c.guard.startFrame()
	switch t {
	case frame.TypePing, frame.TypePong:
		return nil
	case frame.TypeChallenge, frame.TypeProof:
		if c.auth == nil {
			return fmt.Errorf("%w: the peer sent %v: it asks for authentication, and this side has no AuthKey", ErrAuth, t)
		}
		return fmt.Errorf("%w: %v after the handshake", frame.ErrMalformed, t)
	}
	if c.accept != nil {
		return c.accept(t)
	}
	return nil
}

// maxUrgent bounds the frames waiting in the urgent queue: a peer that
// sends PINGs faster than it reads the PONGs gets fewer PONGs.
const maxUrgent = 64

// sendUrgent queues f, a PING or a PONG, for the writer ahead of the
// frames in the queue. It never waits.
func (c *Conn) sendUrgent(f frame.Frame) {
	c.mu.Lock()
	if c.err != nil || len(c.urgent) >= maxUrgent {
		c.mu.Unlock()
		return
	}
	c.urgent = append(c.urgent, f)
	c.unflushed = true
	wake := !c.woken
	c.woken = true
	c.mu.Unlock()
	c.wakeWriter(wake)
}

// Send queues f for the writer, taking over its payload: f is released
// once written, or at once if Send fails. Once f is queued, Send empties
// it and touches it no more, so f may be reused as soon as the peer could
// have answered it. Send returns once f is queued, not once it is written.
//
// While the send queue is full, Send waits in line: Sends that wait are
// queued in the order they came, and a later Send, whatever its size,
// waits behind them, so that no sender starves while others keep taking
// the room it waits for. A Send whose ctx has already ended does not wait:
// it queues f if there is room and fails otherwise. Send stops waiting
// when ctx ends or the Conn dies. A frame above the size limit fails with
// an error wrapping frame.ErrTooLarge and leaves the Conn alive.
func (c *Conn) Send(ctx context.Context, f *frame.Frame) error {
	return c.send(ctx, f, 0, nil)
}

// SendTracked is Send that also stores into seq, under the Conn's lock and
// as f joins the queue, the number f gets in the order of frames queued
// (from 1), so that once the Conn has died Unsent can tell whether f was
// written. seq is left as it was if f is never queued.
func (c *Conn) SendTracked(ctx context.Context, f *frame.Frame, seq *atomic.Uint64) error {
	return c.send(ctx, f, 0, seq)
}

// Unsent reports whether the frame that SendTracked numbered seq (0: a
// frame never queued) was certainly never written: the writer had not yet
// taken it from the queue when the Conn died, so no byte of it reached the
// stream. It reports false while the Conn is alive, and for a frame that
// the writer took, even if the write then failed before its bytes left.
func (c *Conn) Unsent(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil && (seq == 0 || seq > c.taken)
}

// ControlSlack is how far past the send queue's bound SendControl still
// queues a frame without waiting.
const ControlSlack = 64 << 10

// SendControl is Send for a small frame the reader owes the peer, such as
// the refusal of a request: it queues f at once, past the queue's bound
// and ahead of the Sends waiting in line, as long as the queue holds less
// than its bound plus ControlSlack, and waits like Send beyond that, so
// that a peer that never reads cannot grow the queue without end. A reader
// that answers this way keeps reading while the queue is full of replies.
func (c *Conn) SendControl(ctx context.Context, f *frame.Frame) error {
	return c.send(ctx, f, ControlSlack, nil)
}

// send is Send with slack bytes of room past the queue's bound for f,
// which then does not wait behind the Sends in line, and seq, if not nil,
// told f's number in the queue (see SendTracked).
func (c *Conn) send(ctx context.Context, f *frame.Frame, slack int, seq *atomic.Uint64) error {
	size := c.codec.FrameSize(f)
	if size > c.max {
		f.Release()
		return fmt.Errorf("%w: %v frame of %d bytes, limit is %d", frame.ErrTooLarge, f.Type, size, c.max)
	}
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		f.Release()
		return err
	}
	if slack > 0 && c.queued+size <= c.limit+slack || c.fits(size) && (len(c.waiters) == 0 || ctx.Err() != nil) {
		wake := c.push(f, size, seq)
		c.mu.Unlock()
		c.wakeWriter(wake)
		return nil
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		f.Release()
		return err
	}
	w := waiterPool.Get().(*sendWaiter)
	w.f, w.size, w.seq = f, size, seq
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	took := false
	select {
	case <-w.ready:
		took = true
	case <-ctx.Done():
	}
	c.mu.Lock()
	if w.signaled && !took {
		<-w.ready // sent under c.mu, so it is there: take it before w is reused
	}
	queued, err, wake := w.queued, c.err, false
	if !w.signaled { // ctx ended first: leave the line, which may let others on
		err = ctx.Err()
		c.waiters = slices.DeleteFunc(c.waiters, func(o *sendWaiter) bool { return o == w })
		wake = c.admit()
	}
	c.mu.Unlock()
	*w = sendWaiter{ready: w.ready}
	waiterPool.Put(w)
	if queued {
		return nil // f was queued and emptied: hands off
	}
	c.wakeWriter(wake)
	f.Release()
	return err
}

// sendWaiter is a Send waiting for room in the send queue. Waiters are
// pooled: a stream whose queue stays full has a waiter for most frames.
type sendWaiter struct {
	f        *frame.Frame
	size     int
	seq      *atomic.Uint64 // see SendTracked; nil for Send
	ready    chan struct{}  // gets one token once signaled
	signaled bool           // queued, or the Conn has died; set with c.mu held
	queued   bool           // f was queued (and emptied) for the waiter
}

var waiterPool = sync.Pool{New: func() any {
	return &sendWaiter{ready: make(chan struct{}, 1)}
}}

// signal ends w's wait; c.mu is held, and w is off the line.
func (w *sendWaiter) signal(queued bool) {
	w.signaled, w.queued = true, queued
	w.ready <- struct{}{} // never blocks: one token per wait
}

// fits reports whether a frame of size bytes may join the queue now: a
// frame larger than the whole bound goes in when the queue is empty.
// c.mu is held.
func (c *Conn) fits(size int) bool {
	return c.queued == 0 || c.queued+size <= c.limit
}

// push moves f into the queue and reports whether the writer needs a wake
// token for it. c.mu is held.
func (c *Conn) push(f *frame.Frame, size int, seq *atomic.Uint64) (wake bool) {
	c.pushed++
	if seq != nil {
		seq.Store(c.pushed)
	}
	c.queue = append(c.queue, *f)
	*f = frame.Frame{} // the queue owns the payload now
	c.queued += size
	c.unflushed = true
	wake = !c.woken // the writer takes the whole queue, so one token will do
	c.woken = true
	return wake
}

// admit queues the frames of the waiting Sends that now fit, oldest first,
// stopping at the first that does not, and reports whether the writer
// needs a wake token. c.mu is held.
func (c *Conn) admit() (wake bool) {
	for len(c.waiters) > 0 && c.fits(c.waiters[0].size) {
		w := c.waiters[0]
		c.waiters[0] = nil
		c.waiters = c.waiters[1:]
		wake = c.push(w.f, w.size, w.seq) || wake
		w.signal(true)
	}
	if len(c.waiters) == 0 {
		c.waiters = nil // let a long line's backing array go
	}
	return wake
}

// wakeWriter gives the writer a wake token if push or admit asked for one.
func (c *Conn) wakeWriter(wake bool) {
	if wake {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// Drain waits until every frame queued so far has been written and flushed
// to the stream, ctx ends, or the Conn dies.
func (c *Conn) Drain(ctx context.Context) error {
	c.mu.Lock()
	if c.err != nil || !c.unflushed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	ch := make(chan struct{})
	c.drained = append(c.drained, ch)
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the stream at once, dropping frames not yet written, and
// waits for the writer goroutine. The goroutine in Serve returns ErrClosed
// once its blocked read fails, which happens on Close for OS pipes, sockets
// and anything else whose Close unblocks Read. Close returns the error of
// closing the stream, if any, and is safe to call more than once. If the
// stream is already being closed because the Conn failed, Close waits for
// that to finish and returns its error.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.closed
	c.mu.Lock()
	started, err := c.started, c.closeErr
	c.mu.Unlock()
	if started {
		<-c.writerDone
		<-c.watchDone
	}
	return err
}

// fail records err as the Conn's error if it is the first, drops the queue
// and closes the stream, which ends the reader and the writer.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	queue := c.queue
	c.queue, c.queued, c.urgent = nil, 0, nil
	for _, w := range c.waiters {
		w.signal(false) // each releases its own frame
	}
	c.waiters = nil
	c.mu.Unlock()
	for i := range queue {
		queue[i].Release()
	}
	close(c.done)
	if err != ErrClosed {
		c.log.Debug("muxrpc stream failed", "err", err)
	}
	closeErr := c.rwc.Close()
	c.mu.Lock()
	c.closeErr = closeErr
	c.mu.Unlock()
	close(c.closed)
}

// writeLoop writes the preface, then queued frames, flushing when the queue
// runs dry after giving other goroutines one chance to add to it, and
// after every flushEvery frames of a long batch. Frames leave in the order
// sched gives them: by priority, with messages longer than a chunk split
// and interleaved with the frames queued behind them.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	var dst io.Writer = c.rwc
	if c.guard.keepalive() {
		dst = meteredWriter{w: c.rwc, g: &c.guard}
	}
	w := c.codec.NewWriter(dst)
	if err := c.flushed(w, w.WritePreface(), true); err != nil {
		return
	}
	if c.auth != nil && !c.writeAuth(w) {
		return
	}
	cw, split := w.(frame.ChunkWriter)
	s := newSched(c.chunk, split)
	defer s.drop()
	var p *pace
	var paced <-chan struct{} // nil without a pace: never ready
	if split && c.queueDelay > 0 {
		p = newPace(c.chunk, c.queueDelay)
		paced = p.wake
		c.pace.Store(p)
		if c.peerDone.Load() { // the peer half-closed before the pace existed
			p.stop()
		}
	}
	var batch, urgent []frame.Frame
	for {
		select {
		case <-c.wake:
		case <-paced:
		case <-c.done:
			return
		}
		yielded, stalled := false, false
		for {
			c.mu.Lock()
			urgent, c.urgent = c.urgent, urgent[:0]
			batch, c.queue = c.queue, batch[:0]
			c.taken = c.pushed // from here on, any of them may be written
			c.queued = 0
			c.woken = false
			c.admit() // this loop takes the queue again: no token needed
			c.mu.Unlock()
			if err := c.writeUrgent(w, urgent); err != nil {
				c.fail(writeError(err))
				return
			}
			if len(batch) == 0 && len(urgent) == 0 && (s.empty() || stalled) {
				if yielded {
					break
				}
				// Callers woken by the replies just read are about to
				// send: one yield lets them join this write.
				yielded = true
				runtime.Gosched()
				continue
			}
			yielded = false
			var err error
			if s.empty() && c.plain(batch) {
				if len(batch) > 0 {
					s.wroteWhole()
				}
				err = c.writeBatch(w, batch)
			} else {
				for i := range batch {
					s.add(&batch[i], c.codec.FrameSize(&batch[i])-frame.MinFrameSize)
				}
				stalled, err = c.writeSched(w, cw, s, p)
			}
			clear(batch)
			if cap(batch) > maxKeptQueue {
				batch = nil // let a burst's backing array go
			}
			if err != nil {
				c.fail(writeError(err))
				return
			}
		}
		if err := c.flushed(w, nil, s.empty()); err != nil {
			return
		}
	}
}

// plain reports whether batch can be written as it is: every frame of one
// priority, and none long enough to be split.
func (c *Conn) plain(batch []frame.Frame) bool {
	if len(batch) == 0 {
		return true
	}
	p := batch[0].Flags & frame.FlagPriorityMask
	for i := range batch {
		if batch[i].Flags&frame.FlagPriorityMask != p || c.codec.FrameSize(&batch[i])-frame.MinFrameSize > c.chunk {
			return false
		}
	}
	return true
}

// writeBatch writes the frames of batch in order and releases them.
func (c *Conn) writeBatch(w frame.Writer, batch []frame.Frame) error {
	var err error
	for i := range batch {
		if err == nil {
			err = w.WriteFrame(&batch[i])
		}
		if err == nil && (i+1)%flushEvery == 0 && i+1 < len(batch) {
			err = w.Flush()
		}
		batch[i].Release()
	}
	return err
}

// writeSched writes what s holds in its order until it is empty or new
// frames have been queued, which then join it before its next frame or
// chunk: a frame queued behind a split message waits for at most one
// chunk of it. With a pace, each chunk is followed by a PING, and while
// the pace's window is full only whole frames are written: writeSched
// reports stalled when split messages are all that is left.
func (c *Conn) writeSched(w frame.Writer, cw frame.ChunkWriter, s *sched, p *pace) (stalled bool, err error) {
	stalled, err = c.writeScheduled(w, cw, s, p)
	if err == nil && p != nil {
		if xid, ok := p.unpinged(s.mixed()); ok {
			err = w.WriteFrame(&frame.Frame{Type: frame.TypePing, XID: xid})
		}
	}
	return stalled, err
}

// writeScheduled is writeSched but for the PING owed at the end.
func (c *Conn) writeScheduled(w frame.Writer, cw frame.ChunkWriter, s *sched, p *pace) (stalled bool, err error) {
	chunked := false
	for written := 0; !s.empty(); written++ {
		if chunked && c.arrived() {
			return false, nil
		}
		o := s.next(p != nil && !p.open())
		if o == nil {
			return true, nil
		}
		if o.off == 0 && (cw == nil || o.body <= c.chunk || !frame.CanSplit(o.f.Type)) {
			err := w.WriteFrame(&o.f)
			s.wroteWhole()
			s.done(o)
			if err != nil {
				return false, err
			}
			if (written+1)%flushEvery == 0 {
				if err := w.Flush(); err != nil {
					return false, err
				}
			}
			continue
		}
		chunked = true
		piece := c.chunk
		if p != nil && !s.mixed() {
			piece = p.piece()
		}
		// Every chunk, the first with its 4-byte length of the whole
		// message, fits a frame of the size limit.
		piece = min(piece, c.max-frame.MinFrameSize-4)
		next, err := cw.WriteChunk(&o.f, o.off, piece)
		if err != nil {
			s.done(o)
			return false, err
		}
		if p != nil {
			if xid, ok := p.wrote(next-o.off, s.mixed()); ok {
				if err := w.WriteFrame(&frame.Frame{Type: frame.TypePing, XID: xid}); err != nil {
					s.done(o)
					return false, err
				}
			}
		}
		n := next - o.off
		s.wroteChunk(n)
		if o.off = next; next < o.body {
			s.requeue(o, n)
		} else {
			s.done(o)
		}
	}
	return false, nil
}

// arrived reports whether frames have been queued since the writer last
// took the queue.
func (c *Conn) arrived() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0 || len(c.urgent) > 0
}

// writeUrgent writes the PINGs and PONGs taken from the urgent queue,
// noting when a PING leaves.
func (c *Conn) writeUrgent(w frame.Writer, urgent []frame.Frame) error {
	for i := range urgent {
		if err := w.WriteFrame(&urgent[i]); err != nil {
			return err
		}
		if urgent[i].Type == frame.TypePing {
			if err := w.Flush(); err != nil {
				return err
			}
			g := &c.guard
			g.backlog.Store(g.written.Load() - g.writtenAt.Load())
			g.pingSent.Store(time.Now().UnixNano())
		}
	}
	return nil
}

// flushed flushes w unless err is already set, fails the Conn on error and
// otherwise, if idle (the writer holds nothing back), wakes Drain callers
// if nothing was queued meanwhile.
func (c *Conn) flushed(w frame.Writer, err error, idle bool) error {
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		c.fail(writeError(err))
		return err
	}
	if !idle {
		return nil
	}
	c.mu.Lock()
	if len(c.queue) == 0 && len(c.urgent) == 0 {
		c.unflushed = false
		for _, ch := range c.drained {
			close(ch)
		}
		c.drained = nil
	}
	c.mu.Unlock()
	return nil
}

// writeError says that a write failed because the peer hung up the way a
// read would: it wraps io.EOF as well as the write's own error. Otherwise
// a stream closed by the peer would end with io.EOF or with a broken pipe
// depending on which of the reader and the writer noticed first.
func writeError(err error) error {
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("%w: peer hung up: %w", io.EOF, err)
	}
	return err
}
