package demux

import (
	"context"
	"sync"
	"time"
)

// reqContext is the context a handler runs with. It has no parent: the
// DeMux cancels it directly when the client sends CANCEL, when the stream
// ends and when the DeMux closes, and a timer cancels it at the caller's
// deadline. Made for each request and never reused, so a handler may keep
// it; it costs one allocation, and Done allocates its channel only when a
// handler asks for it.
type reqContext struct {
	deadline time.Time // zero if none

	mu    sync.Mutex
	done  chan struct{} // nil until Done is called or the context ends
	err   error
	timer *time.Timer
	after []*afterFunc // registered with AfterFunc, not yet run or stopped
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

var _ context.Context = (*reqContext)(nil)

// newReqContext returns a live context, with a deadline budget from now if
// hasBudget.
func newReqContext(hasBudget bool, budget time.Duration) *reqContext {
	c := &reqContext{}
	if hasBudget {
		c.deadline = time.Now().Add(budget)
		if budget <= 0 {
			c.err = context.DeadlineExceeded
			return c
		}
		c.timer = time.AfterFunc(budget, func() { c.cancel(context.DeadlineExceeded) })
	}
	return c
}

// Deadline returns the caller's deadline, if it sent one.
func (c *reqContext) Deadline() (time.Time, bool) {
	return c.deadline, !c.deadline.IsZero()
}

// Done returns a channel closed when the context ends.
func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

// Err returns nil while the context is live, then why it ended.
func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value returns nil: a request context carries no values.
func (c *reqContext) Value(any) any { return nil }

// AfterFunc arranges for f to run once the context ends, and returns a
// function that cancels that if f has not started. It lets the context
// package derive contexts from this one without a goroutine per derived
// context; like context.AfterFunc, it runs f on a goroutine of its own if
// the context has already ended.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	c.after = append(c.after, a)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, b := range c.after {
			if b == a {
				c.after = append(c.after[:i], c.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

// cancel ends the context with err, if it is still live.
func (c *reqContext) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done == nil {
		c.done = closedChan
	} else {
		close(c.done)
	}
	after, timer := c.after, c.timer
	c.after, c.timer = nil, nil
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	for _, a := range after {
		a.f()
	}
}

// String names the context for debugging, as the context package's do.
func (c *reqContext) String() string { return "demux.requestContext" }
