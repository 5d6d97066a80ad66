package demux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
)

// ErrServing is returned by a second call to Serve.
var ErrServing = errors.New("demux: Serve called twice")

// DeMux serves the requests of one stream. Its methods are safe for
// concurrent use. Make one with New; the zero DeMux is not usable.
type DeMux struct {
	conn    *channel.Conn
	handler Handler
	workers int
	log     *slog.Logger

	base   context.Context // for sends; canceled when the DeMux stops
	cancel context.CancelFunc
	limit  int           // MaxInFlight
	jobs   chan *request // pool mode: requests waiting for a worker
	next   chan bool     // goroutine mode: true wakes a parked runner, false stops it
	quit   chan struct{} // closed when Serve ends: the reaper exits
	served chan struct{} // closed when Serve has cleaned up
	wg     sync.WaitGroup

	mu        sync.Mutex
	active    map[uint64]*request   // requests with a reply due, by xid
	notifies  map[*request]struct{} // notifications queued or running
	running   int                   // requests queued or running, at most limit
	held      requestQueue          // accepted past the limit, waiting to be queued
	heldSize  int                   // what the held requests weigh (see weight)
	space     chan struct{}         // made by a reader waiting for room to hold a request
	serving   bool
	closed    bool
	stopped   bool // handlers' contexts are canceled as they come
	shutdown  bool
	idle      chan struct{} // made by Shutdown; closed when running is 0
	queue     requestQueue  // goroutine mode: requests waiting for a runner
	searching int           // goroutine mode: runners woken to look at queue, not there yet
	parked    int           // goroutine mode: runners owed one receive from next
	minIdle   int           // goroutine mode: the fewest parked since the last reap
	ended     bool          // Serve is ending: runners exit instead of parking
}

// In goroutine-per-request mode requests wait in a queue for runners:
// goroutines that take the oldest request, run it, and take the next,
// parking on the DeMux's next channel only when the queue is empty. Every
// request starts as soon as a runner is free to take it, however long other
// handlers block, because of one rule: whenever the queue holds requests,
// some runner has been woken (or started) to look at it and has not yet
// done so — a searcher. The reader wakes a searcher when it queues a
// request and there is none; a searcher that takes a request and leaves
// others behind wakes the next searcher before it runs its handler, so a
// handler that blocks holds up only its own runner.
//
// With handlers that return quickly a few runners serve a busy stream
// between them, each taking request after request without parking: a
// request costs no goroutine wake-up of its own and few goroutines wait in
// the scheduler's run queues at once (a goroutine woken per request made up
// to one runnable goroutine per request in flight, and the latency tail of
// a busy 2-CPU machine grew with them). Runners are reused, with the stacks
// they have grown, instead of started per request (a fresh goroutine's
// stack grows on every request, which cost about a fifth of the CPU at 256
// concurrent callers). At most one runner per request in flight exists.
// Every idleTimeout, as many runners as stayed parked through the whole
// period are told to exit.
const idleTimeout = 5 * time.Second

// New returns a DeMux that will serve h over rwc once Serve is called. The
// DeMux owns rwc from now on; Close and Shutdown close it.
func New(rwc io.ReadWriteCloser, h Handler, opts ...Option) *DeMux {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxInFlight <= 0 {
		cfg.maxInFlight = max(DefaultMaxInFlight, cfg.workers)
	}
	log := cfg.channel.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DeMux{
		conn:     channel.New(rwc, cfg.channel),
		handler:  h,
		workers:  cfg.workers,
		log:      log,
		limit:    cfg.maxInFlight,
		served:   make(chan struct{}),
		quit:     make(chan struct{}),
		active:   make(map[uint64]*request),
		notifies: make(map[*request]struct{}),
	}
	// Sends on either channel never block: jobs holds as many requests as
	// may be in flight, and next as many tokens as there can be runners,
	// one per request in flight; a token is sent only to a parked runner.
	if d.workers > 0 {
		d.jobs = make(chan *request, cfg.maxInFlight)
	} else {
		d.next = make(chan bool, cfg.maxInFlight)
	}
	d.base, d.cancel = context.WithCancel(context.Background())
	return d
}

