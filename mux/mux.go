package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/core"
)

// ErrNotSent is wrapped, beside the cause, by the error of a call that
// failed before any byte of its request was written to the stream: its
// context had ended, its arguments did not encode or were too large, the
// Mux was closed or the peer had sent GOAWAY, or the stream died while the
// request still waited in the send queue. Its handler certainly did not
// run, so the call is safe to retry, on this Mux or another. A call whose
// request may have been written never wraps it: if the stream then dies,
// its error wraps ErrClosed and the cause alone, and the handler may or
// may not have run.
var ErrNotSent = errors.New("mux: request not sent")

// notSent marks err as the error of a call whose request was not written.
func notSent(err error) error { return &notSentError{err} }

type notSentError struct{ err error }

func (e *notSentError) Error() string   { return e.err.Error() + " (request not sent)" }
func (e *notSentError) Unwrap() []error { return []error{ErrNotSent, e.err} }

// ErrClosed is wrapped by the error of every call that fails because the
// stream is gone: closed by Close, ended by the peer, broken by an I/O
// error or a protocol violation, or refusing new calls after the server
// said it is shutting down. The error also wraps the cause.
var ErrClosed = errors.New("mux: closed")

// Mux sends calls over one stream and routes each reply to its caller. It
// is safe for concurrent use by any number of goroutines. Make one with
// New, Dial or Start, or get the one of the connection a handler serves
// with FromContext; the zero Mux is not usable.
//
// A Mux may serve the peer's calls on the same stream too: give it
// demux.Handle(h) among its options.
type Mux struct {
	conn *core.Conn
	ch   *channel.Conn
	log  *slog.Logger

	mu      sync.Mutex
	pending pendingTable       // calls waiting for a reply, by xid; guarded by mu
	streams map[uint64]*Stream // the streams among them; guarded by mu
	err     error              // set once the Mux can take no new calls; guarded by mu
	refuse  chan struct{}      // closed, under mu, when err is set (Refusing)

	finished int // calls the reader has finished; only the reader touches it
}

// yieldEvery is how many calls the reader finishes before it yields its
// processor. A finished caller is woken onto the run queue of the
// processor that woke it; a reader that finished every reply of a long
// read before yielding would leave dozens of callers queued on one
// processor, and if the operating system then stops that thread for a
// scheduler tick (a few milliseconds on a busy small machine) they all wait
// for it, while the other processor, busy with its own work, does not take
// them. Yielding every few replies lets the woken callers run, and send
// their next requests, while the reader waits in the global run queue,
// which every processor serves. At 256 concurrent callers on 2 CPUs this
// brought p99 latency from about twice the raw baseline's to level with it
// and raised calls/s by a fifth (bench/README.md); a lone caller is not
// affected, as the reader then parks in its read after every reply anyway.
// Over net.Pipe, whose reads and writes are hand-offs inside the process
// rather than syscalls, the yields cost 4-18% of calls/s at 256 callers.
const yieldEvery = 8

// New starts a Mux over rwc, whose other end must be served by a
// demux.DeMux (or by another Mux that serves). It never blocks on I/O: the
// preface exchange happens in the background, and if it fails, calls fail
// with an error wrapping ErrClosed. The Mux owns rwc from now on; Close
// closes it.
//
// With demux.Handle(h) among opts, the Mux also serves the requests the
// peer sends on the same stream, with the other options of package demux
// (demux.Workers, demux.MaxInFlight) applying to that serving half.
func New(rwc io.ReadWriteCloser, opts ...Option) *Mux {
	return start(rwc, core.NewConfig(opts))
}

// start makes the connection for cfg over rwc, attaches a Mux and starts
// the reader, which Close waits for.
func start(rwc io.ReadWriteCloser, cfg core.Config) *Mux {
	conn := core.New(rwc, cfg)
	m := attach(conn)
	go conn.Serve()
	return m
}

