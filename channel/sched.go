package channel

import (
	"github.com/muxrpc/muxrpc/frame"
)

// DefaultChunkSize is the largest body a frame is written with when
// Config.ChunkSize is zero: a message with a longer body is split into
// chunks of this size, so that the frames behind it wait for at most one
// chunk instead of the whole message.
const DefaultChunkSize = 16 << 10

// Starvation bounds of the writer's order (see sched).
const (
	// maxPassed is how many frames or chunks of higher priority may be
	// written in a row while a lower priority has something waiting; the
	// lower priority's next frame or chunk goes after that many.
	maxPassed = 8
	// maxSmallRun is how many whole frames of one priority may be written
	// in a row while a split message of that priority waits for its next
	// chunk.
	maxSmallRun = 16
)

// levels is the number of priorities.
const levels = 4

// level maps a priority to an index, 0 the most urgent.
func level(p frame.Priority) int {
	return int(frame.PriorityUrgent - p)
}

// outgoing is a frame the writer has taken from the queue and not yet
// written, or a split message part of whose body is written.
type outgoing struct {
	f    frame.Frame
	off  int         // body bytes written so far
	body int         // body size
	turn int         // body bytes written since its turn among split messages began
	flow flow        // the frames that must keep their order with it
	next []*outgoing // frames of the same flow that came after a split message, in order
}

// flow names the frames whose order the writer keeps: those of one
// request in one role. Frames of different flows may overtake each other
// by priority and interleave by chunks; frames of one flow leave in the
// order they were queued, and a split message of a flow is finished before
// the flow's next frame starts.
type flow struct {
	server bool // sent in the server's role: RESPONSE, ERROR, YIELD, TAKE
	xid    uint64
}

// flowOf returns f's flow.
func flowOf(f *frame.Frame) flow {
	switch f.Type {
	case frame.TypeResponse, frame.TypeError, frame.TypeYield, frame.TypeTake, frame.TypeGoAway:
		return flow{server: true, xid: f.XID}
	}
	return flow{xid: f.XID} // NOTIFY shares xid 0: notifies keep their order behind a split one
}

// ring is a FIFO of outgoing frames.
type ring struct {
	items []*outgoing
	head  int
}

func (r *ring) len() int { return len(r.items) - r.head }

func (r *ring) push(o *outgoing) { r.items = append(r.items, o) }

// pushFront puts o back at the head, where pop will take it again.
func (r *ring) pushFront(o *outgoing) {
	if r.head > 0 {
		r.head--
		r.items[r.head] = o
		return
	}
	r.items = append(r.items, nil)
	copy(r.items[1:], r.items)
	r.items[0] = o
}

func (r *ring) pop() *outgoing {
	o := r.items[r.head]
	r.items[r.head] = nil
	r.head++
	if r.head == len(r.items) {
		r.items, r.head = r.items[:0], 0
	}
	return o
}

// sched orders the frames the writer has taken: higher priorities first,
// whole frames ahead of the next chunk of a split message of the same
// priority, split messages of one priority in turn, splitTurn bytes at a
// time.
// Starvation is bounded: a priority with something waiting is passed over
// at most maxPassed times in a row, and a split message waits behind at
// most maxSmallRun whole frames of its priority.
type sched struct {
	chunk    int
	split    bool               // the codec can split messages
	whole    [levels]ring       // frames written whole
	parts    [levels]ring       // split messages, taking turns of splitTurn bytes
	passed   [levels]int        // times the level was passed over in a row while waiting
	smallRun [levels]int        // whole frames written in a row while parts waited
	open     map[flow]*outgoing // split messages begun and not finished, by flow
	n        int                // frames waiting, followers included
	free     []*outgoing
	// sinceWhole counts the bytes of split messages written since a frame
	// was last written whole, up to mixedSpan.
	sinceWhole int
}

// mixedSpan is how many bytes of split messages the writer writes after a
// frame written whole before it counts the stream as carrying split
// messages alone. While small frames share the stream (mixed), chunks stay
// at the chunk size, so that each small frame waits for at most one chunk
// in the writer, and the pace keeps the queue short (pace.allowed); once
// only split messages have been written for mixedSpan bytes, their chunks
// may grow with the pace's window (pace.piece) and the queue to the
// configured delay, which costs fewer copies and system calls per byte.
const mixedSpan = 4 << 20

// wroteWhole notes that a frame was written whole.
func (s *sched) wroteWhole() { s.sinceWhole = 0 }

// wroteChunk notes that n bytes of a split message were written.
func (s *sched) wroteChunk(n int) { s.sinceWhole = min(s.sinceWhole+n, mixedSpan) }

