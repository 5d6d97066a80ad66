package demux

import (
	"fmt"
	"sync/atomic"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/core"
)

// budget is what a Server's connections may take together: requests
// accepted and not yet finished (MaxServerInFlight) and bytes of requests
// held past a connection's MaxInFlight (MaxServerHeld). One is shared by
// every connection of a Server; a DeMux made with New has none. It is safe
// for concurrent use: every count is an atomic, changed by compare and
// swap, so that a count never passes its bound, even for an instant.
//
// A request takes its share in Accept and gives it back when it leaves the
// serving half's books: retired by its runner or dropped by Wait; held
// bytes from the hold until the request is queued or dropped.
type budget struct {
	maxInFlight int64
	maxHeld     int64
	inFlight    atomic.Int64 // requests accepted and not yet retired or dropped
	held        atomic.Int64 // bytes of held requests (see weight)
}

// newBudget returns a budget with cfg's server-wide bounds, or their
// defaults.
func newBudget(cfg *core.Config) *budget {
	b := &budget{maxInFlight: int64(cfg.MaxServerInFlight), maxHeld: int64(cfg.MaxServerHeld)}
	if b.maxInFlight <= 0 {
		b.maxInFlight = defaultMaxServerInFlight
	}
	if b.maxHeld <= 0 {
		b.maxHeld = defaultMaxServerHeld
	}
	return b
}

// take counts a request that is being accepted, and, if it is to be held,
// its weight w; or, if either would pass its bound, takes nothing and
// returns the refusal to answer it with.
func (b *budget) take(hold bool, w int) *frame.RemoteError {
	for {
		n := b.inFlight.Load()
		if n >= b.maxInFlight {
			return &frame.RemoteError{Code: frame.CodeOverloaded, Message: fmt.Sprintf(
				"server is overloaded: %d requests in flight across all connections (MaxServerInFlight %d)",
				n, b.maxInFlight)}
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			break
		}
	}
	if !hold {
		return nil
	}
	for {
		n := b.held.Load()
		if n > 0 && n+int64(w) > b.maxHeld { // a single request of any size is held when none is
			b.inFlight.Add(-1)
			return &frame.RemoteError{Code: frame.CodeOverloaded, Message: fmt.Sprintf(
				"server is overloaded: %d bytes of requests waiting across all connections (MaxServerHeld %d)",
				n, b.maxHeld)}
		}
		if b.held.CompareAndSwap(n, n+int64(w)) {
			return nil
		}
	}
}

// done gives back a request's count, once it is retired or dropped.
func (b *budget) done() { b.inFlight.Add(-1) }

// unhold gives back the weight w of a request that is no longer held.
func (b *budget) unhold(w int) { b.held.Add(-int64(w)) }

// withBudget makes the serving half that the options before it set up
// share b. NewServer appends it after Handle and the user's options.
func withBudget(b *budget) Option {
	return func(c *core.Config) {
		serve := c.Serve
		c.Serve = func(conn *core.Conn, cfg *core.Config) core.Server {
			srv := serve(conn, cfg)
			srv.(*serving).budget = b
			return srv
		}
	}
}
