package demux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/muxrpc/muxrpc/frame"
)

// ErrNotStream is returned by Yield and Recv in the handler of a request
// that its caller did not make as a stream (with mux.Stream or
// mux.CallProgress).
var ErrNotStream = errors.New("demux: the request is not a stream")

// ErrStreamEnded is returned by Yield once the handler has returned.
var ErrStreamEnded = errors.New("demux: stream ended")

// DefaultPushWindow is how many argument items Recv lets the caller send
// ahead of it: a handler that receives slowly makes the caller's
// mux.Stream.Send wait, with at most this many items held here.
const DefaultPushWindow = 16

// streamKey is the context key under which a handler's context carries
// its request's stream.
type streamKeyType struct{}

var streamKey any = streamKeyType{}

// serverStream is the state of a streaming request (a REQUEST with
// FlagStream): the credit the caller granted for results, and the argument
// items it pushed.
type serverStream struct {
	s     *serving
	xid   uint64
	flags frame.Flags // the priority bits of the request, for its YIELDs and TAKEs

	mu      sync.Mutex
	credit  uint32        // YIELDs the caller takes now
	items   []frame.Frame // PUSHed and not yet received
	granted uint32        // PUSHes granted and not yet received
	taken   uint32        // items received since the last TAKE
	asked   bool          // the first TAKE has gone
	closed  bool          // the caller sent CLOSE
	ended   bool          // the handler has returned
	room    chan struct{} // a token when the caller grants YIELDs
	more    chan struct{} // a token when an item or CLOSE comes
}

func newServerStream(s *serving, f *frame.Frame) *serverStream {
	return &serverStream{
		s: s, xid: f.XID, flags: f.Flags & frame.FlagPriorityMask, credit: f.Window,
		room: make(chan struct{}, 1), more: make(chan struct{}, 1),
	}
}

func streamFrom(ctx context.Context) *serverStream {
	st, _ := ctx.Value(streamKey).(*serverStream)
	return st
}

// Stream takes a WANT, PUSH or CLOSE frame. It runs on the reader
// goroutine. A frame for a request that has been answered is dropped (it
// crossed the answer); one for a request that is not a stream, or a PUSH
// beyond what the handler granted, is a protocol violation.
func (s *serving) Stream(f *frame.Frame) error {
	s.mu.Lock()
	r := s.active[f.XID]
	var st *serverStream
	if r != nil {
		st = r.ctx.stream()
	}
	s.mu.Unlock()
	switch {
	case r == nil:
		f.Release()
		return nil
	case st == nil:
		f.Release()
		return fmt.Errorf("%w: %v for request xid %d, which is not a stream", frame.ErrMalformed, f.Type, f.XID)
	}
	return st.deliver(f)
}

// deliver counts a WANT's grant, queues a PUSH's item or notes a CLOSE.
func (st *serverStream) deliver(f *frame.Frame) error {
	st.mu.Lock()
	if st.ended {
		st.mu.Unlock()
		f.Release()
		return nil
	}
	wake := st.more
	switch f.Type {
	case frame.TypeWant:
		if uint64(st.credit)+uint64(f.Window) > 1<<31 {
			st.mu.Unlock()
			return fmt.Errorf("%w: WANT for request xid %d takes its window past 2^31", frame.ErrMalformed, f.XID)
		}
		st.credit += f.Window
		wake = st.room
	case frame.TypePush:
		if st.granted == 0 || st.closed {
			st.mu.Unlock()
			f.Release()
			return fmt.Errorf("%w: PUSH for request xid %d that the server did not ask for", frame.ErrMalformed, f.XID)
		}
		st.granted--
		st.items = append(st.items, *f)
		*f = frame.Frame{}
	case frame.TypeClose:
		st.closed = true
	}
	st.mu.Unlock()
	f.Release()
	select {
	case wake <- struct{}{}:
	default:
	}
	return nil
}

