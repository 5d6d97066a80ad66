package channel

import (
	"sync"
	"time"
)

// DefaultQueueDelay is how much the chunks of split messages may queue up
// between the two ends, beyond the shortest round trip seen, before the
// writer holds back further chunks (Config.QueueDelay).
const DefaultQueueDelay = 20 * time.Millisecond

// pacePingBit marks the PINGs that pace sends between chunks, so that
// their PONGs are told from those of keepalive (whose xids are times).
const pacePingBit = 1 << 63

// paceRing is how many of the pace's PINGs may be awaiting their PONG;
// one more waits until the oldest has come back.
const paceRing = 64

// pace bounds how many bytes of split messages the writer has in flight:
// written, and not yet known to be read by the peer. Behind its chunks
// (after every sixteenth of the window, at least a chunk, and whenever it
// stops writing chunks) the writer sends a PING; the PONG, which the peer
// sends once it has read the PING and hence the chunks before it,
// acknowledges them and gives a round trip. The window of bytes in flight
// grows by what each PONG acknowledges while the round trip stays within
// half the allowed queue delay of the shortest seen (and the window, not
// the lack of data, held the writer back), by less and less as the delay
// nears what is allowed, and shrinks by a quarter when the round trip is
// longer, at most once a round trip (only for a PING sent after the last
// shrink), never below one chunk. So a slow link (or a relay that buffers in front of one) holds
// about one chunk of them, and a frame that
// overtakes the split messages in the writer is not stuck behind megabytes
// queued further on, while on a fast link the window grows out of the way
// within a few round trips.
//
// The writer calls the methods without a lock of its own; ack runs on the
// reader goroutine.
type pace struct {
	chunk    int64
	maxDelay time.Duration
	wake     chan struct{} // a token when a PONG has opened the window

	mu      sync.Mutex
	sent    int64 // bytes of chunks written, ever
	pinged  int64 // bytes of chunks written before the last PING
	acked   int64 // bytes of chunks the peer has read, ever
	window  int64
	shrunk  int64 // sent when the window last shrank: earlier PINGs do not shrink it again
	minRTT  time.Duration
	minAt   time.Time // when minRTT was last renewed
	off     bool      // stopped: no window, no PINGs
	seq     uint64    // PINGs sent
	ackSeq  uint64    // PINGs acknowledged, in order
	pending [paceRing]paceSlot
}

// paceSlot is the record of a PING awaiting its PONG.
type paceSlot struct {
	sent    int64 // the bytes sent when the PING was written
	at      time.Time
	limited bool // the window was nearly full then: the window may grow
	mixed   bool // frames written whole shared the stream then
}

func newPace(chunk int, maxDelay time.Duration) *pace {
	return &pace{
		chunk: int64(chunk), maxDelay: maxDelay, window: int64(chunk),
		wake: make(chan struct{}, 1),
	}
}

// open reports whether the writer may write another chunk now.
func (p *pace) open() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.off || !p.full() && p.seq-p.ackSeq < paceRing
}

// wrote records a chunk of n bytes written and reports whether a PING
// should follow it now, and its xid: once a sixteenth of the window, and at
// least a chunk, has been written since the last, or once the window is
// full. mixed says whether frames written whole share the stream (see
// ack).
func (p *pace) wrote(n int, mixed bool) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent += int64(n)
	if p.off || p.sent-p.pinged < max(p.chunk, p.window/16) && !p.full() {
		return 0, false
	}
	return p.ping(mixed), true
}

// unpinged returns the xid of the PING to send if chunks have been written
// since the last one: the writer sends it before it stops writing chunks,
// so that every chunk is acknowledged in the end.
func (p *pace) unpinged(mixed bool) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off || p.sent == p.pinged {
		return 0, false
	}
	return p.ping(mixed), true
}

// full reports whether another chunk would take the bytes in flight past
// the window. p.mu is held.
func (p *pace) full() bool { return !p.off && p.sent-p.acked+p.chunk > p.window }