// attach returns the Mux of conn, making it if conn has none yet.
func attach(conn *core.Conn) *Mux {
	r := conn.SetCaller(func() core.Caller {
		m := &Mux{conn: conn, ch: conn.Channel(), log: conn.Logger(), refuse: make(chan struct{})}
		m.pending.narrow = newNarrowTable(m.ch.Codec())
		return (*replies)(m)
	})
	return (*Mux)(r.(*replies))
}

// FromContext returns the Mux that calls the peer whose request ctx
// belongs to: within a handler (and in contexts derived from its ctx), the
// other end of the connection the request came on, so that a handler can
// call back its caller or keep the Mux to send it notifications later. It
// returns false for a context that no handler received. Every call of it
// for one connection returns the same Mux; closing that Mux closes the
// connection, and waits for its handlers, so a handler must not close it.
func FromContext(ctx context.Context) (*Mux, bool) {
	conn := core.FromContext(ctx)
	if conn == nil {
		return nil, false
	}
	return attach(conn), true
}

// Close closes the stream and waits for the Mux's goroutines to exit.
// Every call still waiting returns an error wrapping ErrClosed; later calls
// fail at once. If the Mux serves too, the contexts of running handlers are
// canceled and Close waits for the handlers to return. Close returns the
// error of closing the stream, if any (for a Mux made by Start, the child's
// exit error), and is safe to call more than once.
func (m *Mux) Close() error {
	return m.conn.Close()
}

// Done returns a channel that is closed once the Mux's stream has ended
// (closed by Close, by the peer or by an error) and every call waiting on
// it has failed. It lets a user watch the connection without making a
// call.
func (m *Mux) Done() <-chan struct{} { return m.conn.Done() }

// Err returns nil while the stream is alive. Once Done is closed it
// returns the error calls fail with: ErrClosed, wrapping the cause unless
// the Mux was closed by Close.
func (m *Mux) Err() error {
	select {
	case <-m.conn.Done():
		return m.closedError(m.conn.Err())
	default:
		return nil
	}
}

// Ready returns a channel that is closed once the peer's preface has
// arrived and is good, and with AuthKey, once the handshake has succeeded:
// the peer is known to speak muxrpc, in the dialect the Mux speaks. Calls
// need not wait for it, since they queue until then; a client that keeps
// several connections, such as package pool, waits for it before choosing
// the connection, so that no call goes to a peer that turns out to be
// something else. In the msgpack-rpc dialect, which has no preface, it is
// closed as soon as the Mux starts reading. It is never closed if the
// stream ends first: wait for Done too.
func (m *Mux) Ready() <-chan struct{} { return m.conn.Channel().Ready() }

// Refusing returns a channel that is closed once the Mux takes no new
// calls: the peer sent GOAWAY (it is shutting down, and calls already sent
// still get their replies), or the stream has ended. From then on Call,
// Go and Notify fail at once with an error wrapping ErrNotSent. A client
// that keeps several connections, such as package pool, watches it to
// stop choosing a connection before any call fails on it, and to replace
// the connection while the calls in flight on it finish.
func (m *Mux) Refusing() <-chan struct{} { return m.refuse }

// Call calls method on the remote side with args and decodes the result into
// reply, which must be a pointer (or nil to ignore the result). args and
// reply are encoded and decoded with msgpack.
//
// Requests that one goroutine starts one after another (with Call, Go or
// Notify) leave on the stream in that order.
//
// Call blocks until the reply comes, the stream dies or ctx ends. When ctx
// ends first, Call returns at once with an error for which
// errors.Is(err, ctx.Err()) holds, tells the server to cancel the
// handler, and drops the reply if it arrives later. ctx's deadline, if any,
// travels to the server as a time budget that bounds the handler's context.
//
// The handler's failure comes back as a *frame.RemoteError. A stream
// failure gives an error wrapping ErrClosed and its cause.
//
// args must not change while Call runs. A []byte args of 32 KiB or more is
// not copied when ctx cannot end (its Done is nil, as for
// context.Background): nothing can then make Call return before the
// request has been written, so the request is written from args itself.
func (m *Mux) Call(ctx context.Context, method string, args, reply any) error {
	c := getCall()
	c.reply = reply
	if err := m.start(ctx, c, frame.TypeRequest, method, args, nil); err != nil {
		putCall(c)
		return err
	}
	if done := ctx.Done(); done == nil {
		<-c.done // a context that never ends needs no select
	} else {
		select {
		case <-c.done:
		case <-done:
			if m.abandon(ctx, c) {
				putCall(c)
				return fmt.Errorf("mux: call %q: %w", method, ctx.Err())
			}
			<-c.done // the reply is already in hand
		}
	}
	err := c.result()
	putCall(c)
	return err
}

