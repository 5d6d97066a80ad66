package pool

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/mux"
)

// Pool sends calls over many connections to one or more servers, as one
// Mux sends them over one. It is safe for concurrent use by any number of
// goroutines. Make one with Dial; the zero Pool is not usable.
//
// Each new call goes to the less loaded of two connections chosen at
// random among those ready (the one with fewer calls in flight). A
// connection that ends, or whose server sends GOAWAY, stops taking new
// calls at once; its calls in flight finish or fail, and it is replaced.
type Pool struct {
	network string
	res     Resolver
	cfg     config
	log     *slog.Logger
	budget  *budget

	ready atomic.Pointer[[]*conn] // the connections taking calls; written under mu

	ctx    context.Context // ends at Close: stops dialing and resolving
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
	kick   chan struct{} // asks the resolver loop to resolve now; buffered 1

	mu        sync.Mutex
	closed    bool                 // guarded by mu
	endpoints map[string]*endpoint // by address; guarded by mu
	conns     []*conn              // the ready ones, as in ready; guarded by mu
	changed   chan struct{}        // closed and replaced on any change of state; guarded by mu
	lastErr   error                // the last dial's or resolve's error; guarded by mu

	stats struct {
		dials, dialFailures, retries, maybeRan, notRun atomic.Uint64
		goWaits                                        atomic.Uint64 // calls of Go that took a goroutine
	}
}

// conn is one connection of the Pool.
type conn struct {
	m        *mux.Mux
	inFlight atomic.Int64 // calls the Pool has running on m
	draining atomic.Bool  // set once m is out of the ready set
	idleOnce sync.Once
	idle     chan struct{} // closed once draining and no call is in flight
}

// take counts one more call in flight on c and reports whether c still
// takes calls; if it has left the ready set, take undoes the count.
func (c *conn) take() bool {
	c.inFlight.Add(1)
	if !c.draining.Load() {
		return true
	}
	c.release()
	return false
}

// release ends one call on c.
func (c *conn) release() {
	if c.inFlight.Add(-1) == 0 && c.draining.Load() {
		c.idleOnce.Do(func() { close(c.idle) })
	}
}

