package demux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/core"
)

// serving is the serving half of a connection: it takes the requests the
// connection reads, runs them through one scheduler and sends the replies.
//
// The scheduler is one queue and the runners that drain it. Runners are
// goroutines that take the next request (in the serving order of
// order.go: by priority, oldest first, with starvation bounded, and one
// at a time per ordering key), run it, and take the next, parking on next
// only when the queue is empty. A policy says how many
// runners there may be: with Workers(n), at most n, kept until the
// connection ends; by default, one per request in flight (MaxInFlight),
// with the ones that stay parked for a whole idleTimeout told to exit.
// Every request starts as soon as a runner is free to take it, however
// long other handlers block, because of one rule: whenever the queue holds
// requests and a runner may take them, some runner has been woken (or
// started) to look at it and has not yet done so — a searcher. The reader
// wakes a searcher when it queues a request and there is none; a searcher
// that takes a request and leaves others behind wakes the next searcher
// before it runs its handler, so a handler that blocks holds up only its
// own runner. When the policy allows no more runners, the queue waits for
// a busy runner to finish and look again.
//
// With handlers that return quickly a few runners serve a busy stream
// between them, each taking request after request without parking: a
// request costs no goroutine wake-up of its own and few goroutines wait in
// the scheduler's run queues at once (a goroutine woken per request made up
// to one runnable goroutine per request in flight, and the latency tail of
// a busy 2-CPU machine grew with them). Runners are reused, with the stacks
// they have grown, instead of started per request (a fresh goroutine's
// stack grows on every request, which cost about a fifth of the CPU at 256
// concurrent callers).
type serving struct {
	conn    *core.Conn
	ch      *channel.Conn
	handler Handler
	log     *slog.Logger
	policy  policy
	limit   int     // MaxInFlight
	budget  *budget // shared with the other connections of a Server; nil for New

	// The idle timeout: Accept stamps lastRequest, without taking a lock or
	// touching a timer, and idleTimer, when it fires, shuts the half down
	// or re-arms itself for the rest of the wait (see idleCheck).
	idleAfter   time.Duration // IdleTimeout; zero: none
	epoch       time.Time     // what lastRequest counts from, on the monotonic clock
	lastRequest atomic.Int64  // nanoseconds from epoch to the last Accept; written by the reader

	base   context.Context // for sends; canceled when the serving half stops
	cancel context.CancelFunc
	next   chan bool     // true wakes a parked runner, false tells it to exit
	quit   chan struct{} // closed by Wait: the reaper exits
	wg     sync.WaitGroup

	mu        sync.Mutex
	state     servingState          // guarded by mu
	active    map[uint64]*request   // requests with a reply due, by xid; guarded by mu
	notifies  map[*request]struct{} // notifications queued or running; guarded by mu
	running   int                   // requests queued or running, at most limit; guarded by mu
	held      requestQueue          // accepted past the limit, waiting to be queued; guarded by mu
	heldSize  int                   // what the held requests weigh (see weight); guarded by mu
	idle      chan struct{}         // made by waitIdle; closed when running is 0; guarded by mu
	queue     runQueue              // requests ready, waiting for a runner (order.go); guarded by mu
	runners   int                   // runner goroutines alive; guarded by mu
	searching int                   // runners woken to look at queue, not there yet; guarded by mu
	parked    int                   // runners owed one receive from next; guarded by mu
	minIdle   int                   // the fewest parked since the last reap; guarded by mu
	idleTimer *time.Timer           // nil unless idleAfter is set and Start was called; guarded by mu
	wasBusy   bool                  // idleTimer last found requests in flight; guarded by mu

	// The ordering keys with a request ready or running, each with the
	// requests of the key waiting behind it (nil for none); guarded by mu.
	keys map[string]*requestQueue
}

// servingState is where the serving half is in its life.
type servingState uint8

const (
	servingOpen     servingState = iota // accepting requests
	servingDraining                     // after GOAWAY: refusing new requests, finishing the others
	servingStopped                      // contexts canceled as requests come; runners exit when the queue is empty
)

// policy is how the scheduler runs requests: how many runners it may have
// and whether idle ones exit.
type policy struct {
	maxRunners int
	reap       bool // runners parked for a whole idleTimeout exit
}

// idleTimeout is how long a runner that is not needed stays parked, in the
// default policy, before it is told to exit.
const idleTimeout = 5 * time.Second

