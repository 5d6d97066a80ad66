package mux

import (
	"context"
	"sync"
)

// GoFunc starts a call like Go and calls fn with it once it has finished,
// when Done is closed and Err and reply are final. fn is called exactly
// once per call, however the call ends: on the Mux's reader goroutine when
// the reply arrives, on the goroutine that ends the stream when it dies,
// on the short-lived goroutine that watches ctx when ctx ends first, and on
// the goroutine that called GoFunc, before GoFunc returns, when the call
// fails before it is sent.
//
// No goroutine waits for the call, nor is one started to run fn: fn must
// not block, as it may hold up the replies of every other call of the Mux.
// It should note the outcome and return (count, record, send on a buffered
// channel); it must not make a call with Call and wait for it. A nil fn
// makes GoFunc the same as Go.
func (m *Mux) GoFunc(ctx context.Context, method string, args, reply any, fn func(*Call)) *Call {
	return m.goCall(ctx, method, args, reply, fn)
}

// Group is a set of calls started together, possibly over several Muxes,
// whose outcome is the first error among them, as with
// golang.org/x/sync/errgroup: the calls share a context that is canceled
// as soon as one of them fails, so that the others end at once and their
// servers are told to cancel them. No goroutine waits for each call: the
// Group counts completions with GoFunc's callback.
//
// A Group is safe for concurrent use. Make one with NewGroup; the zero
// Group is not usable.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	then   func(*Call) // g.finished, made once

	mu      sync.Mutex
	pending int           // calls started and not finished; guarded by mu
	err     error         // the first error; guarded by mu
	idle    chan struct{} // made by Wait while calls are pending, closed when none is; guarded by mu
}

// NewGroup returns an empty Group whose calls run under a context derived
// from ctx (see Context). They carry the priority and ordering key that
// ctx carries, if any (WithPriority, WithKey).
func NewGroup(ctx context.Context) *Group {
	g := &Group{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	g.then = g.finished
	return g
}

// Context returns the context the Group's calls run under. It is canceled
// when a call of the Group fails, when Wait returns, or when the context
// given to NewGroup ends; work that should stop with the Group's calls
// may use it.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts a call on m with the Group's context, as Mux.Go does, and
// returns it. The call counts in the Group until it finishes; if it fails,
// and no call of the Group has failed before, its error is the one Wait
// returns and the Group's context is canceled. Go may be called while Wait
// waits; a Go after Wait has returned starts a call that fails at once, as
// the Group's context is canceled then.
func (g *Group) Go(m *Mux, method string, args, reply any) *Call {
	g.mu.Lock()
	g.pending++
	g.mu.Unlock()
	return m.GoFunc(g.ctx, method, args, reply, g.then)
}

// finished counts a finished call out, and records and acts on its error
// if it is the first. It runs as GoFunc's callback, so it must not block:
// it takes only g.mu, which nothing holds while it waits.
func (g *Group) finished(c *Call) {
	err := c.Err()
	g.mu.Lock()
	first := err != nil && g.err == nil
	if first {
		g.err = err
	}
	g.pending--
	if g.pending == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
	if first {
		g.cancel() // the other calls' watchers end them on goroutines of their own
	}
}

// Wait waits until every call started with Go has finished, cancels the
// Group's context and returns the first error of a call, or nil if every
// call succeeded. Each call ends by itself, at the latest when the
// context given to NewGroup ends or the stream it went on dies, so Wait
// takes no context of its own. It may be called more than once, and from
// several goroutines.
func (g *Group) Wait() error {
	g.mu.Lock()
	var idle chan struct{}
	if g.pending > 0 {
		if g.idle == nil {
			g.idle = make(chan struct{})
		}
		idle = g.idle
	}
	g.mu.Unlock()
	if idle != nil {
		<-idle
	}
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