// Dial makes a Pool over the endpoints r gives, connecting
// ConnsPerEndpoint times to each over the named network ("tcp", "unix"
// and the rest, as for mux.Dial), and returns once one connection is ready.
// ctx bounds that first wait only. If r fails, or every endpoint fails to
// connect before any is ready, Dial fails with the last error, unless ctx
// was made by WaitForReady: then Dial waits for a connection, redialing
// on the Backoff schedule, until ctx ends.
//
// The Pool keeps connecting in the background from then on: it redials
// every connection that ends, and follows the endpoints r gives.
func Dial(ctx context.Context, network string, r Resolver, opts ...Option) (*Pool, error) {
	cfg := newConfig(opts)
	addrs, err := r.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("pool: dial: %w", err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("pool: dial: the resolver gave no endpoint: %w", ErrUnavailable)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		network:   network,
		res:       r,
		cfg:       cfg,
		log:       cfg.log,
		budget:    newBudget(cfg.budgetMax, cfg.budgetRatio),
		ctx:       pctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		endpoints: make(map[string]*endpoint),
		changed:   make(chan struct{}),
	}
	p.ready.Store(new([]*conn))
	p.mu.Lock()
	p.update(addrs)
	p.wg.Add(1)
	p.mu.Unlock()
	go p.resolveLoop()
	for {
		p.mu.Lock()
		n, connecting, lastErr, changed := len(p.conns), p.connecting(), p.lastErr, p.changed
		p.mu.Unlock()
		if n > 0 {
			return p, nil
		}
		if !connecting && !waitsForReady(ctx) {
			p.Close()
			return nil, fmt.Errorf("pool: dial: no endpoint could be reached: %w", lastErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			p.Close()
			if lastErr != nil {
				return nil, fmt.Errorf("pool: dial: %w (last failure: %w)", ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("pool: dial: %w", ctx.Err())
		}
	}
}

// Call calls method on a server with args and decodes the result into
// reply, as mux.Mux.Call does, over the least loaded ready connection.
//
// A call that certainly did not run (its request was never written, or
// the server refused it with CodeShutdown or CodeOverloaded) is retried on
// another connection, as is a call marked Idempotent that may have run,
// while ctx lasts, within MaxAttempts and the RetryBudget. What the
// handler returned, a result or an error, is returned as mux.Mux.Call
// returns it. Any other failure is an *Error, which wraps ErrMaybeRan or
// ErrNotRun and the last attempt's error: errors.Is(err, mux.ErrClosed)
// holds when connections failed, errors.Is(err, ctx.Err()) when ctx ended.
// After Close, calls fail with an error wrapping ErrNotRun and
// mux.ErrClosed. With no connection ready, Call waits while one is being
// made, and fails at once with ErrUnavailable when none is (every
// endpoint failed its last dial), unless ctx was made by WaitForReady:
// then it waits for a connection while ctx lasts.
//
// args must not change while Call runs; reply is written only by the
// attempt that gets the answer.
func (p *Pool) Call(ctx context.Context, method string, args, reply any) error {
	return p.attempts(ctx, method, args, reply, 1, nil, false)
}

// attempts makes the attempts of a call from the attempt-th on, after one
// on failed, if not nil, where mayHaveRun says whether an earlier attempt
// may have run, and returns the call's outcome as Call does.
func (p *Pool) attempts(ctx context.Context, method string, args, reply any, attempt int, failed *conn, mayHaveRun bool) error {
	for ; ; attempt++ {
		c, err := p.pick(ctx, failed, attempt)
		if err != nil {
			return p.fail(method, attempt-1, mayHaveRun, err)
		}
		err = c.m.Call(ctx, method, args, reply)
		c.release()
		var again bool
		if again, mayHaveRun, err = p.settle(ctx, method, attempt, mayHaveRun, err); !again {
			return err
		}
		failed = c
	}
}

// settle takes the outcome err of a call's attempt-th attempt, made with
// ctx, where mayHaveRun says whether an earlier attempt may have run. It
// reports whether to make another attempt; if not, it returns the call's
// outcome as Call does.
func (p *Pool) settle(ctx context.Context, method string, attempt int, mayHaveRun bool, err error) (again, mayHaveRunNow bool, result error) {
	if err == nil {
		p.budget.success()
		return false, mayHaveRun, nil
	}
	o := classify(ctx, err)
	switch o {
	case answered:
		p.budget.success()
		return false, mayHaveRun, err
	case notRunFinal:
		return false, mayHaveRun, p.fail(method, attempt, mayHaveRun, err)
	case canceled:
		return false, true, p.fail(method, attempt, true, err)
	case maybeRan:
		mayHaveRun = true
		if !isIdempotent(ctx) {
			return false, true, p.fail(method, attempt, true, err)
		}
	}
	// Every failed attempt is counted in the budget, the last too.
	if ctx.Err() != nil || !p.retryAllowed(o) || attempt >= p.cfg.maxAttempts {
		return false, mayHaveRun, p.fail(method, attempt, mayHaveRun, err)
	}
	p.stats.retries.Add(1)
	return true, mayHaveRun, nil
}

// retryAllowed takes a failed attempt that could be retried, of the given
// outcome, into account and reports whether the retry budget allows a
// retry. A request that never left this side, or that a server shutting
// down refused, cost that server nothing and tells nothing of load: it is
// retried without taking from the budget, as gRPC retries such calls
// transparently. Only an overloaded server's refusal and a call that may
// have run take a token.
func (p *Pool) retryAllowed(o outcome) bool {
	if o == transparent {
		return true
	}
	p.budget.failure()
	return p.budget.allow()
}

// fail makes the error of a call that failed without an answer.
func (p *Pool) fail(method string, attempts int, mayHaveRun bool, err error) error {
	if mayHaveRun {
		p.stats.maybeRan.Add(1)
	} else {
		p.stats.notRun.Add(1)
	}
	return &Error{Method: method, Attempts: attempts, MaybeRan: mayHaveRun, Err: err}
}

// Call is a call started by Pool.Go. Its methods are safe for concurrent
// use; the zero Call is not usable.
type Call struct {
	p      *Pool
	ctx    context.Context
	method string
	args   any
	reply  any

	conn       *conn // the connection of the attempt in flight
	attempt    int
	mayHaveRun bool
	then       func(*mux.Call) // c.finished, made once

	done chan struct{}
	err  error
}

// Done returns a channel that is closed when the call has finished.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err reports how the call ended, as Pool.Call would have returned; it is
// valid once Done is closed.
func (c *Call) Err() error { return c.err }

// Go starts a call like Call and returns at once. The returned Call's Done
// channel is closed when the call finishes; then Err reports how it ended,
// and reply holds the result if Err is nil.
//
// As with mux.Mux.Go, no goroutine waits for the call while a connection
// is ready: its first attempt is sent at once, and its outcome taken
// where the Mux reports it. Only a call that must wait (for a connection,
// or before another attempt) gets a goroutine, which makes the remaining
// attempts as Call does; Close waits for it.
func (p *Pool) Go(ctx context.Context, method string, args, reply any) *Call {
	c := &Call{p: p, ctx: ctx, method: method, args: args, reply: reply, done: make(chan struct{})}
	c.then = c.finished
	if p.isClosed() {
		c.end(p.fail(method, 0, false, fmt.Errorf("pool: %w", mux.ErrClosed)))
		return c
	}
	c.attempt = 1
	if conn := p.ready1(); conn != nil {
		c.conn = conn
		conn.m.GoFunc(ctx, method, args, reply, c.then)
		return c
	}
	c.wait(nil)
	return c
}

// isClosed reports whether Close has been called.
func (p *Pool) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait makes the call's remaining attempts, from c.attempt on, after one
// on failed if not nil, on a goroutine that waits as Call does.
func (c *Call) wait(failed *conn) {
	p := c.p
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.end(p.fail(c.method, c.attempt-1, c.mayHaveRun, fmt.Errorf("pool: %w", mux.ErrClosed)))
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	p.stats.goWaits.Add(1)
	go func() {
		defer p.wg.Done()
		c.end(p.attempts(c.ctx, c.method, c.args, c.reply, c.attempt, failed, c.mayHaveRun))
	}()
}

// finished takes the outcome of the attempt in flight. It runs where the
// Mux reports it (see mux.Mux.GoFunc) and must not block: another
// attempt, which may wait for room in a connection's send queue, goes to
// a goroutine.
func (c *Call) finished(mc *mux.Call) {
	conn := c.conn
	c.conn = nil
	conn.release()
	again, mayHaveRun, err := c.p.settle(c.ctx, c.method, c.attempt, c.mayHaveRun, mc.Err())
	c.mayHaveRun = mayHaveRun
	if !again {
		c.end(err)
		return
	}
	c.attempt++
	c.wait(conn)
}

// end finishes the call with err.
func (c *Call) end(err error) {
	c.err = err
	c.args, c.reply = nil, nil
	close(c.done)
}

// ready1 returns a ready connection with one more call counted in flight
// on it, or nil if none is ready now; it never waits.
func (p *Pool) ready1() *conn {
	for range 3 {
		c := choose(*p.ready.Load(), nil)
		if c == nil || c.take() {
			return c
		}
		// c left the ready set, which now lacks it: choose again.
	}
	return nil
}

// Stream starts a streaming call, as mux.Mux.Stream does, over the least
// loaded ready connection, and returns once its request is queued. A
// stream that the connection refused before queueing it (after a GOAWAY,
// or as the connection died) is started on another; once started, a
// stream belongs to its connection and its server, and is never started
// again: should the connection die, Recv returns the error (wrapping
// mux.ErrClosed), even for an Idempotent ctx, since items may have been
// received. The connection counts the stream as a call in flight until
// it is over, so that a connection draining after a GOAWAY stays open for
// it. After Close, Stream fails with an error wrapping ErrNotRun and
// mux.ErrClosed, and streams in flight end with mux.ErrClosed.
//
// Each stream has a goroutine of the Pool's that waits for it to be over;
// Close waits for it.
func (p *Pool) Stream(ctx context.Context, method string, args any) (*mux.Stream, error) {
	var failed *conn
	for attempt := 1; ; attempt++ {
		c, err := p.pick(ctx, failed, attempt)
		if err != nil {
			return nil, p.fail(method, attempt-1, false, err)
		}
		s, err := c.m.Stream(ctx, method, args)
		if err == nil {
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				s.Close()
				c.release()
				return nil, p.fail(method, attempt, false, fmt.Errorf("pool: %w", mux.ErrClosed))
			}
			p.wg.Add(1)
			p.mu.Unlock()
			go func() {
				defer p.wg.Done()
				<-s.Done()
				c.release()
			}()
			return s, nil
		}
		c.release()
		if classify(ctx, err) != transparent || attempt >= p.cfg.maxAttempts {
			return nil, p.fail(method, attempt, false, err)
		}
		p.stats.retries.Add(1)
		failed = c
	}
}

// Notify sends a one-way request, as mux.Mux.Notify does, over the least
// loaded ready connection. A notification the connection refused before
// queueing it (after a GOAWAY, or as it died) is sent on another; once
// queued, it is not known whether it ran, and it is not sent again.
func (p *Pool) Notify(ctx context.Context, method string, args any) error {
	var failed *conn
	for attempt := 1; ; attempt++ {
		c, err := p.pick(ctx, failed, attempt)
		if err != nil {
			return p.fail(method, attempt-1, false, err)
		}
		err = c.m.Notify(ctx, method, args)
		c.release()
		if err == nil {
			return nil
		}
		if classify(ctx, err) != transparent || attempt >= p.cfg.maxAttempts {
			return p.fail(method, attempt, false, err)
		}
		p.stats.retries.Add(1)
		failed = c
	}
}

// pick returns a ready connection with one more call counted in flight on
// it, avoiding failed (the connection the previous attempt failed on)
// while there is another. It waits while no connection is ready but one
// is being made.
func (p *Pool) pick(ctx context.Context, failed *conn, attempt int) (*conn, error) {
	for {
		cs := *p.ready.Load()
		c := choose(cs, failed)
		if c == nil && failed != nil && len(cs) > 0 {
			// Only the connection that just failed is ready: wait a
			// little before trying it again, as its server sheds load.
			if err := sleep(ctx, p.done, jitter(time.Duration(attempt)*10*time.Millisecond)); err != nil {
				return nil, err
			}
			failed = nil
			continue
		}
		if c != nil {
			if c.take() {
				return c, nil
			}
			continue // it left the ready set, which now lacks it
		}
		p.mu.Lock()
		closed, n, connecting, lastErr, changed := p.closed, len(p.conns), p.connecting(), p.lastErr, p.changed
		p.mu.Unlock()
		switch {
		case closed:
			return nil, fmt.Errorf("pool: %w", mux.ErrClosed)
		case n > 0:
			continue
		case !connecting && !waitsForReady(ctx):
			if lastErr != nil {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
			}
			return nil, ErrUnavailable
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lastErr != nil && !connecting {
				return nil, fmt.Errorf("pool: waiting for a connection: %w (%w: %w)", ctx.Err(), ErrUnavailable, lastErr)
			}
			return nil, fmt.Errorf("pool: waiting for a connection: %w", ctx.Err())
		}
	}
}

// sleep waits for d, or until ctx ends or stop is closed.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return fmt.Errorf("pool: %w", mux.ErrClosed)
	}
}