// newServing builds the serving half for conn from cfg.
func newServing(conn *core.Conn, h Handler, cfg *core.Config) *serving {
	limit := cfg.MaxInFlight
	if limit <= 0 {
		limit = max(DefaultMaxInFlight, cfg.Workers)
	}
	p := policy{maxRunners: limit, reap: true}
	if cfg.Workers > 0 {
		p = policy{maxRunners: min(cfg.Workers, limit)}
	}
	s := &serving{
		conn:     conn,
		ch:       conn.Channel(),
		handler:  h,
		log:      conn.Logger(),
		policy:   p,
		limit:    limit,
		next:     make(chan bool, p.maxRunners), // never blocks: a token goes only to a parked runner
		quit:     make(chan struct{}),
		active:   make(map[uint64]*request),
		notifies: make(map[*request]struct{}),
		keys:     make(map[string]*requestQueue),
	}
	if cfg.IdleTimeout > 0 {
		s.idleAfter = cfg.IdleTimeout
		s.epoch = time.Now()
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

// Start starts the reaper, if the policy reaps idle runners, and the idle
// timer, if there is an idle timeout.
func (s *serving) Start() {
	if s.policy.reap {
		s.wg.Add(1)
		go s.reap()
	}
	if s.idleAfter > 0 {
		s.lastRequest.Store(s.now())
		s.mu.Lock()
		s.idleTimer = time.AfterFunc(s.idleAfter, s.idleCheck)
		s.mu.Unlock()
	}
}

// now is the time since epoch, on the monotonic clock.
func (s *serving) now() int64 { return int64(time.Since(s.epoch)) }

// request is a Request with what the serving half needs to run and answer
// it. Requests are pooled; their contexts are not, as a handler may keep
// one.
type request struct {
	Request
	f   frame.Frame // the request, owning the payload bytes; then the reply
	ctx *reqContext
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

// Accept takes a request off the stream and queues it for a runner, holds
// it while MaxInFlight requests are queued or running, or refuses it with
// CodeOverloaded when the held requests would weigh more than maxHeld or
// the Server's budget, if any, has no room for it. It never waits: the reader goes on reading, so that replies to this side's
// own calls keep arriving however busy its handlers are.
func (s *serving) Accept(f *frame.Frame) error {
	if s.idleAfter > 0 {
		s.lastRequest.Store(s.now())
	}
	r := requestPool.Get().(*request)
	r.Request = Request{
		Method: f.Method, XID: f.XID, Notify: f.Type == frame.TypeNotify,
		Priority: f.Flags.Priority(), Key: f.Key, in: &r.f,
	}
	r.f = *f
	*f = frame.Frame{}
	r.ctx = newReqContext(s.conn, r.f.Flags&frame.FlagDeadline != 0, r.f.Budget)
	if r.f.Flags&frame.FlagStream != 0 {
		r.ctx.setStream(newServerStream(s, &r.f))
	}
	s.mu.Lock()
	if r.XID != 0 {
		if _, dup := s.active[r.XID]; dup {
			s.mu.Unlock()
			err := fmt.Errorf("%w: request xid %d is already in flight", frame.ErrMalformed, r.XID)
			s.free(r)
			return err
		}
	}
	hold := s.running >= s.limit
	var refusal *frame.RemoteError
	switch {
	case s.state == servingDraining:
		refusal = &frame.RemoteError{Code: frame.CodeShutdown, Message: "server is shutting down"}
	case hold && s.heldSize > 0 && s.heldSize+weight(r) > maxHeld:
		refusal = &frame.RemoteError{Code: frame.CodeOverloaded, Message: fmt.Sprintf(
			"server is overloaded: %d requests in flight and %d bytes of requests waiting on this connection (MaxInFlight %d)",
			s.running, s.heldSize, s.limit)}
	case s.budget != nil:
		refusal = s.budget.take(hold, weight(r)) // nil, having counted r, if there is room
	}
	if refusal != nil {
		s.mu.Unlock()
		s.refuse(r, refusal)
		s.free(r)
		return nil
	}
	if r.XID != 0 {
		s.active[r.XID] = r
	} else {
		s.notifies[r] = struct{}{}
	}
	if s.state == servingStopped {
		// No handler has seen this context yet, so ending it runs no
		// AfterFunc callbacks: safe under the lock.
		r.ctx.cancel(canceled)
	}
	if hold {
		// Held, and queued once a request retires; the reader reads on,
		// so that it sees the stream end even while every handler waits.
		s.held.push(r)
		s.heldSize += weight(r)
		s.mu.Unlock()
		return nil
	}
	s.running++
	wake := noSearcher
	if s.enqueue(r) {
		wake = s.needSearcher()
	}
	s.mu.Unlock()
	s.startSearcher(wake)
	return nil
}

// maxHeld bounds what the requests held past MaxInFlight may weigh
// together; a request that would take them past it is refused with
// CodeOverloaded (a single request of any size is held when none is). One
// MiB of small requests is thousands of them: enough for a burst of calls
// beyond MaxInFlight to wait instead of failing.
const maxHeld = 1 << 20

// weight is what a held request counts against maxHeld: its payload and
// method name, and a little for the request itself.
func weight(r *request) int { return len(r.f.Payload) + len(r.Method) + 64 }

// refuse answers a request that is not run with err, or drops it if it is
// a notification. It runs on the reader, so the answer takes the control
// slack of the send queue rather than waiting behind the replies there.
func (s *serving) refuse(r *request, err *frame.RemoteError) {
	if r.Notify {
		s.log.Debug("muxrpc dropped a notification", "method", r.Method, "err", err.Error())
		return
	}
	s.ch.SendControl(s.base, &frame.Frame{Type: frame.TypeError, Flags: replyFlags(r), XID: r.XID, Err: err})
}

// replyFlags are the flags of the reply to r: r's priority, so that the
// reply leaves, and reaches its caller, in the order of its request.
func replyFlags(r *request) frame.Flags {
	return frame.Flags(0).WithPriority(r.Priority)
}

// send queues a reply, without waiting for room once the half has stopped.
func (s *serving) send(f *frame.Frame) error {
	return s.ch.Send(s.base, f)
}

// Cancel cancels the request with this xid, if it is accepted and not yet
// answered.
func (s *serving) Cancel(xid uint64) {
	s.mu.Lock() // held so that r cannot be retired and reused meanwhile
	if r := s.active[xid]; r != nil {
		r.ctx.cancel(peerCanceled)
	}
	s.mu.Unlock()
}

// Busy reports whether any request is queued, held or running.
func (s *serving) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running > 0
}

// shutdown shuts the half down gracefully, as DeMux.Shutdown documents,
// short of closing the stream, which its caller does: it tells the peer to
// send no new requests (GOAWAY), refuses those that come anyway with
// CodeShutdown, and waits until every request accepted so far has been
// answered and the replies written. It returns early with ctx's error if
// ctx ends first, and with the stream's error if the stream dies first.
func (s *serving) shutdown(ctx context.Context) error {
	if s.drain() {
		s.goAway(ctx, "server is shutting down")
	}
	return s.settle(ctx)
}

// drain refuses new requests with CodeShutdown from now on and reports
// whether this is the first call.
func (s *serving) drain() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != servingOpen {
		return false
	}
	s.state = servingDraining
	return true
}

// goAway sends the peer a GOAWAY with CodeShutdown and message; if the
// stream is gone, so is the need to tell.
func (s *serving) goAway(ctx context.Context, message string) {
	s.ch.Send(ctx, &frame.Frame{Type: frame.TypeGoAway, Err: &frame.RemoteError{
		Code: frame.CodeShutdown, Message: message,
	}})
}

// settle waits until no request is queued, held or running and every
// frame queued so far has been written, or until ctx ends or the stream
// dies.
func (s *serving) settle(ctx context.Context) error {
	select {
	case <-s.waitIdle():
		return s.ch.Drain(ctx)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idleCheck runs when the idle timer fires. If a request is in flight, or
// one has arrived within idleAfter, it re-arms the timer: for idleAfter in
// the first case, as the request may go on for any time, and for the rest
// of idleAfter since that arrival in the second. The first time it finds
// the half idle after finding it busy, it waits idleAfter again, as the
// half became idle at some time it does not know. Otherwise the half has
// had no request for idleAfter and none is in flight: it shuts down, as
// shutdown does, and closes the stream, so that the connection ends.
//
// The timer runs idleCheck on a goroutine of its own. One that shuts down
// joins wg first, while the half is open, which is before Stop and so
// before Wait; one that finds the half no longer open does nothing and
// does not re-arm the timer, which Wait has stopped or will stop.
func (s *serving) idleCheck() {
	s.mu.Lock()
	if s.state != servingOpen { // shut down or stopped: nothing to watch
		s.mu.Unlock()
		return
	}
	next := s.idleAfter
	quiet := time.Duration(s.now() - s.lastRequest.Load())
	switch {
	case s.running > 0:
		s.wasBusy = true
	case s.wasBusy:
		s.wasBusy = false
	case quiet < s.idleAfter:
		next = s.idleAfter - quiet
	default:
		s.state = servingDraining // as drain does, but together with the checks above
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		// s.base ends at Stop, so none of this outlives the connection.
		s.goAway(s.base, fmt.Sprintf("server is shutting down: connection idle for %v", s.idleAfter))
		s.settle(s.base)
		s.ch.Close() // the reader ends, and with it the connection
		return
	}
	s.idleTimer.Reset(next)
	s.mu.Unlock()
}

// waitIdle returns a channel closed once no request is queued, held or
// running.
func (s *serving) waitIdle() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle == nil {
		s.idle = make(chan struct{})
		if s.running == 0 {
			close(s.idle)
		}
	}
	return s.idle
}

// Finish waits until every accepted request has been answered or stop is
// closed.
func (s *serving) Finish(stop <-chan struct{}) {
	select {
	case <-s.waitIdle():
	case <-stop:
	}
}

// Stop cancels the contexts of every request queued or running, and of any
// accepted from now on.
func (s *serving) Stop() {
	s.cancel()
	s.mu.Lock()
	s.state = servingStopped
	ctxs := make([]*reqContext, 0, len(s.active)+len(s.notifies))
	for _, r := range s.active {
		ctxs = append(ctxs, r.ctx)
	}
	for r := range s.notifies {
		ctxs = append(ctxs, r.ctx)
	}
	s.mu.Unlock()
	for _, c := range ctxs {
		c.cancel(canceled)
	}
}

// Wait stops the idle timer, drops the held requests, which no reply can
// answer now, tells the parked runners to exit and waits for every
// goroutine of the half.
func (s *serving) Wait() {
	s.mu.Lock()
	if s.idleTimer != nil {
		s.idleTimer.Stop() // not re-armed: the half is no longer open
	}
	parked := s.parked
	s.parked, s.minIdle = 0, 0
	var held []*request
	for s.held.len() > 0 {
		r := s.popHeld()
		s.unbook(r)
		held = append(held, r)
	}
	s.mu.Unlock()
	for _, r := range held {
		s.free(r)
	}
	for range parked {
		s.next <- false
	}
	close(s.quit)
	s.wg.Wait()
}

// unhold queues the oldest held request now that there is room for it.
// s.mu is held, and the caller is a runner that looks at the queue before
// it lets go of the lock, so no searcher is needed for it.
func (s *serving) unhold() {
	r := s.popHeld()
	s.running++
	s.enqueue(r)
}

// popHeld takes the oldest held request off the held queue. s.mu is held.
func (s *serving) popHeld() *request {
	r := s.held.pop()
	s.heldSize -= weight(r)
	if s.budget != nil {
		s.budget.unhold(weight(r))
	}
	return r
}

// needSearcher makes sure that a runner will look at the queue. If none
// has been woken to and the policy allows, it counts one as searching and
// says whether to wake a parked runner or start a new one for it; s.mu is
// held, and the caller passes the answer to startSearcher once it has let
// go of the lock.
func (s *serving) needSearcher() (searcher int) {
	if s.searching > 0 {
		return noSearcher
	}
	if s.parked > 0 {
		s.searching++
		s.parked--
		s.minIdle = min(s.minIdle, s.parked)
		return wakeRunner
	}
	if s.runners < s.policy.maxRunners {
		s.searching++
		s.runners++
		return startRunner
	}
	return noSearcher // every runner is busy: the first to finish looks
}

// What needSearcher asks of startSearcher.
const (
	noSearcher = iota
	wakeRunner
	startRunner
)

// startSearcher wakes or starts the searcher that needSearcher counted.
func (s *serving) startSearcher(searcher int) {
	switch searcher {
	case wakeRunner:
		s.next <- true
	case startRunner:
		s.wg.Add(1)
		go s.runner()
	}
}

// free ends a request's context and gives back its memory, once it is off
// the books or was never on them.
func (s *serving) free(r *request) {
	r.ctx.cancel(canceled) // stops its timer; a kept context reads as ended
	r.f.Release()
	*r = request{}
	requestPool.Put(r)
}

// runner starts as a searcher. It takes requests from the queue and runs
// them, in the serving order (order.go), and parks when the queue is empty, until it is told
// to exit or finds the queue empty once the half has stopped.
func (s *serving) runner() {
	defer s.wg.Done()
	var done *request // run, not yet retired
	s.mu.Lock()
	s.searching--
	for {
		if done != nil {
			s.retire(done)
		}
		r := s.queue.pop()
		searcher := noSearcher
		if r != nil && s.queue.len() > 0 {
			searcher = s.needSearcher() // for the others, in case r blocks
		}
		park := r == nil && s.state != servingStopped
		if park {
			s.parked++
		} else if r == nil {
			s.runners--
		}
		s.mu.Unlock()
		if done != nil {
			s.free(done)
			done = nil
		}
		if r == nil {
			if !park {
				return
			}
			if !<-s.next {
				s.mu.Lock()
				s.runners--
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			s.searching--
			continue
		}
		s.startSearcher(searcher)
		s.run(r)
		done = r
		s.mu.Lock()
	}
}

// reap calls reapParked once every idleTimeout until Wait.
func (s *serving) reap() {
	defer s.wg.Done()
	t := time.NewTicker(idleTimeout)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.reapParked()
		case <-s.quit:
			return
		}
	}
}

// reapParked tells as many runners to exit as stayed parked through the
// whole period since the last call: they were not needed.
func (s *serving) reapParked() {
	if !s.policy.reap {
		return
	}
	s.mu.Lock()
	n := s.minIdle
	s.parked -= n
	s.minIdle = s.parked
	s.mu.Unlock()
	for range n {
		s.next <- false
	}
}

// run calls the handler and sends the reply; the caller retires r.
func (s *serving) run(r *request) {
	if st := r.ctx.stream(); st != nil {
		defer st.end() // late PUSHes are dropped; a Yield left running fails
	}
	if s.base.Err() != nil {
		// Stopped: Stop cancels contexts one by one, so r's may not have
		// ended yet, but nothing starts now and no reply could leave.
		return
	}
	if err := r.ctx.Err(); err != nil {
		// Canceled, timed out or closed while it waited for a runner: the
		// handler is not run, and only an expired deadline is answered.
		if !r.Notify && !r.ctx.canceledByPeer() {
			s.reply(r, err)
		}
		return
	}
	err := s.call(r)
	r.in = nil
	switch {
	case r.Notify:
		if err != nil {
			s.log.Debug("muxrpc notification handler failed", "method", r.Method, "err", err)
		}
	case !r.ctx.canceledByPeer():
		s.reply(r, err)
	}
}

// call runs the handler and, for a request that wants a reply, encodes its
// result into r.f, replacing the request's payload only once the result is
// encoded, as it may refer to it (see Request.Bytes). A panic becomes a
// CodePanic error, and is logged.
func (s *serving) call(r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := string(debug.Stack())
			s.log.Error("muxrpc handler panicked", "method", r.Method, "xid", r.XID, "panic", fmt.Sprint(p), "stack", stack)
			err = &frame.RemoteError{Code: frame.CodePanic, Message: fmt.Sprint(p), Trace: stack}
		}
	}()
	out := &r.f
	if r.Notify {
		out = nil
	}
	return serve(r.ctx, s.handler, &r.Request, out)
}