// Go starts a call like Call and returns once the request is queued for
// the stream, which is at once unless the send queue is full. The returned
// Call's Done channel is closed when the call finishes; then Err reports
// how it ended, and reply holds the result if Err is nil. Canceling ctx
// finishes the call with ctx's error at once and tells the server to
// cancel it.
//
// No goroutine waits for the call: its context is watched with
// context.AfterFunc, whose short-lived goroutine, if ctx ends first, only
// queues the CANCEL and finishes the call.
func (m *Mux) Go(ctx context.Context, method string, args, reply any) *Call {
	return m.goCall(ctx, method, args, reply, nil)
}

// goCall starts an asynchronous call and has fn, if not nil, called with
// it once it has finished (see GoFunc).
func (m *Mux) goCall(ctx context.Context, method string, args, reply any, fn func(*Call)) *Call {
	c := &Call{reply: reply, done: make(chan struct{})} // unbuffered: async
	if fn != nil {
		c.then = func() bool { fn(c); return true }
	}
	if err := m.start(ctx, c, frame.TypeRequest, method, args, nil); err != nil {
		c.err = err
		c.closeDone()
	}
	return c
}

// Notify sends a one-way request: the server runs method's handler and
// sends nothing back, not even an error. Notify returns once the request is
// queued for the stream; it fails if args cannot be encoded, the request is
// too large, ctx ends while the send queue is full, or the stream is gone.
func (m *Mux) Notify(ctx context.Context, method string, args any) error {
	c := getCall()
	err := m.start(ctx, c, frame.TypeNotify, method, args, nil)
	putCall(c)
	return err
}

// start encodes and queues the request for c. For a TypeRequest it
// registers c under a fresh xid first, and st, if not nil, as the stream
// of its results and arguments; on error nothing stays registered.
func (m *Mux) start(ctx context.Context, c *Call, typ frame.Type, method string, args any, st *Stream) error {
	if err := ctx.Err(); err != nil {
		return notSent(fmt.Errorf("mux: call %q: %w", method, err))
	}
	if c.reply != nil {
		if v := reflect.ValueOf(c.reply); v.Kind() != reflect.Pointer || v.IsNil() {
			return notSent(fmt.Errorf("mux: call %q: the reply must be a non-nil pointer, not %T", method, c.reply))
		}
	}
	c.method = method
	// The request is built in the frame the reply will arrive in: Send
	// empties it before the request can leave.
	f := &c.resp
	*f = frame.Frame{Type: typ, Method: method}
	if err := setFlow(ctx, f); err != nil {
		return notSent(err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		f.Flags |= frame.FlagDeadline
		f.Budget = time.Until(deadline)
	}
	if b, ok := args.([]byte); ok && len(b) >= referMin && typ == frame.TypeRequest && !c.async() && ctx.Done() == nil {
		// Nothing can make Call return before the request is written:
		// the reply comes after it (handle waits for c.sent to be sure of
		// that), and a stream failure fails calls only once the writer
		// has exited. So the request may refer to b instead of a copy.
		f.ReferBytes(b, &c.sent)
	} else if err := f.EncodePayload(args); err != nil {
		return notSent(fmt.Errorf("mux: call %q: %w", method, err))
	}
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		f.Release()
		return notSent(err)
	}
	if typ == frame.TypeRequest {
		c.xid = m.pending.add(c)
		f.XID = c.xid
		if st != nil {
			m.addStream(c.xid, st, f)
		}
	}
	m.mu.Unlock()
	err := m.ch.SendTracked(ctx, f, &c.seq) // from here on, the reply may arrive in f
	if err == nil {
		if c.async() && ctx.Done() != nil {
			m.watch(ctx, c, method)
		}
		return nil
	}
	if errors.Is(err, frame.ErrTooLarge) || errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("mux: call %q: %w", method, err)
	} else {
		err = m.closedError(err)
	}
	if typ == frame.TypeRequest && !m.unregister(c) {
		// fail or abandon took the call first and finishes it with its
		// own error; the caller waits on done as if the send had worked.
		return nil
	}
	return notSent(err) // Send failed: f was not queued
}