// choose returns the less loaded of two connections of cs chosen at
// random, avoiding avoid, or nil if cs has none but avoid.
func choose(cs []*conn, avoid *conn) *conn {
	switch len(cs) {
	case 0:
		return nil
	case 1:
		if cs[0] == avoid {
			return nil
		}
		return cs[0]
	}
	i := rand.IntN(len(cs))
	j := rand.IntN(len(cs) - 1)
	if j >= i {
		j++
	}
	a, b := cs[i], cs[j]
	switch {
	case a == avoid:
		return b
	case b == avoid:
		return a
	case b.inFlight.Load() < a.inFlight.Load():
		return b
	}
	return a
}

// Close closes every connection and stops the Pool: calls in flight fail
// with an error wrapping mux.ErrClosed (and ErrMaybeRan, unless they were
// never sent), as do later calls. Close waits for the Pool's goroutines,
// and those of calls started by Go, to exit. It returns nil, and is safe
// to call more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
		p.broadcast()
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// Done returns a channel that is closed once Close has been called. Unlike
// a Mux's, it is not closed when connections end: the Pool replaces them.
func (p *Pool) Done() <-chan struct{} { return p.done }

// Err returns nil until Close has been called, then an error wrapping
// mux.ErrClosed.
func (p *Pool) Err() error {
	if p.isClosed() {
		return fmt.Errorf("pool: %w", mux.ErrClosed)
	}
	return nil
}