// reply sends the outcome of a request to the caller: r.f holds the
// encoded result if err is nil, and is reused for the reply.
func (s *serving) reply(r *request, err error) {
	f := &r.f
	if err == nil {
		f.KeepPayload(frame.TypeResponse, r.XID)
		f.Flags = replyFlags(r)
	} else {
		f.Release()
		*f = frame.Frame{Type: frame.TypeError, Flags: replyFlags(r), XID: r.XID, Err: remoteError(err)}
	}
	err = s.send(f)
	if errors.Is(err, frame.ErrTooLarge) {
		*f = frame.Frame{Type: frame.TypeError, Flags: replyFlags(r), XID: r.XID, Err: &frame.RemoteError{
			Code: frame.CodeInternal, Message: "result of " + r.Method + ": " + err.Error(),
		}}
		s.send(f)
	}
}

// unbook takes r out of the books that CANCEL and Stop look in, and gives
// back its share of the Server's budget. s.mu is held.
func (s *serving) unbook(r *request) {
	if r.XID != 0 {
		delete(s.active, r.XID)
	} else {
		delete(s.notifies, r)
	}
	if s.budget != nil {
		s.budget.done()
	}
}

// retire removes a finished request from the books and frees its slot.
// s.mu is held; the caller frees r once it has let go of the lock.
func (s *serving) retire(r *request) {
	s.unbook(r)
	s.running--
	if r.Key != "" {
		s.nextOfKey(r.Key)
	}
	if s.held.len() > 0 {
		s.unhold()
	}
	if s.running == 0 && s.idle != nil {
		select {
		case <-s.idle:
		default:
			close(s.idle)
		}
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
