package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/muxrpc/muxrpc/frame"
)

// DefaultStreamWindow is how many result items a Stream takes before the
// server must wait for it to receive some: the server may send that many
// ahead of Recv, and no more. A slow consumer thus stops its producer,
// holding at most this many items, while other calls go on.
const DefaultStreamWindow = 16

// ErrStreamEnded is returned by Stream.Send and Stream.CloseSend once the
// call is over (the server has answered, or the call failed or was
// canceled): Recv tells how it ended.
var ErrStreamEnded = errors.New("mux: stream ended")

// Stream is one streaming call: the handler may send any number of result
// items before its final result (see demux.Yield), and the caller may send
// any number of argument items (see demux.Recv). Both directions are
// flow-controlled per stream, so that a slow consumer makes its producer
// wait instead of growing memory or holding up other calls. Make one with
// Mux.Stream.
//
// Recv and Reply are for one goroutine, Send and CloseSend for one
// goroutine (it may be another); Close may be called from any goroutine.
type Stream struct {
	m      *Mux
	call   *Call
	method string
	ctx    context.Context
	cancel context.CancelFunc
	window uint32
	flags  frame.Flags // the priority bits of the call's frames

	mu     sync.Mutex
	items  []frame.Frame // YIELDed and not yet received
	credit uint32        // YIELDs the server may still send
	taken  uint32        // items received since the last WANT
	pushes uint32        // PUSHes the server has granted and not yet received
	closed bool          // CloseSend was called
	ended  bool          // end has run
	final  msgpack.RawMessage
	more   chan struct{} // a token when an item comes
	room   chan struct{} // a token when the server grants PUSHes
}

// Stream starts a streaming call of method with args and returns once the
// request is queued. Receive the handler's items with Recv until it
// returns io.EOF, then its final result with Reply; send argument items
// with Send and end them with CloseSend. Canceling ctx, its deadline, or
// Close end the stream on both ends: the handler's context is canceled.
// Call Close (or read to the end) to let go of the stream's resources.
//
// A handler that never yields makes Stream behave like Go; one that
// yields to a plain Call has its items dropped at its own end (see
// demux.Yield).
func (m *Mux) Stream(ctx context.Context, method string, args any) (*Stream, error) {
	if l, ok := m.ch.Codec().(frame.Limits); ok && !l.Carries(frame.TypeYield) {
		return nil, notSent(fmt.Errorf("mux: stream %q: the connection's dialect has no streams", method))
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{
		m: m, method: method, ctx: ctx, cancel: cancel,
		window: DefaultStreamWindow, credit: DefaultStreamWindow,
		more: make(chan struct{}, 1), room: make(chan struct{}, 1),
	}
	s.call = &Call{reply: &s.final, done: make(chan struct{})}
	if err := m.start(ctx, s.call, frame.TypeRequest, method, args, s); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// addStream registers s as the stream of the call with xid and marks its
// request f as streaming. m.mu is held.
func (m *Mux) addStream(xid uint64, s *Stream, f *frame.Frame) {
	if m.streams == nil {
		m.streams = make(map[uint64]*Stream)
	}
	m.streams[xid] = s
	f.Flags |= frame.FlagStream
	f.Window = s.window
	s.flags = f.Flags & frame.FlagPriorityMask
}

// removeStream forgets s, if it is still the stream of xid.
func (m *Mux) removeStream(xid uint64, s *Stream) {
	m.mu.Lock()
	if m.streams[xid] == s {
		delete(m.streams, xid)
	}
	m.mu.Unlock()
}

// Item takes a YIELD or TAKE for a streaming call. It runs on the reader
// goroutine. An item for a call that has ended is dropped; one beyond what
// the call granted is a protocol violation.
func (r *replies) Item(f *frame.Frame) error {
	m := (*Mux)(r)
	m.mu.Lock()
	s := m.streams[f.XID]
	plain := s == nil && m.pending.get(f.XID) != nil
	m.mu.Unlock()
	if s == nil { // not a stream, or one that has ended: nothing takes it
		f.Release()
		if plain {
			return fmt.Errorf("%w: %v for call xid %d, which is not a stream", frame.ErrMalformed, f.Type, f.XID)
		}
		return nil
	}
	return s.deliver(f)
}

// deliver queues a YIELD's item or counts a TAKE's grant.
func (s *Stream) deliver(f *frame.Frame) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		f.Release()
		return nil
	}
	wake := s.more
	if f.Type == frame.TypeTake {
		s.pushes += f.Window
		wake = s.room
	} else {
		if s.credit == 0 {
			s.mu.Unlock()
			f.Release()
			return fmt.Errorf("%w: YIELD for call xid %d beyond the %d items it granted", frame.ErrMalformed, f.XID, s.window)
		}
		s.credit--
		s.items = append(s.items, *f)
		*f = frame.Frame{}
	}
	s.mu.Unlock()
	f.Release()
	select {
	case wake <- struct{}{}:
	default:
	}
	return nil
}