// Stats counts what a Pool has done, for metrics and tests.
type Stats struct {
	Endpoints    int    // endpoints the Resolver gave last
	Conns        int    // connections ready now
	Dials        uint64 // attempts to connect
	DialFailures uint64 // attempts to connect that failed
	Retries      uint64 // attempts after the first, of calls and notifications
	MaybeRan     uint64 // calls that failed with ErrMaybeRan
	NotRun       uint64 // calls and notifications that failed with ErrNotRun
}

// Stats returns the Pool's counts now.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	s := Stats{Endpoints: len(p.endpoints), Conns: len(p.conns)}
	p.mu.Unlock()
	s.Dials = p.stats.dials.Load()
	s.DialFailures = p.stats.dialFailures.Load()
	s.Retries = p.stats.retries.Load()
	s.MaybeRan = p.stats.maybeRan.Load()
	s.NotRun = p.stats.notRun.Load()
	return s
}

// broadcast wakes whoever waits for a change of state. p.mu must be held.
func (p *Pool) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// connecting reports whether a connection is being made to an endpoint
// that has not failed since it last connected, so that a call is worth
// waiting for it. p.mu must be held.
func (p *Pool) connecting() bool {
	if p.closed {
		return false
	}
	for _, ep := range p.endpoints {
		if ep.fails == 0 {
			return true
		}
	}
	return false
}