// end marks the stream over once its handler has returned, and drops the
// items it did not receive.
func (st *serverStream) end() {
	st.mu.Lock()
	st.ended = true
	items := st.items
	st.items = nil
	st.mu.Unlock()
	for i := range items {
		items[i].Release()
	}
	select {
	case st.room <- struct{}{}: // a Yield on another goroutine sees the end
	default:
	}
}

// Yield sends v to the caller as the next result item of the streaming
// request whose handler got ctx, before the handler's final result. It
// waits while the caller has not taken earlier items (mux.Stream.Recv
// grants more as it receives), so that a slow caller holds up this
// handler and no other; it returns ctx's error if ctx ends first (the
// caller canceled, or its deadline passed), ErrNotStream if the caller
// did not make a stream, and ErrStreamEnded once the handler has returned.
func Yield(ctx context.Context, v any) error {
	st := streamFrom(ctx)
	if st == nil {
		return ErrNotStream
	}
	f := frame.Frame{Type: frame.TypeYield, Flags: st.flags, XID: st.xid}
	if err := f.EncodePayload(v); err != nil {
		return fmt.Errorf("demux: yielding %T: %w", v, err)
	}
	for {
		st.mu.Lock()
		if st.ended {
			st.mu.Unlock()
			f.Release()
			return ErrStreamEnded
		}
		if st.credit > 0 {
			st.credit--
			st.mu.Unlock()
			break
		}
		st.mu.Unlock()
		select {
		case <-st.room:
		case <-ctx.Done():
			f.Release()
			return ctx.Err()
		}
	}
	return st.s.send(&f)
}

// Progress reports v, a progress update, to a caller that asked for
// reports (mux.CallProgress, or any mux.Stream). It never waits: a report
// the caller has no room for yet is dropped, and so is every report to a
// caller that made a plain call. It returns an error only if v cannot be
// encoded or the stream is gone.
func Progress(ctx context.Context, v any) error {
	st := streamFrom(ctx)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	if st.ended || st.credit == 0 {
		st.mu.Unlock()
		return nil
	}
	st.credit--
	st.mu.Unlock()
	f := frame.Frame{Type: frame.TypeYield, Flags: st.flags, XID: st.xid}
	if err := f.EncodePayload(v); err != nil {
		return fmt.Errorf("demux: progress %T: %w", v, err)
	}
	return st.s.send(&f)
}

// Recv waits for the next argument item the caller sends with
// mux.Stream.Send and decodes it into v, a non-nil pointer. It returns
// io.EOF once the caller has called CloseSend and every item has been
// received, ctx's error if ctx ends first, and ErrNotStream if the caller
// did not make a stream. The caller may send DefaultPushWindow items ahead
// of Recv and no more.
func Recv(ctx context.Context, v any) error {
	st := streamFrom(ctx)
	if st == nil {
		return ErrNotStream
	}
	for {
		st.mu.Lock()
		var grant uint32
		if !st.asked {
			st.asked = true
			grant = DefaultPushWindow
		}
		if len(st.items) > 0 {
			f := st.items[0]
			st.items[0] = frame.Frame{}
			st.items = st.items[1:]
			if st.taken++; st.taken >= DefaultPushWindow/2 {
				grant += st.taken
				st.taken = 0
			}
			st.granted += grant
			closed := st.closed
			st.mu.Unlock()
			if grant > 0 && !closed {
				st.s.send(&frame.Frame{Type: frame.TypeTake, Flags: st.flags, XID: st.xid, Window: grant})
			}
			defer f.Release()
			if err := frame.DecodePayload(f.Payload, v); err != nil {
				return fmt.Errorf("demux: decoding an argument item into %T: %w", v, err)
			}
			return nil
		}
		st.granted += grant
		closed := st.closed
		st.mu.Unlock()
		if closed {
			return io.EOF
		}
		if grant > 0 {
			if err := st.s.send(&frame.Frame{Type: frame.TypeTake, Flags: st.flags, XID: st.xid, Window: grant}); err != nil {
				return err
			}
		}
		select {
		case <-st.more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
