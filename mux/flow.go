package mux

import (
	"context"
	"fmt"

	"github.com/muxrpc/muxrpc/frame"
)

// Priority orders a call against the others of its stream: its request
// is written, and started by the serving side, before waiting requests of
// lower priority, and its reply comes back with the same priority. It is
// frame.Priority, so that a user need not import package frame; the zero
// Priority is PriorityNormal. The serving side bounds how long lower
// priorities wait (see package demux).
type Priority = frame.Priority

// Priorities, lowest first.
const (
	PriorityLow    = frame.PriorityLow
	PriorityNormal = frame.PriorityNormal
	PriorityHigh   = frame.PriorityHigh
	PriorityUrgent = frame.PriorityUrgent
)

// flowKey is the context key of a flow.
type flowKey struct{}

// flow is what WithPriority and WithKey put in a context: one value for
// both, so that start looks it up once.
type flow struct {
	priority Priority
	key      string
}

// flowOf returns the flow ctx carries, or the zero flow.
func flowOf(ctx context.Context) flow {
	f, _ := ctx.Value(flowKey{}).(flow)
	return f
}

// WithPriority returns a copy of ctx under which calls (Call, Go, GoFunc,
// Notify and a Group's calls) are sent with priority p instead of
// PriorityNormal. A p outside the four priorities counts as the nearest of
// them. It keeps the ordering key of ctx, if any.
func WithPriority(ctx context.Context, p Priority) context.Context {
	f := flowOf(ctx)
	f.priority = p
	return context.WithValue(ctx, flowKey{}, f)
}

// WithKey returns a copy of ctx under which calls (Call, Go, GoFunc,
// Notify and a Group's calls) carry the ordering key key: the serving side
// runs the requests of one key one at a time, in the order they arrive,
// while requests with other keys or none run in parallel (see package
// demux). Requests that one goroutine sends at one priority arrive in the
// order it sent them; the writer sends higher priorities first, so give the
// calls of a key one priority when their order matters. An empty key means
// none. A key longer than frame.MaxKeyLen (255)
// bytes makes each call fail before sending, with an error wrapping
// ErrNotSent. It keeps the priority of ctx, if any.
func WithKey(ctx context.Context, key string) context.Context {
	f := flowOf(ctx)
	f.key = key
	return context.WithValue(ctx, flowKey{}, f)
}

// setFlow gives the request f the priority and ordering key of ctx.
func setFlow(ctx context.Context, f *frame.Frame) error {
	fl := flowOf(ctx)
	if fl.priority != PriorityNormal {
		f.Flags = f.Flags.WithPriority(fl.priority)
	}
	if fl.key != "" {
		if len(fl.key) > frame.MaxKeyLen {
			return fmt.Errorf("mux: call %q: ordering key of %d bytes, longest is %d", f.Method, len(fl.key), frame.MaxKeyLen)
		}
		f.Flags |= frame.FlagKey
		f.Key = fl.key
	}
	return nil
}

// cancelFlags are the flags of the CANCEL of a call made with ctx: the
// call's priority.
func cancelFlags(ctx context.Context) frame.Flags {
	return frame.Flags(0).WithPriority(flowOf(ctx).priority)
}