// watch arranges for an asynchronous call to be abandoned when ctx ends.
// It runs after the request is queued, so that a CANCEL never overtakes
// its REQUEST. c.then is set under the lock that finishing takes first, so
// whoever finishes c sees it.
func (m *Mux) watch(ctx context.Context, c *Call, method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending.get(c.xid) != c {
		return // already finished
	}
	stop := context.AfterFunc(ctx, func() {
		if m.abandon(ctx, c) {
			c.err = fmt.Errorf("mux: call %q: %w", method, ctx.Err())
			c.closeDone()
		}
	})
	if fn := c.then; fn != nil { // GoFunc's callback
		c.then = func() bool { stop(); return fn() }
	} else {
		c.then = stop
	}
}

// unregister removes c from the pending table, and its stream if it has
// one, reporting whether it was still there. Whoever removes a call
// finishes it.
func (m *Mux) unregister(c *Call) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending.get(c.xid) != c {
		return false
	}
	m.pending.remove(c.xid)
	if len(m.streams) > 0 {
		delete(m.streams, c.xid) // a late YIELD then finds nothing and is dropped
	}
	return true
}

// abandon gives up on c because its context ended. If c was still waiting,
// it tells the server with a CANCEL frame, at the call's priority, and
// reports true; the caller then owns c. The CANCEL is best effort: ctx is
// already done, so Send does not wait for room in a full send queue.
func (m *Mux) abandon(ctx context.Context, c *Call) bool {
	if !m.unregister(c) {
		return false
	}
	m.ch.Send(ctx, &frame.Frame{Type: frame.TypeCancel, Flags: cancelFlags(ctx), XID: c.xid})
	return true
}

// replies is the Mux as the connection's calling half: the methods the
// connection calls, kept off the Mux's own method set.
type replies Mux

// Reply finishes the call a RESPONSE or ERROR frame answers. It runs on the
// reader goroutine.
func (r *replies) Reply(f *frame.Frame) {
	m := (*Mux)(r)
	m.mu.Lock()
	c := m.pending.remove(f.XID)
	if len(m.streams) > 0 {
		delete(m.streams, f.XID) // its YIELDs have all come: they precede the reply
	}
	m.mu.Unlock()
	if c == nil { // its caller gave up; drop the late reply
		if m.log.Enabled(context.Background(), slog.LevelDebug) {
			m.log.Debug("muxrpc dropped a reply nobody waits for", "frame", f.String())
		}
		f.Release()
		return
	}
	// A request that refers to its caller's bytes must be written
	// before the call may finish; it is, unless the server answered
	// before reading all of it, and then this waits for the writer.
	c.sent.Wait()
	if f.Type == frame.TypeError {
		c.err = f.Err
	}
	c.resp = *f
	*f = frame.Frame{}
	c.finish()
	if m.finished++; m.finished%yieldEvery == 0 {
		runtime.Gosched()
	}
}

