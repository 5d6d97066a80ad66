package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/mux"
)

// ErrMaybeRan is wrapped by the error of a call that failed after its
// request may have reached a handler: the connection died while the call
// waited for its reply, or the caller's context ended then. The handler
// may have run, in full or in part, or not at all. The Pool retries such a
// call only if it is marked Idempotent; otherwise the caller decides.
var ErrMaybeRan = errors.New("pool: the call may have run")

// ErrNotRun is wrapped by the error of a call that certainly did not run
// on any server, but could not be retried: no connection was ready, its
// context ended, its attempts or the retry budget were spent, or it could
// never succeed (its arguments do not encode). It is safe to try again.
var ErrNotRun = errors.New("pool: the call did not run")

// ErrUnavailable is wrapped, beside ErrNotRun, by the error of a call made
// when the Pool has no connection ready and none is being made: every
// endpoint failed its last dial, or the Resolver gave none.
var ErrUnavailable = errors.New("pool: no connection available")

// Error is the error of a call that the Pool failed without an answer from
// a handler. It wraps ErrMaybeRan or ErrNotRun, and the error of the last
// attempt (which wraps mux.ErrClosed, a context's error or a
// *frame.RemoteError with CodeShutdown or CodeOverloaded), so that
// errors.Is and errors.As see both.
type Error struct {
	Method   string // the method called
	Attempts int    // how many times the request was sent or tried
	MaybeRan bool   // some attempt may have run
	Err      error  // the last attempt's error
}

// Error describes the failure, saying whether the call may have run.
func (e *Error) Error() string {
	what := "did not run"
	if e.MaybeRan {
		what = "may have run"
	}
	return fmt.Sprintf("pool: call %q %s (%d attempts): %v", e.Method, what, e.Attempts, e.Err)
}

// Unwrap returns ErrMaybeRan or ErrNotRun, and the last attempt's error.
func (e *Error) Unwrap() []error {
	if e.MaybeRan {
		return []error{ErrMaybeRan, e.Err}
	}
	return []error{ErrNotRun, e.Err}
}

type idempotentKey struct{}

// Idempotent returns a context that marks the calls made with it (and with
// contexts derived from it) as safe to run more than once: if such a call
// fails after its request may have reached a handler, the Pool retries it
// on another connection, within the context's deadline and the retry
// budget, instead of failing with ErrMaybeRan. Mark only calls whose
// handler does no harm when run twice (reads, puts of a whole value,
// operations with a request id the server deduplicates).
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

func isIdempotent(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

type waitForReadyKey struct{}

// WaitForReady returns a context that makes the calls made with it (and
// with contexts derived from it) wait for a ready connection while the
// context lasts, even when every endpoint is failing and being redialed
// on its backoff schedule, instead of failing at once with
// ErrUnavailable; as gRPC's WaitForReady does. Given to Dial, it makes
// Dial wait in the same way for the first connection. Use it where a
// server that is down for a while (a deploy, a restart) is better waited
// for than reported; the context's deadline bounds the wait.
func WaitForReady(ctx context.Context) context.Context {
	return context.WithValue(ctx, waitForReadyKey{}, true)
}

func waitsForReady(ctx context.Context) bool {
	v, _ := ctx.Value(waitForReadyKey{}).(bool)
	return v
}

// outcome is what one attempt tells about a call.
type outcome uint8

const (
	answered    outcome = iota // a handler answered, with a result or an error
	transparent                // did not run, and says nothing of load: retried without the budget
	notRun                     // refused by an overloaded server; retrying may help
	notRunFinal                // certainly did not run; retrying cannot help now
	maybeRan                   // may have run; retried only if idempotent
	canceled                   // the caller's context ended after sending
)

// classify tells what err, the error of one attempt made with ctx, means.
func classify(ctx context.Context, err error) outcome {
	if errors.Is(err, mux.ErrNotSent) {
		if errors.Is(err, mux.ErrClosed) && ctx.Err() == nil {
			return transparent // the connection refused it: another may take it
		}
		return notRunFinal // its context ended, or it does not encode
	}
	var re *frame.RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case frame.CodeShutdown: // a server going away, not a sign of load
			return transparent
		case frame.CodeOverloaded:
			return notRun
		}
		return answered
	}
	if errors.Is(err, mux.ErrClosed) {
		return maybeRan
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return canceled
	}
	return answered // such as a reply that did not decode
}

// budget is the retry throttle RetryBudget documents, in thousandths of a
// token so that one atomic integer holds it.
type budget struct {
	tokens atomic.Int64
	max    int64
	ratio  int64
}

func newBudget(tokens, ratio float64) *budget {
	b := &budget{max: int64(math.Round(tokens * 1000)), ratio: max(1, int64(math.Round(ratio*1000)))}
	b.tokens.Store(b.max)
	return b
}

// success gives back ratio of a token. At steady state the budget is full,
// and this is one load.
func (b *budget) success() {
	for {
		t := b.tokens.Load()
		if t >= b.max {
			return
		}
		if b.tokens.CompareAndSwap(t, min(b.max, t+b.ratio)) {
			return
		}
	}
}

// failure takes one token.
func (b *budget) failure() {
	for {
		t := b.tokens.Load()
		if t <= 0 {
			return
		}
		if b.tokens.CompareAndSwap(t, max(0, t-1000)) {
			return
		}
	}
}

// allow reports whether a retry may be made now.
func (b *budget) allow() bool { return b.tokens.Load() > b.max/2 }
