package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/demux"
)

// method is a handler the callers call in turn.
type method struct {
	name  string
	sleep time.Duration // at -delay 1
}

// methods are called in this order, over and over, by each caller.
var methods = []method{
	{"slow", 30 * time.Millisecond},
	{"medium", 20 * time.Millisecond},
	{"fast", 10 * time.Millisecond},
}

// failMethod is the method whose handler always fails, with failMessage.
const failMethod = "fail"

// failMessage is the error failMethod returns for one call; the caller
// expects exactly this message back, with frame.CodeApplication.
func failMessage(caller int, seq uint64) string {
	return fmt.Sprintf("caller %d call %d: failing as asked", caller, seq)
}

// message is the argument of every call and, with Method set by the
// handler (and Stamp in -nested mode), its reply. The server passes it on
// as the argument of its callback.
type message struct {
	Caller  int    `msgpack:"caller"`
	Seq     uint64 `msgpack:"seq"`
	Method  string `msgpack:"method,omitempty"`
	Payload []byte `msgpack:"payload"`
	Stamp   *stamp `msgpack:"stamp,omitempty"` // the callback's result
}

// server holds the server side's measurements. Its handlers are safe for
// concurrent use.
type server struct {
	running atomic.Int64 // handlers running now
	peak    atomic.Int64 // most handlers ever running at once
}

// handler returns the server's handler: the methods, whose sleeps are
// scaled by delay and which call the client back first if nested is set,
// and failMethod, all counted by s.
func (s *server) handler(delay float64, nested bool) demux.Handler {
	r := demux.NewRouter()
	for _, m := range methods {
		r.Handle(m.name, demux.Func(echo(m.name, time.Duration(float64(m.sleep)*delay), nested)))
	}
	r.Handle(failMethod, demux.Func(fail))
	handleBulk(r)
	return s.count(r)
}

// count wraps h so that s knows how many handlers run at once.
func (s *server) count(h demux.Handler) demux.Handler {
	return demux.HandlerFunc(func(ctx context.Context, req *demux.Request) (any, error) {
		n := s.running.Add(1)
		defer s.running.Add(-1)
		for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
		}
		return h.ServeRPC(ctx, req)
	})
}

// echo returns a handler that sends its arguments back with its method
// name after working for sleep. If nested is set, it first calls the
// client back with them and sends the callback's stamp back too.
func echo(name string, sleep time.Duration, nested bool) func(context.Context, message) (message, error) {
	return func(ctx context.Context, args message) (message, error) {
		args.Method = name
		if nested {
			s, err := callBack(ctx, &args)
			if err != nil {
				return message{}, err
			}
			args.Stamp = s
		}
		if err := pause(ctx, sleep); err != nil {
			return message{}, err
		}
		return args, nil
	}
}

// fail is failMethod's handler.
func fail(_ context.Context, args message) (message, error) {
	return message{}, errors.New(failMessage(args.Caller, args.Seq))
}

// pause stands for a handler's work: it waits for d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