// mixed reports whether a frame was written whole within the last
// mixedSpan bytes of split messages.
func (s *sched) mixed() bool { return s.sinceWhole < mixedSpan }

func newSched(chunk int, split bool) *sched {
	return &sched{chunk: chunk, split: split, open: make(map[flow]*outgoing), sinceWhole: mixedSpan}
}

// empty reports whether nothing waits.
func (s *sched) empty() bool { return s.n == 0 }

// add takes f (emptying it) with its body size.
func (s *sched) add(f *frame.Frame, body int) {
	o := s.alloc()
	o.f, o.body, o.off = *f, body, 0
	*f = frame.Frame{}
	o.flow = flowOf(&o.f)
	s.n++
	s.admit(o)
}

func (s *sched) alloc() *outgoing {
	if n := len(s.free); n > 0 {
		o := s.free[n-1]
		s.free = s.free[:n-1]
		return o
	}
	return &outgoing{}
}

// admit puts o where it waits: behind the open split message of its flow,
// if any, else in its priority's queue of whole frames or of split
// messages.
func (s *sched) admit(o *outgoing) {
	if len(s.open) > 0 {
		if head := s.open[o.flow]; head != nil {
			head.next = append(head.next, o)
			return
		}
	}
	lv := level(o.f.Flags.Priority())
	if s.split && o.body > s.chunk && frame.CanSplit(o.f.Type) {
		s.open[o.flow] = o
		s.parts[lv].push(o)
		return
	}
	s.whole[lv].push(o)
}

// next returns the frame or split message to write from next, taking it
// off its queue; the caller gives it back with done or requeue. With
// wholeOnly, it considers only frames written whole, and returns nil if
// there is none.
func (s *sched) next(wholeOnly bool) *outgoing {
	pick := -1
	for lv := range levels {
		if s.whole[lv].len() == 0 && (wholeOnly || s.parts[lv].len() == 0) {
			continue
		}
		if pick < 0 {
			pick = lv
			continue
		}
		if s.passed[lv] >= maxPassed {
			pick = lv // starved long enough: the lowest such level goes
		}
	}
	if pick < 0 {
		return nil
	}
	for lv := pick + 1; lv < levels; lv++ {
		if s.whole[lv].len() > 0 || s.parts[lv].len() > 0 {
			s.passed[lv]++
		}
	}
	s.passed[pick] = 0
	w, p := &s.whole[pick], &s.parts[pick]
	if w.len() > 0 && (wholeOnly || p.len() == 0 || s.smallRun[pick] < maxSmallRun) {
		if p.len() > 0 {
			s.smallRun[pick]++
		}
		return w.pop()
	}
	s.smallRun[pick] = 0
	return p.pop()
}

// splitTurn is how much of a split message is written before the next
// split message of its priority takes a turn. Split messages of one
// priority go one after another rather than a chunk each in turn: so the
// first is whole, and the peer at work on it, while the others are still
// being written, instead of all of them being whole only at the end of
// the batch, which made a busy link's two directions take turns. A message
// longer than this still lets the others through every splitTurn bytes.
const splitTurn = 1 << 20

// splitTail is how much of a split message may be left when its turn is
// used up for it to finish in the same turn. A message a little longer
// than a turn (a 1 MiB payload and its header) would otherwise leave its
// last bytes behind the turns of all the others, and every message of a
// batch would again be whole only at its end.
const splitTail = splitTurn / 4

// requeue puts back a split message with more chunks to write, of which n
// bytes were just written: at the head of its priority's split messages
// until its turn is used up, or to its end if at most splitTail is left,
// then behind them.
func (s *sched) requeue(o *outgoing, n int) {
	r := &s.parts[level(o.f.Flags.Priority())]
	if o.turn += n; o.turn < splitTurn || o.body-o.off <= splitTail {
		r.pushFront(o)
		return
	}
	o.turn = 0
	r.push(o)
}

// done retires o, written whole or to its last chunk, and admits the
// frames of its flow that waited for it.
func (s *sched) done(o *outgoing) {
	s.n--
	next := o.next
	if s.open[o.flow] == o {
		delete(s.open, o.flow)
	}
	o.f.Release()
	*o = outgoing{next: next[:0]}
	s.free = append(s.free, o)
	for _, f := range next {
		s.admit(f)
	}
	clear(next)
}

// drop releases everything waiting: the Conn has died.
func (s *sched) drop() {
	var release func(o *outgoing)
	release = func(o *outgoing) {
		o.f.Release()
		for _, f := range o.next {
			release(f)
		}
	}
	for lv := range levels {
		for _, r := range []*ring{&s.whole[lv], &s.parts[lv]} {
			for r.len() > 0 {
				release(r.pop())
			}
		}
	}
	clear(s.open)
	s.n = 0
}