// Serve reads and serves requests until the stream ends. It returns nil
// after Close or Shutdown, and otherwise the reason the stream ended: io.EOF
// when the client closed it, an error wrapping frame.ErrBadPreface for a
// peer that is not a muxrpc client, frame.ErrMalformed or
// frame.ErrTooLarge for a protocol violation, or the I/O error. Before
// returning it cancels the contexts of handlers still running and waits
// for them. Serve may be called once.
func (d *DeMux) Serve() error {
	d.mu.Lock()
	if d.serving {
		d.mu.Unlock()
		return ErrServing
	}
	d.serving = true
	closed := d.closed
	d.mu.Unlock()
	defer close(d.served)
	if closed {
		return nil
	}
	for range d.workers {
		d.wg.Add(1)
		go d.work()
	}
	if d.workers == 0 {
		d.wg.Add(1)
		go d.reap()
	}
	err := d.conn.Serve(d.handle)
	d.stop()
	d.mu.Lock()
	d.ended = true
	parked := d.parked
	d.parked, d.minIdle = 0, 0
	var held []*request // canceled by stop, and no reply can leave now
	for d.held.len() > 0 {
		r := d.popHeld()
		d.unbook(r)
		held = append(held, r)
	}
	d.mu.Unlock()
	for _, r := range held {
		d.free(r)
	}
	for range parked {
		d.next <- false
	}
	if d.jobs != nil {
		close(d.jobs) // the reader, the only sender, has returned
	}
	close(d.quit)
	d.wg.Wait()
	if errors.Is(err, channel.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops the DeMux gracefully: it tells the client to send no new
// requests (a GOAWAY frame, after which the client's new calls fail at
// once), answers requests that arrive anyway with CodeShutdown, waits for
// the requests already accepted to finish and their replies to be written,
// then closes the stream. Handlers' contexts are not canceled while they
// finish.
//
// If ctx ends first, Shutdown closes the DeMux as Close does and returns
// ctx's error. Shutdown does not wait for Serve to be called; it waits for
// Serve's goroutines if it was.
func (d *DeMux) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	first := !d.shutdown
	if first {
		d.shutdown = true
		d.idle = make(chan struct{})
		if d.running == 0 {
			close(d.idle)
		}
	}
	idle, serving := d.idle, d.serving
	d.mu.Unlock()
	if !serving { // nothing was read, so nothing is owed
		return d.Close()
	}
	if first {
		goaway := &frame.Frame{Type: frame.TypeGoAway, Err: &frame.RemoteError{
			Code: frame.CodeShutdown, Message: "server is shutting down",
		}}
		d.conn.Send(ctx, goaway) // if the stream is gone, so is the need to tell
	}
	var err error
	select {
	case <-idle:
		err = d.conn.Drain(ctx)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	if errors.Is(err, channel.ErrClosed) {
		err = nil // already closed: nothing was left to deliver
	}
	return err
}

// Close stops the DeMux at once: it cancels the contexts of running
// handlers, closes the stream, dropping replies not yet written, and waits
// for Serve's goroutines, handlers included, to exit. It returns the error
// of closing the stream, if any, and is safe to call more than once.
func (d *DeMux) Close() error {
	d.mu.Lock()
	d.closed = true
	serving := d.serving
	d.mu.Unlock()
	err := d.conn.Close() // first, so that canceled handlers' replies go nowhere
	d.stop()
	if serving {
		<-d.served
	}
	return err
}

// stop cancels the contexts of every request queued or running, and of
// any accepted from now on.
func (d *DeMux) stop() {
	d.cancel()
	d.mu.Lock()
	d.stopped = true
	ctxs := make([]*reqContext, 0, len(d.active)+len(d.notifies))
	for _, r := range d.active {
		ctxs = append(ctxs, r.ctx)
	}
	for r := range d.notifies {
		ctxs = append(ctxs, r.ctx)
	}
	d.mu.Unlock()
	for _, c := range ctxs {
		c.cancel(canceled)
	}
}

// request is a Request with what the DeMux needs to run and answer it.
// Requests are pooled; their contexts are not, as a handler may keep one.
type request struct {
	Request
	f   frame.Frame // the request, owning the payload bytes; then the reply
	ctx *reqContext
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

// handle runs on the reading goroutine for each frame that arrives.
func (d *DeMux) handle(f *frame.Frame) error {
	switch f.Type {
	case frame.TypeRequest, frame.TypeNotify:
		return d.accept(f)
	case frame.TypeCancel:
		d.mu.Lock() // held so that r cannot be retired and reused meanwhile
		if r := d.active[f.XID]; r != nil {
			r.ctx.cancel(peerCanceled)
		}
		d.mu.Unlock()
		return nil
	}
	f.Release()
	return fmt.Errorf("%w: a server does not accept %v frames", frame.ErrMalformed, f.Type)
}

// accept takes a request off the stream and queues it for a worker or a
// runner, or holds it while MaxInFlight requests are queued or running.
// While the held requests weigh more than maxHeld it waits, which is what
// stops the reading.
func (d *DeMux) accept(f *frame.Frame) error {
	r := requestPool.Get().(*request)
	r.Request = Request{Method: f.Method, XID: f.XID, Notify: f.Type == frame.TypeNotify, payload: f.Payload}
	r.f = *f
	*f = frame.Frame{}
	r.ctx = newReqContext(r.f.Flags&frame.FlagDeadline != 0, r.f.Budget)
	d.mu.Lock()
	for !d.shutdown && d.running >= d.limit && d.heldSize > 0 && d.heldSize+weight(r) > maxHeld {
		if d.space == nil {
			d.space = make(chan struct{})
		}
		space := d.space
		d.mu.Unlock()
		select {
		case <-space:
		case <-d.conn.Done():
			d.free(r)
			return nil
		}
		d.mu.Lock()
	}
	if d.shutdown {
		d.mu.Unlock()
		d.refuse(r.XID, r.Notify)
		d.free(r)
		return nil
	}
	if r.XID != 0 {
		if _, dup := d.active[r.XID]; dup {
			d.mu.Unlock()
			err := fmt.Errorf("%w: request xid %d is already in flight", frame.ErrMalformed, r.XID)
			d.free(r)
			return err
		}
		d.active[r.XID] = r
	} else {
		d.notifies[r] = struct{}{}
	}
	if d.stopped {
		// No handler has seen this context yet, so ending it runs no
		// AfterFunc callbacks: safe under the lock.
		r.ctx.cancel(canceled)
	}
	if d.running >= d.limit {
		// Held, and queued once a request retires; the reader reads on,
		// so that it sees the stream end even while every handler waits.
		d.held.push(r)
		d.heldSize += weight(r)
		d.mu.Unlock()
		return nil
	}
	d.running++
	if d.jobs != nil {
		d.mu.Unlock()
		d.jobs <- r // never blocks: jobs holds limit requests
		return nil
	}
	d.queue.push(r)
	wake := d.needSearcher()
	d.mu.Unlock()
	d.startSearcher(wake)
	return nil
}

// maxHeld bounds what the requests held past MaxInFlight may weigh
// together; the reader waits for room beyond it (a single request of any
// size is held when none is). One MiB of small requests is thousands of
// them: enough for the reader to reach the end of the stream behind a
// burst of calls whose handlers all wait for their contexts, which they
// would otherwise wait for until the DeMux was closed.
const maxHeld = 1 << 20

// weight is what a held request counts against maxHeld: its payload and
// method name, and a little for the request itself.
func weight(r *request) int { return len(r.f.Payload) + len(r.Method) + 64 }

// unhold queues the oldest held request now that there is room for it.
// d.mu is held. In goroutine mode the caller is a runner that looks at the
// queue before it lets go of the lock, so no searcher is needed for it.
func (d *DeMux) unhold() {
	r := d.popHeld()
	d.running++
	if d.jobs != nil {
		d.jobs <- r // never blocks: at most limit requests are queued or running
	} else {
		d.queue.push(r)
	}
}

// popHeld takes the oldest held request off the held queue. d.mu is held.
func (d *DeMux) popHeld() *request {
	r := d.held.pop()
	d.heldSize -= weight(r)
	return r
}

// needSearcher makes sure that a runner will look at the queue. If none
// has been woken to, it counts one as searching and says whether to wake a
// parked runner or start a new one for it; d.mu is held, and the caller
// passes the answer to startSearcher once it has let go of the lock.
func (d *DeMux) needSearcher() (searcher int) {
	if d.searching > 0 {
		return noSearcher
	}
	d.searching++
	if d.parked == 0 {
		return startRunner
	}
	d.parked--
	d.minIdle = min(d.minIdle, d.parked)
	return wakeRunner
}

// What needSearcher asks of startSearcher.
const (
	noSearcher = iota
	wakeRunner
	startRunner
)

// startSearcher wakes or starts the searcher that needSearcher counted.
func (d *DeMux) startSearcher(searcher int) {
	switch searcher {
	case wakeRunner:
		d.next <- true
	case startRunner:
		d.wg.Add(1)
		go d.runner()
	}
}

// refuse answers a request that arrived after Shutdown with CodeShutdown.
func (d *DeMux) refuse(xid uint64, notify bool) {
	if notify {
		return
	}
	d.conn.Send(d.base, &frame.Frame{Type: frame.TypeError, XID: xid, Err: &frame.RemoteError{
		Code: frame.CodeShutdown, Message: "server is shutting down",
	}})
}

// free ends a request's context and gives back its memory, once it is off
// the books or was never on them.
func (d *DeMux) free(r *request) {
	r.ctx.cancel(canceled) // stops its timer; a kept context reads as ended
	r.f.Release()
	*r = request{}
	requestPool.Put(r)
}

// work is a pool worker: it runs requests in arrival order until Serve
// closes the queue, skipping those canceled while they waited.
func (d *DeMux) work() {
	defer d.wg.Done()
	for r := range d.jobs {
		d.run(r)
		d.mu.Lock()
		d.retire(r)
		d.mu.Unlock()
		d.free(r)
	}
}

// runner starts as a searcher. It takes requests from the queue and runs
// them, oldest first, and parks when the queue is empty, until it is told
// to exit or finds the queue empty while Serve is ending.
func (d *DeMux) runner() {
	defer d.wg.Done()
	var done *request // run, not yet retired
	d.mu.Lock()
	d.searching--
	for {
		if done != nil {
			d.retire(done)
		}
		r := d.queue.pop()
		searcher := noSearcher
		if r != nil && d.queue.len() > 0 {
			searcher = d.needSearcher() // for the others, in case r blocks
		}
		park := r == nil && !d.ended
		if park {
			d.parked++
		}
		d.mu.Unlock()
		if done != nil {
			d.free(done)
			done = nil
		}
		if r == nil {
			if !park || !<-d.next {
				return
			}
			d.mu.Lock()
			d.searching--
			continue
		}
		d.startSearcher(searcher)
		d.run(r)
		done = r
		d.mu.Lock()
	}
}

// reap calls reapParked once every idleTimeout until Serve ends.
func (d *DeMux) reap() {
	defer d.wg.Done()
	t := time.NewTicker(idleTimeout)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.reapParked()
		case <-d.quit:
			return
		}
	}
}

// reapParked tells as many runners to exit as stayed parked through the
// whole period since the last call: they were not needed.
func (d *DeMux) reapParked() {
	d.mu.Lock()
	n := d.minIdle
	d.parked -= n
	d.minIdle = d.parked
	d.mu.Unlock()
	for range n {
		d.next <- false
	}
}

// run calls the handler and sends the reply; the caller retires r.
func (d *DeMux) run(r *request) {
	if err := r.ctx.Err(); err != nil {
		// Canceled, timed out or closed while it waited for a worker: the
		// handler is not run, and only an expired deadline is answered.
		if !r.Notify && !r.ctx.canceledByPeer() && d.base.Err() == nil {
			d.reply(r, err)
		}
	} else {
		err := d.call(r)
		r.payload = nil
		switch {
		case r.Notify:
			if err != nil {
				d.log.Debug("muxrpc notification handler failed", "method", r.Method, "err", err)
			}
		case !r.ctx.canceledByPeer():
			d.reply(r, err)
		}
	}
}

// call runs the handler and, for a request that wants a reply, encodes its
// result into r.f, replacing the request's payload only once the result is
// encoded, as it may refer to it (see Request.Bytes). A panic becomes a
// CodePanic error.
func (d *DeMux) call(r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &frame.RemoteError{
				Code:    frame.CodePanic,
				Message: fmt.Sprint(p),
				Trace:   string(debug.Stack()),
			}
		}
	}()
	out := &r.f
	if r.Notify {
		out = nil
	}
	return serve(r.ctx, d.handler, &r.Request, out)
}

