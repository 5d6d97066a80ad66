package channel

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/frame"
)

// guard is what the watchdog needs to know about a Conn's traffic. The
// reader and the writer note what happens; the watchdog, a goroutine that
// Serve starts when a timeout or keepalive is configured, looks at it a
// few times per shortest period and ends the Conn when a bound is passed.
type guard struct {
	handshake time.Duration // bound on the preface and authentication; 0: none
	frame     time.Duration // bound on a frame, beyond its length's allowance; 0: none
	interval  time.Duration // keepalive: idle time before a PING; 0: off
	timeout   time.Duration // keepalive: time for a sign of life after it, beyond the backlog's allowance

	handshook  atomic.Bool  // the preface (and authentication) arrived
	lastRead   atomic.Int64 // Unix nanoseconds of the last read that brought bytes
	lastWrite  atomic.Int64 // Unix nanoseconds of the last write that made progress
	readBytes  atomic.Int64 // bytes read from the stream so far
	written    atomic.Int64 // bytes written to the stream so far
	writtenAt  atomic.Int64 // written, as of the last read that brought bytes
	backlog    atomic.Int64 // bytes written since the peer was last heard, as of the PING
	frameStart atomic.Int64 // when the current frame's header arrived; 0 between frames
	frameRead  atomic.Int64 // readBytes when it did
	pingQueued atomic.Bool  // a PING waits for the writer or for an answer
	queuedAt   atomic.Int64 // when it was queued
	pingSent   atomic.Int64 // when the outstanding PING was written; 0 if none
}

// on reports whether the Conn needs a watchdog.
func (g *guard) on() bool {
	return g.handshake > 0 || g.frame > 0 || g.keepalive()
}

// keepalive reports whether keepalive is on.
func (g *guard) keepalive() bool { return g.interval > 0 && g.timeout > 0 }

// tick is how often the watchdog looks: a quarter of the shortest period,
// so that a bound is noticed within a quarter of itself after it passes.
func (g *guard) tick() time.Duration {
	d := time.Duration(0)
	for _, p := range []time.Duration{g.handshake, g.frame, g.interval, g.timeout} {
		if p > 0 && (d == 0 || p < d) {
			d = p
		}
	}
	return max(d/4, time.Millisecond)
}

// startFrame notes that a frame's header has arrived; endFrame that the
// whole frame has.
func (g *guard) startFrame() {
	if g.frame > 0 {
		g.frameRead.Store(g.readBytes.Load())
		g.frameStart.Store(time.Now().UnixNano())
	}
}

func (g *guard) endFrame() {
	if g.frame > 0 {
		g.frameStart.Store(0)
	}
}

// frameLimit is how long a frame may have taken to arrive so far, when
// received of its bytes have: the frame timeout, and a second for every
// FrameRate bytes, so that a frame that keeps coming at that rate or
// faster never runs out of time, and one that stalls or trickles does.
func (g *guard) frameLimit(received int64) time.Duration {
	return g.frame + time.Duration(received*int64(time.Second)/FrameRate)
}

// watch is the watchdog: it ends the Conn when the preface, a frame or an
// answer to a PING is overdue, and sends a PING when the peer has been
// quiet for the keepalive interval. It returns when the Conn is done.
func (c *Conn) watch() {
	defer close(c.watchDone)
	g := &c.guard
	start := time.Now()
	t := time.NewTicker(g.tick())
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			if err := c.check(now, start); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

// check looks at the traffic at now and returns the error that ends the
// Conn, if a bound has passed; it queues a PING when one is due.
func (c *Conn) check(now, start time.Time) error {
	g := &c.guard
	if !g.handshook.Load() {
		if g.handshake > 0 && now.Sub(start) > g.handshake {
			return fmt.Errorf("%w: the peer's preface and handshake did not arrive within %v", ErrTimeout, g.handshake)
		}
		return nil
	}
	if begun := g.frameStart.Load(); g.frame > 0 && begun != 0 {
		received := g.readBytes.Load() - g.frameRead.Load()
		if limit := g.frameLimit(received); now.Sub(time.Unix(0, begun)) > limit {
			return fmt.Errorf("%w: a frame stalled: %d bytes of it came in %v since its header", ErrTimeout, received, limit)
		}
	}
	if !g.keepalive() {
		return nil
	}
	lastRead := g.lastRead.Load()
	if sent := g.pingSent.Load(); sent != 0 {
		if lastRead > sent { // any byte after the PING is a sign of life
			g.pingSent.Store(0)
			g.pingQueued.Store(false)
			return nil
		}
		// The PING waits, in the network, behind what was written before
		// it and after the peer was last heard: allow for that to arrive
		// at FrameRate, so that a slow link's backlog is not taken for a
		// dead peer.
		allowed := g.timeout + time.Duration(g.backlog.Load()*int64(time.Second)/FrameRate)
		if quiet := now.Sub(time.Unix(0, max(sent, g.lastWrite.Load()))); quiet > allowed {
			return fmt.Errorf("%w: no answer to a PING within %v", ErrUnresponsive, allowed)
		}
		return nil
	}
	if g.pingQueued.Load() {
		// Queued, not yet written: the writer is stuck behind a write that
		// makes no progress, or the peer would have been heard from.
		queued := g.queuedAt.Load()
		if lastRead > queued {
			g.pingQueued.Store(false)
			return nil
		}
		if quiet := now.Sub(time.Unix(0, max(queued, g.lastWrite.Load()))); quiet > g.timeout {
			return fmt.Errorf("%w: nothing read, and no write made progress, for %v", ErrUnresponsive, quiet)
		}
		return nil
	}
	// A PING goes out when the peer has been quiet for the interval, and
	// also when this side has: then the peer, which may be waiting for a
	// sign of life behind a large transfer it sends, hears from this side
	// at least once an interval.
	quietIn := now.Sub(time.Unix(0, lastRead)) > g.interval
	quietOut := now.Sub(time.Unix(0, g.lastWrite.Load())) > g.interval
	if quietIn || quietOut {
		g.queuedAt.Store(now.UnixNano())
		g.pingQueued.Store(true)
		c.sendUrgent(frame.Frame{Type: frame.TypePing, XID: uint64(now.UnixNano())})
	}
	return nil
}

// meteredReader counts the bytes read and notes the time of every read
// that brings some.
type meteredReader struct {
	r io.Reader
	g *guard
}

func (m meteredReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.g.readBytes.Add(int64(n))
		m.g.writtenAt.Store(m.g.written.Load())
		m.g.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// meteredWriter counts the bytes written and notes the time of every
// write that makes progress. It writes a long buffer in pieces, so that a
// large frame on a slow link shows progress while it is written.
type meteredWriter struct {
	w io.Writer
	g *guard
}

// meteredPiece is the most a meteredWriter writes in one call.
const meteredPiece = 256 << 10

func (m meteredWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		piece := p[:min(len(p), meteredPiece)]
		n, err := m.w.Write(piece)
		written += n
		if n > 0 {
			m.g.written.Add(int64(n))
			m.g.lastWrite.Store(time.Now().UnixNano())
		}
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