// next returns the next item's frame, or the error that ends the stream:
// io.EOF if the handler returned its result.
func (s *Stream) next() (frame.Frame, error) {
	for {
		s.mu.Lock()
		if len(s.items) > 0 {
			f := s.items[0]
			s.items[0] = frame.Frame{}
			s.items = s.items[1:]
			s.taken++
			var grant uint32
			if s.taken >= max(s.window/2, 1) {
				grant, s.taken = s.taken, 0
				s.credit += grant
			}
			s.mu.Unlock()
			if grant > 0 {
				// Best effort: if the call has ended, the WANT is dropped
				// by the server.
				s.m.ch.Send(s.ctx, &frame.Frame{Type: frame.TypeWant, Flags: s.flags, XID: s.call.xid, Window: grant})
			}
			return f, nil
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-s.call.done:
			s.mu.Lock()
			n := len(s.items)
			s.mu.Unlock()
			if n > 0 {
				continue // items that came before the reply come first
			}
			s.end()
			if err := s.call.err; err != nil {
				return frame.Frame{}, err
			}
			return frame.Frame{}, io.EOF
		}
	}
}

// Recv waits for the next item the handler yields and decodes it into v,
// a non-nil pointer. Once the handler has returned and every item has been
// received, Recv returns io.EOF if the handler succeeded (Reply then gives
// its result) and the call's error otherwise; so does every later Recv.
func (s *Stream) Recv(v any) error {
	f, err := s.next()
	if err != nil {
		return err
	}
	defer f.Release()
	if err := frame.DecodePayload(f.Payload, v); err != nil {
		return fmt.Errorf("mux: stream %q: decoding an item into %T: %w", s.method, v, err)
	}
	return nil
}

// Reply waits for the call to end and decodes the handler's final result
// into v, a non-nil pointer, or returns the call's error. Items not yet
// received are dropped.
func (s *Stream) Reply(v any) error {
	<-s.call.done
	s.end()
	if err := s.call.err; err != nil {
		return err
	}
	if err := frame.DecodePayload(s.final, v); err != nil {
		return fmt.Errorf("mux: stream %q: decoding the reply into %T: %w", s.method, v, err)
	}
	return nil
}

// Send sends v as the next argument item. It waits while the handler has
// not asked for more items (demux.Recv grants them as it receives), until
// the call's context ends or the call is over, when it returns
// ErrStreamEnded.
func (s *Stream) Send(v any) error {
	f := frame.Frame{Type: frame.TypePush, Flags: s.flags, XID: s.call.xid}
	if err := f.EncodePayload(v); err != nil {
		return fmt.Errorf("mux: stream %q: %w", s.method, err)
	}
	for {
		s.mu.Lock()
		if s.closed || s.ended {
			s.mu.Unlock()
			f.Release()
			return fmt.Errorf("mux: stream %q: Send after CloseSend or the end: %w", s.method, ErrStreamEnded)
		}
		if s.pushes > 0 {
			s.pushes--
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-s.call.done:
			f.Release()
			return fmt.Errorf("mux: stream %q: %w", s.method, ErrStreamEnded)
		}
	}
	return s.m.ch.Send(s.ctx, &f)
}

// CloseSend tells the handler that no more argument items follow: its
// demux.Recv returns io.EOF once it has received those sent. Later Sends
// fail.
func (s *Stream) CloseSend() error {
	s.mu.Lock()
	if s.closed || s.ended {
		s.mu.Unlock()
		return fmt.Errorf("mux: stream %q: %w", s.method, ErrStreamEnded)
	}
	s.closed = true
	s.mu.Unlock()
	return s.m.ch.Send(s.ctx, &frame.Frame{Type: frame.TypeClose, Flags: s.flags, XID: s.call.xid})
}

// Done returns a channel that is closed once the call is over: the
// handler has returned, or the call failed or was canceled. Items already
// received may still be waiting for Recv.
func (s *Stream) Done() <-chan struct{} { return s.call.done }

// Close ends the stream: if the call is still going, it is canceled on
// both ends (as canceling its context does), and the items not yet
// received are dropped. It returns once the call has ended; it is safe to
// call more than once, and after Recv has returned io.EOF.
func (s *Stream) Close() error {
	s.cancel()
	<-s.call.done
	s.end()
	return nil
}

// end lets go of the stream once the call is over.
func (s *Stream) end() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	items := s.items
	s.items = nil
	s.mu.Unlock()
	for i := range items {
		items[i].Release()
	}
	s.m.removeStream(s.call.xid, s)
	s.cancel()
}

// Progress is one progress report of a call made with CallProgress.
type Progress struct{ f frame.Frame }

// Decode decodes the report into v, a non-nil pointer.
func (p *Progress) Decode(v any) error { return frame.DecodePayload(p.f.Payload, v) }

// CallProgress is Call for a method that reports progress (demux.Progress
// or demux.Yield): progress is called with each report, in order, on the
// calling goroutine, before CallProgress returns the final result into
// reply. The handler waits for progress to return before it may send more
// than DefaultStreamWindow reports ahead.
func (m *Mux) CallProgress(ctx context.Context, method string, args, reply any, progress func(*Progress)) error {
	s, err := m.Stream(ctx, method, args)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		f, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p := Progress{f: f}
		progress(&p)
		p.f.Release()
	}
	if reply == nil {
		return nil
	}
	return s.Reply(reply)
}