// stop turns the pace off for good, waking the writer: the peer has
// stopped sending (a half-close), so no PONG can come, yet it still reads.
func (p *pace) stop() {
	p.mu.Lock()
	p.off = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ping numbers a PING for the chunks written so far. p.mu is held.
func (p *pace) ping(mixed bool) uint64 {
	seq := p.seq
	p.seq++
	p.pinged = p.sent
	slot := &p.pending[seq%paceRing]
	slot.sent, slot.at = p.sent, time.Now()
	slot.limited = p.full()
	slot.mixed = mixed
	return pacePingBit | seq
}

// Queue delay allowed while frames written whole share the stream with
// split messages (see ack).
const (
	// mixedRTTs is how many shortest round trips of queue delay are
	// allowed.
	mixedRTTs = 4
	// mixedMinDelay is the least queue delay allowed.
	mixedMinDelay = 450 * time.Microsecond
)

// allowed returns how much the round trip of a PING may exceed the
// shortest seen before the window shrinks: maxDelay while only split
// messages are written, and while frames written whole share the stream
// (mixed), mixedRTTs shortest round trips, at least mixedMinDelay and at
// most maxDelay. On a fast link a small frame then waits behind well
// under a millisecond of chunks, on a slow or distant one the same
// maxDelay as bulk. p.mu is held.
func (p *pace) allowed(mixed bool) time.Duration {
	if !mixed {
		return p.maxDelay
	}
	return min(p.maxDelay, max(mixedMinDelay, mixedRTTs*p.minRTT))
}

// ack takes the PONG of one of the pace's PINGs (xid has pacePingBit).
func (p *pace) ack(xid uint64) {
	seq := xid &^ pacePingBit
	now := time.Now()
	p.mu.Lock()
	if seq < p.ackSeq || seq >= p.seq { // not one awaited: a peer's mistake, ignored
		p.mu.Unlock()
		return
	}
	slot := p.pending[seq%paceRing]
	p.ackSeq = seq + 1
	newly := slot.sent - p.acked
	p.acked = slot.sent
	rtt := now.Sub(slot.at)
	if p.minRTT == 0 || rtt < p.minRTT || now.Sub(p.minAt) > 10*time.Second {
		p.minRTT, p.minAt = rtt, now
	}
	p.adjust(rtt-p.minRTT, p.allowed(slot.mixed), newly, slot)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// adjust resizes the window after a PONG whose round trip exceeded the
// shortest by excess, with allowed the excess allowed, newly the bytes it
// acknowledged and slot its PING's record. p.mu is held.
//
// Below half the allowed delay the window grows by what was acknowledged,
// doubling each round trip; above it, by a share that falls to nothing at
// the allowed delay, so that the queue settles near it rather than
// overshooting by a round trip's growth. Past the allowed delay it shrinks
// by a quarter, once: the PINGs already in flight then carry the queue
// that the shrink is about to drain, and would shrink it again for the
// same excess.
func (p *pace) adjust(excess, allowed time.Duration, newly int64, slot paceSlot) {
	switch {
	case excess > allowed:
		if slot.sent > p.shrunk {
			p.window = max(p.chunk, p.window-p.window/4)
			p.shrunk = p.sent
		}
	case newly > 0 && slot.limited:
		grow := newly
		if 2*excess > allowed {
			grow = int64(float64(newly) * float64(2*(allowed-excess)) / float64(allowed))
		}
		p.window = min(p.window+grow, 1<<40)
	}
}

// maxPieceChunks bounds how many times the chunk size a piece may grow to.
const maxPieceChunks = 16

// piece returns how many bytes of a split message the next chunk may
// hold when nothing but split messages is being written: the chunk size
// while the window is small, growing with the window (an eighth of it) up
// to maxPieceChunks chunks. On a fast link, longer pieces cost fewer
// copies and system calls per byte; on a slow one the window, and so the
// piece, stays at one chunk.
func (p *pace) piece() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off {
		return int(p.chunk)
	}
	return int(min(maxPieceChunks*p.chunk, max(p.chunk, p.window/8)))
}
