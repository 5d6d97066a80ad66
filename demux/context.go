package demux

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/internal/core"
)

// reqContext is the context a handler runs with. It has no parent: the
// DeMux cancels it directly when the client sends CANCEL, when the stream
// ends and when the DeMux closes, and a timer cancels it at the caller's
// deadline. Made for each request and never reused, so a handler may keep
// it; it is kept small because every parked call holds one, and Done
// allocates its channel only when a handler asks for it.
type reqContext struct {
	conn     *core.Conn // the connection the request came on, the context's one value
	deadline *deadline  // nil if the caller sent no deadline and the request is no stream

	// state is a ctxState. It is written under mu, once, and read without
	// it: Err is on every request's path.
	state atomic.Uint32

	mu    sync.Mutex
	done  chan struct{} // nil until Done is called or the context ends
	after *afterFunc    // registered with AfterFunc, not yet run or stopped
}

// deadline is the caller's deadline and the timer that ends the context at
// it, and the request's stream: what few requests have. It lives apart from
// reqContext, which most requests, having neither, then hold one word
// smaller.
type deadline struct {
	stream *serverStream // nil unless the request is a stream
	at     time.Time     // zero if the caller sent no deadline
	timer  *time.Timer   // guarded by the context's mu; nil once stopped or fired
}

// ctxState says whether a context is live and, if not, why it ended.
type ctxState = uint32

const (
	live         ctxState = iota
	canceled              // the DeMux stopped or the handler returned
	peerCanceled          // the client sent CANCEL: no reply is wanted
	expired               // the caller's deadline passed
)

func stateErr(s ctxState) error {
	switch s {
	case canceled, peerCanceled:
		return context.Canceled
	case expired:
		return context.DeadlineExceeded
	}
	return nil
}

// afterFunc is an entry in a context's list of functions to run at its end.
type afterFunc struct {
	f    func()
	next *afterFunc
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

var _ context.Context = (*reqContext)(nil)

// newReqContext returns a live context, with a deadline budget from now if
// hasBudget.
func newReqContext(conn *core.Conn, hasBudget bool, budget time.Duration) *reqContext {
	c := &reqContext{conn: conn}
	if hasBudget {
		c.deadline = &deadline{at: time.Now().Add(budget)}
		if budget <= 0 {
			c.state.Store(expired)
			return c
		}
		c.mu.Lock() // the timer may fire before AfterFunc returns
		c.deadline.timer = time.AfterFunc(budget, func() { c.cancel(expired) })
		c.mu.Unlock()
	}
	return c
}

// Deadline returns the caller's deadline, if it sent one.
func (c *reqContext) Deadline() (time.Time, bool) {
	if c.deadline == nil || c.deadline.at.IsZero() {
		return time.Time{}, false
	}
	return c.deadline.at, true
}

// Done returns a channel closed when the context ends.
func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.state.Load() != live {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

// Err returns nil while the context is live, then why it ended.
func (c *reqContext) Err() error { return stateErr(c.state.Load()) }

// canceledByPeer reports whether the client canceled the request.
func (c *reqContext) canceledByPeer() bool { return c.state.Load() == peerCanceled }

// Value returns the connection the request came on for core.Key, which
// mux.FromContext and PeerFromContext look up, and nil for any other key.
func (c *reqContext) Value(key any) any {
	if key == core.Key && c.conn != nil {
		return c.conn
	}
	if key == streamKey {
		return c.stream()
	}
	return nil
}

// stream returns the request's stream, or nil if it is none.
func (c *reqContext) stream() *serverStream {
	if c.deadline == nil {
		return nil
	}
	return c.deadline.stream
}

// setStream makes st the request's stream; only Accept calls it, before
// any handler sees the context.
func (c *reqContext) setStream(st *serverStream) {
	if c.deadline == nil {
		c.deadline = &deadline{}
	}
	c.deadline.stream = st
}

// AfterFunc arranges for f to run once the context ends, and returns a
// function that cancels that if f has not started. It lets the context
// package derive contexts from this one without a goroutine per derived
// context; like context.AfterFunc, it runs f on a goroutine of its own if
// the context has already ended.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() != live {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f, next: c.after}
	c.after = a
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for p := &c.after; *p != nil; p = &(*p).next {
			if *p == a {
				*p = a.next
				return true
			}
		}
		return false
	}
}

// cancel ends the context for the given reason, if it is still live.
func (c *reqContext) cancel(why ctxState) {
	c.mu.Lock()
	if c.state.Load() != live {
		c.mu.Unlock()
		return
	}
	c.state.Store(why)
	if c.done == nil {
		c.done = closedChan
	} else {
		close(c.done)
	}
	after := c.after
	c.after = nil
	var timer *time.Timer
	if c.deadline != nil {
		timer, c.deadline.timer = c.deadline.timer, nil
	}
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	for a := after; a != nil; a = a.next {
		a.f()
	}
}

// String names the context for debugging, as the context package's do.
func (c *reqContext) String() string { return "demux.requestContext" }
