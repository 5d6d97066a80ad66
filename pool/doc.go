// Package pool is a client of many muxrpc connections: a [Pool] keeps
// ConnsPerEndpoint connections (each a mux.Mux) to every endpoint its
// [Resolver] gives, and has the calling API of a mux.Mux ([Pool.Call],
// [Pool.Go], [Pool.Stream], [Pool.Notify], [Pool.Close], [Pool.Done],
// [Pool.Err]), so
// that code written against a Mux moves to a Pool by changing its
// constructor from mux.Dial to [Dial].
//
// # Choosing a connection
//
// Each call goes to the less loaded of two ready connections chosen at
// random (the one with fewer calls in flight), which spreads load about
// as well as scanning them all, at a constant cost. Endpoints come from a
// Resolver: [Static] for a fixed list, [DNS] for names looked up again
// every [ResolveEvery] and after failures, or one of your own for other
// discovery. Behind a layer-4 load balancer, which pins each connection
// to one backend, give the balancer's address and raise
// [ConnsPerEndpoint] so that the connections spread over the backends.
//
// # Health and redial
//
// A connection that ends (its server died or hung up, or it stopped
// answering keepalive PINGs: keep mux.Keepalive on) or whose server sent
// GOAWAY takes no new calls from that moment; its calls in flight finish
// or fail, and it is replaced. Dialing an endpoint that fails waits longer
// after each failure in a row ([Backoff], with ±20% jitter); after three
// failures in a row the endpoint is set aside: one connection probes it on
// that schedule, and the others come back, spread over a short time, only
// once the probe connects, so that a server coming back is not flooded.
//
// # Retries
//
// A call that certainly did not run is retried on another connection:
// its request was never written (mux.ErrNotSent, as when the connection
// refused it after a GOAWAY or died with the request still queued), or the
// server refused it with frame.CodeShutdown or frame.CodeOverloaded. A
// call that may have run (its connection died while it waited for the
// reply) fails with an [*Error] wrapping [ErrMaybeRan], unless its
// context was marked with [Idempotent]; then it is retried too. Retries
// stay within the call's context and [MaxAttempts]; those that could load
// a sick server more (after CodeOverloaded, or of a call that may have
// run) also need the [RetryBudget], which stops retry storms as gRPC's
// retry throttling does. Every failure that
// is not a handler's answer says whether the call may have run:
// errors.Is(err, ErrMaybeRan) or errors.Is(err, ErrNotRun).
//
//	| first attempt fails with                      | retried?                 | error if not        |
//	|-----------------------------------------------|--------------------------|---------------------|
//	| mux.ErrNotSent and mux.ErrClosed              | yes, outside the budget  | ErrNotRun           |
//	| CodeShutdown                                  | yes, outside the budget  | ErrNotRun           |
//	| CodeOverloaded                                | yes, within the budget   | ErrNotRun           |
//	| mux.ErrClosed without mux.ErrNotSent          | if Idempotent, in budget | ErrMaybeRan         |
//	| ctx ended before sending                      | no                       | ErrNotRun           |
//	| ctx ended after sending                       | no                       | ErrMaybeRan         |
//	| args do not encode, too large                 | no                       | ErrNotRun           |
//	| any other handler error, a reply not decoding | no (the handler ran)     | returned as it is   |
//
// A Pool runs, for each connection slot, one goroutine that dials and
// watches the connection, one more while a connection drains, one that
// asks the Resolver, one for each stream in flight, and one for each call
// started by Go that must wait (for a connection, or before another
// attempt); a call of Go sent at once over a ready connection has none.
// Close stops and waits for them all.
//
// # Waiting for a server
//
// A connection becomes ready once its peer's preface has arrived
// (mux.Mux.Ready): a dial that reaches something other than a muxrpc
// server, or one that does not answer within the [DialTimeout], fails, and
// no call is sent there. While no connection is ready and none is being made (every
// endpoint failed its last dial), calls fail at once with ErrUnavailable,
// unless their context was made by [WaitForReady]: they then wait for a
// connection while the context lasts.
package pool
