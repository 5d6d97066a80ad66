package demux

import (
	"context"
	"fmt"
	"reflect"
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
	// Priority is the priority the caller gave the request
	// (mux.WithPriority); the reply goes back with it.
	Priority frame.Priority
	// Key is the request's ordering key (mux.WithKey), or "" for none:
	// requests with the same key run one at a time, in arrival order.
	Key string

	// in is the request's frame, whose Payload holds the arguments while
	// the handler runs; nil once it has returned. A pointer rather than
	// the payload itself keeps a parked request in a smaller size class.
	in *frame.Frame
}

// payload returns the request's encoded arguments.
func (r *Request) payload() []byte {
	if r.in == nil {
		return nil
	}
	return r.in.Payload
}

// Decode decodes the request's msgpack arguments into v, a non-nil
// pointer. Arguments that do not decode give a *frame.RemoteError with
// CodeBadRequest, so a handler that returns the error unchanged tells the
// caller its request was bad.
func (r *Request) Decode(v any) error {
	if err := frame.DecodePayload(r.payload(), v); err != nil {
		return r.badArguments(goType(v), err)
	}
	return nil
}

// goType names the Go type a pointer passed to Decode points to.
func goType(v any) string {
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return fmt.Sprint(t)
}

// badArguments is the error a handler returns for arguments it cannot
// read into a want: the caller's request was bad. It names the method and
// the Go type the arguments should have decoded into.
func (r *Request) badArguments(want string, err error) error {
	return &frame.RemoteError{
		Code:    frame.CodeBadRequest,
		Message: fmt.Sprintf("arguments of %q do not decode into %s: %v", r.Method, want, err),
	}
}

// Bytes returns the request's argument when it is a byte string (msgpack
// bin or str, as a []byte or string argument is sent) or nil, without
// copying it: the slice refers to the request's own bytes, so it is valid
// only until ServeRPC returns and must not be modified. A handler may
// return it, or a part of it, as its result, as results are encoded before
// those bytes are reused; it must copy what it keeps. Any other argument
// gives a *frame.RemoteError with CodeBadRequest, as Decode does.
func (r *Request) Bytes() ([]byte, error) {
	b, err := frame.PayloadBytes(r.payload())
	if err != nil {
		return nil, r.badArguments("[]byte", err)
	}
	return b, nil
}

// Handler serves requests.
//
// ServeRPC is called once per request, on a pool worker or a goroutine of
// its own, and may block. ctx is canceled when the caller gives up (its
// context ended and it sent a CANCEL), when the caller's deadline passes
// (ctx carries it), when the stream dies and when the DeMux is closed;
// ServeRPC should then return soon, as Close and Serve wait for it. ctx
// carries one value, the connection, which PeerFromContext and
// mux.FromContext read; it is canceled once ServeRPC has returned.
//
// The result is encoded with msgpack for the caller; it is dropped for a
// notification. An error goes back as a *frame.RemoteError: returned as is
// if it is one (or wraps one, whose code is kept), except that code 0 goes
// out as CodeApplication; with CodeCanceled or CodeDeadlineExceeded if it
// wraps the matching context error; else with CodeApplication and
// err.Error() as the message. A panic is recovered and
// sent back with CodePanic. ServeRPC must not keep req after it returns, and
// must not call the DeMux's Close or Shutdown, nor Close the Mux that
// mux.FromContext returns, as they wait for it.
type Handler interface {
	ServeRPC(ctx context.Context, req *Request) (any, error)
}

// encoder is a Handler that encodes its own result into the reply frame,
// which lets Func hand over a typed result without boxing it into an any.
// Router is one, so that it passes the saving on.
type encoder interface {
	Handler
	// serveEncoded serves req like ServeRPC and, if out is not nil and the
	// handler succeeds, encodes the result into out.
	serveEncoded(ctx context.Context, req *Request, out *frame.Frame) error
}

// serve runs h for req and, if out is not nil and h succeeds, encodes the
// result into out.
func serve(ctx context.Context, h Handler, req *Request, out *frame.Frame) error {
	if e, ok := h.(encoder); ok {
		return e.serveEncoded(ctx, req, out)
	}
	res, err := h.ServeRPC(ctx, req)
	if err != nil || out == nil {
		return err
	}
	return encodeResult(out, req.Method, res)
}

// encodeResult encodes v, a result of method, into f. A result that msgpack
// cannot encode is the server's fault: CodeInternal.
func encodeResult(f *frame.Frame, method string, v any) error {
	if err := f.EncodePayload(v); err != nil {
		return &frame.RemoteError{Code: frame.CodeInternal, Message: "result of " + method + ": " + err.Error()}
	}
	return nil
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
	// decoding does not allocate the A itself; results are encoded from
	// pooled values, which saves boxing them into an any.
	return &funcHandler[A, R]{
		fn:      fn,
		args:    sync.Pool{New: func() any { return new(A) }},
		results: sync.Pool{New: func() any { return new(R) }},
	}
}

type funcHandler[A, R any] struct {
	fn      func(ctx context.Context, args A) (R, error)
	args    sync.Pool // of *A
	results sync.Pool // of *R
}

// call decodes the arguments and calls fn.
func (h *funcHandler[A, R]) call(ctx context.Context, req *Request) (R, error) {
	p := h.args.Get().(*A)
	err := req.Decode(p)
	args := *p
	var zero A
	*p = zero
	h.args.Put(p)
	if err != nil {
		var none R
		return none, err
	}
	return h.fn(ctx, args)
}

// ServeRPC implements Handler.
func (h *funcHandler[A, R]) ServeRPC(ctx context.Context, req *Request) (any, error) {
	res, err := h.call(ctx, req)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (h *funcHandler[A, R]) serveEncoded(ctx context.Context, req *Request, out *frame.Frame) error {
	res, err := h.call(ctx, req)
	if err != nil || out == nil {
		return err
	}
	p := h.results.Get().(*R)
	*p = res
	err = encodeResult(out, req.Method, p) // a *R encodes as its R does
	var zero R
	*p = zero
	h.results.Put(p)
	return err
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
	h, err := r.lookup(req.Method)
	if err != nil {
		return nil, err
	}
	return h.ServeRPC(ctx, req)
}

func (r *Router) serveEncoded(ctx context.Context, req *Request, out *frame.Frame) error {
	h, err := r.lookup(req.Method)
	if err != nil {
		return err
	}
	return serve(ctx, h, req, out)
}

// lookup returns the handler registered for method, or the CodeNoMethod
// error the caller gets without one.
func (r *Router) lookup(method string) (Handler, error) {
	if h, ok := (*r.handlers.Load())[method]; ok {
		return h, nil
	}
	return nil, &frame.RemoteError{Code: frame.CodeNoMethod, Message: fmt.Sprintf("no method %q", method)}
}