// removeConn takes c out of the ready set and marks it draining.
func (p *Pool) removeConn(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*conn, 0, len(p.conns))
	for _, o := range p.conns {
		if o != c {
			cs = append(cs, o)
		}
	}
	p.conns = cs
	p.publish()
	c.draining.Store(true)
	if c.inFlight.Load() == 0 {
		c.idleOnce.Do(func() { close(c.idle) })
	}
}

// publish makes p.conns the ready set and wakes waiters. p.mu must be
// held; p.conns is never changed in place once published.
func (p *Pool) publish() {
	cs := p.conns
	p.ready.Store(&cs)
	p.broadcast()
}

// resolveNow asks the resolver loop to resolve soon.
func (p *Pool) resolveNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// resolveLoop asks the Resolver for the endpoints every ResolveEvery, and
// when asked to by resolveNow, at most once a second.
func (p *Pool) resolveLoop() {
	defer p.wg.Done()
	t := time.NewTimer(p.cfg.resolveEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-p.kick:
		case <-p.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.dialTimeout)
		addrs, err := p.res.Resolve(ctx)
		cancel()
		p.mu.Lock()
		switch {
		case p.closed:
		case err != nil:
			p.lastErr = err
			p.log.Debug("muxrpc pool: resolve failed; keeping the endpoints", "err", err)
		case len(addrs) == 0:
			p.log.Debug("muxrpc pool: the resolver gave no endpoint; keeping the endpoints")
		default:
			p.update(addrs)
		}
		p.mu.Unlock()
		t.Reset(p.cfg.resolveEvery)
		if sleep(p.ctx, nil, time.Second) != nil { // at most once a second
			return
		}
	}
}

// update makes addrs the endpoints: it starts the new ones and stops
// those no longer given, whose connections drain. p.mu must be held.
func (p *Pool) update(addrs []string) {
	if p.closed {
		return
	}
	keep := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		keep[a] = true
		if p.endpoints[a] != nil {
			continue
		}
		ep := newEndpoint(p, a)
		p.endpoints[a] = ep
		p.log.Debug("muxrpc pool: new endpoint", "addr", a)
		for slot := range p.cfg.perEndpoint {
			p.wg.Add(1)
			go ep.run(slot)
		}
	}
	for a, ep := range p.endpoints {
		if !keep[a] {
			p.log.Debug("muxrpc pool: endpoint gone", "addr", a)
			delete(p.endpoints, a)
			ep.cancel()
		}
	}
	p.broadcast()
}