// reply sends the outcome of a request to the caller: r.f holds the
// encoded result if err is nil, and is reused for the reply.
func (d *DeMux) reply(r *request, err error) {
	f := &r.f
	if err == nil {
		f.KeepPayload(frame.TypeResponse, r.XID)
	} else {
		f.Release()
		*f = frame.Frame{Type: frame.TypeError, XID: r.XID, Err: remoteError(err)}
	}
	err = d.conn.Send(d.base, f)
	if errors.Is(err, frame.ErrTooLarge) {
		*f = frame.Frame{Type: frame.TypeError, XID: r.XID, Err: &frame.RemoteError{
			Code: frame.CodeInternal, Message: "result of " + r.Method + ": " + err.Error(),
		}}
		d.conn.Send(d.base, f)
	}
}

// unbook takes r out of the books that CANCEL and stop look in. d.mu is
// held.
func (d *DeMux) unbook(r *request) {
	if r.XID != 0 {
		delete(d.active, r.XID)
	} else {
		delete(d.notifies, r)
	}
}

// remoteError gives a handler's error the form it takes on the wire. A
// *frame.RemoteError, returned or wrapped, keeps its code, except that code
// 0, which is never sent, becomes CodeApplication; the handler's value is
// copied, not changed.
func remoteError(err error) *frame.RemoteError {
	var re *frame.RemoteError
	if errors.As(err, &re) {
		code := re.Code
		if code == 0 {
			code = frame.CodeApplication
		}
		if re == err {
			if code == re.Code {
				return re
			}
			return &frame.RemoteError{Code: code, Message: re.Message, Trace: re.Trace}
		}
		return &frame.RemoteError{Code: code, Message: err.Error(), Trace: re.Trace}
	}
	code := frame.CodeApplication
	switch {
	case errors.Is(err, context.Canceled):
		code = frame.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = frame.CodeDeadlineExceeded
	}
	return &frame.RemoteError{Code: code, Message: err.Error()}
}

// retire removes a finished request from the books and frees its slot.
// d.mu is held; the caller frees r once it has let go of the lock.
func (d *DeMux) retire(r *request) {
	d.unbook(r)
	d.running--
	if d.held.len() > 0 {
		d.unhold()
	}
	if d.space != nil { // the reader waits for room
		close(d.space)
		d.space = nil
	}
	if d.running == 0 && d.idle != nil {
		select {
		case <-d.idle:
		default:
			close(d.idle)
		}
	}
}