// GoAway makes new calls fail with the peer's reason; calls already sent
// still get their replies.
func (r *replies) GoAway(reason *frame.RemoteError) {
	m := (*Mux)(r)
	m.log.Debug("muxrpc peer sent GOAWAY", "reason", reason.Error())
	m.mu.Lock()
	if m.err == nil {
		m.err = fmt.Errorf("%w: %w", ErrClosed, reason)
		close(m.refuse)
	}
	m.mu.Unlock()
}

// Fail ends every waiting call once the stream is gone.
func (r *replies) Fail(cause error) {
	m := (*Mux)(r)
	err := m.closedError(cause)
	m.mu.Lock()
	if m.err == nil { // a GOAWAY's reason, if any, stays the one new calls see
		m.err = err
		close(m.refuse)
	}
	pending := m.pending.takeAll()
	m.streams = nil
	m.mu.Unlock()
	for _, c := range pending {
		c.sent.Wait() // a request that refers to its caller's bytes is let go first
		c.err = err
		if m.ch.Unsent(c.seq.Load()) {
			c.err = notSent(err)
		}
		c.finish()
	}
}

// closedError turns a stream error into the error callers see.
func (m *Mux) closedError(cause error) error {
	if errors.Is(cause, channel.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}

// Call is a call started by Mux.Go. Its methods are safe for concurrent
// use; the zero Call is not usable.
type Call struct {
	resp   frame.Frame // the request until queued, then the reply until decoded
	reply  any
	method string
	err    error
	xid    uint64
	seq    atomic.Uint64  // the request's number in the send queue (channel.Conn.SendTracked)
	done   chan struct{}  // Go: unbuffered, closed when finished; Call: buffered, receives one token
	then   func() bool    // Go: run once finished, after done is closed (closeDone)
	sent   sync.WaitGroup // Call: waits for a request that refers to args (referMin)
}

// async reports whether c was started by Go: its done channel is then
// closed when it finishes, and finish decodes its reply.
func (c *Call) async() bool { return cap(c.done) == 0 }

// referMin is the smallest []byte argument that Call sends without copying
// it, when its context cannot end: below it the copy costs less than the
// extra write. It matches the size from which the frame writer writes a
// payload straight to the stream instead of through its buffer.
const referMin = 32 << 10

// Done returns a channel that is closed when the call has finished.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err reports how the call ended; it is valid once Done is closed. It is
// nil if the reply was decoded into the reply value given to Go.
func (c *Call) Err() error { return c.err }

// finish completes c on the goroutine that removed it from the pending
// table. A synchronous caller decodes its own reply; an asynchronous one
// needs it decoded before Done is closed.
func (c *Call) finish() {
	if !c.async() {
		c.done <- struct{}{}
		return
	}
	c.err = c.result()
	c.closeDone()
}

// closeDone closes the done channel of an asynchronous call that has
// finished, then runs c.then, if any: it stops the AfterFunc that watched
// the call's context, and runs GoFunc's callback. Whoever finishes c calls
// it once, on the goroutine that finished c. If ctx ends between the two,
// the AfterFunc's goroutine finds the call finished and only exits.
func (c *Call) closeDone() {
	close(c.done)
	if c.then != nil {
		c.then()
	}
}

// result decodes the reply, if any, into c.reply and releases it.
func (c *Call) result() error {
	defer c.resp.Release()
	if c.err != nil {
		return c.err
	}
	if c.reply == nil {
		return nil
	}
	if err := frame.DecodePayload(c.resp.Payload, c.reply); err != nil {
		return fmt.Errorf("mux: call %q: decoding the reply into %T: %w", c.method, c.reply, err)
	}
	return nil
}

var callPool = sync.Pool{New: func() any {
	return &Call{done: make(chan struct{}, 1)}
}}

func getCall() *Call { return callPool.Get().(*Call) }

func putCall(c *Call) {
	done := c.done
	*c = Call{done: done}
	callPool.Put(c)
}
