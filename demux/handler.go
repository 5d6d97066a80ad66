package demux

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/muxrpc/muxrpc/frame"
)

// Request is one call as a Handler sees it. It and the bytes behind Decode
// are valid only until ServeRPC returns: a handler that starts work that
// outlives the call must decode what it needs first. The DeMux makes
// Requests; handlers only read them.
type Request struct {
	// Method is the name the caller asked for.
	Method string
	// XID is the transaction id the caller's Mux gave the call; 0 for a
	// notification.
	XID uint64
	// Notify is true when the caller wants no reply: whatever the handler
	// returns is dropped.
	Notify bool

	payload []byte
}

// Decode decodes the request's msgpack arguments into v, a non-nil
// pointer. Arguments that do not decode give a *frame.RemoteError with
// CodeBadRequest, so a handler that returns the error unchanged tells the
// caller its request was bad.
func (r *Request) Decode(v any) error {
	if err := frame.DecodePayload(r.payload, v); err != nil {
		return &frame.RemoteError{
			Code:    frame.CodeBadRequest,
			Message: fmt.Sprintf("arguments of %q: %v", r.Method, err),
		}
	}
	return nil
}

// Handler serves requests.
//
// ServeRPC is called once per request, on a pool worker or a goroutine of
// its own, and may block. ctx is canceled when the caller gives up (its
// context ended and it sent a CANCEL), when the caller's deadline passes
// (ctx carries it), when the stream dies and when the DeMux is closed;
// ServeRPC should then return soon, as Close and Serve wait for it. ctx
// carries no values, and it is canceled once ServeRPC has returned.
//
// The result is encoded with msgpack for the caller; it is dropped for a
// notification. An error goes back as a *frame.RemoteError: returned as is
// if it is one (or wraps one, whose code is kept), with CodeCanceled or
// CodeDeadlineExceeded if it wraps the matching context error, else with
// CodeApplication and err.Error() as the message. A panic is recovered and
// sent back with CodePanic. ServeRPC must not keep req after it returns, and
// must not call the DeMux's Close or Shutdown, which wait for it.
type Handler interface {
	ServeRPC(ctx context.Context, req *Request) (any, error)
}

// HandlerFunc lets an ordinary function be a Handler.
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// ServeRPC calls f(ctx, req).
func (f HandlerFunc) ServeRPC(ctx context.Context, req *Request) (any, error) {
	return f(ctx, req)
}

// Func adapts a typed function into a Handler: the request's arguments are
// decoded into an A (a bad request is answered with CodeBadRequest without
// calling fn) and fn's R is the result.
func Func[A, R any](fn func(ctx context.Context, args A) (R, error)) Handler {
	// Arguments are decoded into pooled values and passed on by value, so
	// decoding does not allocate the A itself.
	pool := sync.Pool{New: func() any { return new(A) }}
	return HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		p := pool.Get().(*A)
		err := req.Decode(p)
		args := *p
		var zero A
		*p = zero
		pool.Put(p)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, args)
		if err != nil {
			return nil, err
		}
		return res, nil
	})
}

// Router is a Handler that sends each request to the Handler registered
// for its method and answers unknown methods with CodeNoMethod. The zero
// Router is not usable; make one with NewRouter. Handle may be called while
// the Router serves; lookups take no lock.
type Router struct {
	mu       sync.Mutex // serializes Handle
	handlers atomic.Pointer[map[string]Handler]
}

// NewRouter returns an empty Router.
func NewRouter() *Router {
	r := &Router{}
	r.handlers.Store(&map[string]Handler{})
	return r
}

// Handle registers h for method. It panics if method is empty, h is nil or
// method already has a handler, as these are programming errors.
func (r *Router) Handle(method string, h Handler) {
	if method == "" {
		panic("demux: Handle with an empty method name")
	}
	if h == nil {
		panic("demux: Handle " + method + " with a nil handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.handlers.Load()
	if _, dup := old[method]; dup {
		panic("demux: method " + method + " registered twice")
	}
	m := make(map[string]Handler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[method] = h
	r.handlers.Store(&m)
}

// ServeRPC dispatches req to the handler registered for req.Method.
func (r *Router) ServeRPC(ctx context.Context, req *Request) (any, error) {
	h, ok := (*r.handlers.Load())[req.Method]
	if !ok {
		return nil, &frame.RemoteError{
			Code:    frame.CodeNoMethod,
			Message: fmt.Sprintf("no method %q", req.Method),
		}
	}
	return h.ServeRPC(ctx, req)
}
