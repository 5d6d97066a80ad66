package main

import (
	"fmt"
	"io"
	"time"
)

// defaultInterval is how often the progress line is redrawn.
const defaultInterval = 250 * time.Millisecond

// progress redraws a one-line report of a run in place, on a goroutine of
// its own that stop ends and waits for.
type progress struct {
	quit chan struct{}
	done chan struct{}
}

// startProgress starts drawing st's progress on w every interval (0 means
// defaultInterval).
func startProgress(w io.Writer, st *stats, interval time.Duration) *progress {
	if interval <= 0 {
		interval = defaultInterval
	}
	p := &progress{quit: make(chan struct{}), done: make(chan struct{})}
	go p.loop(w, st, interval)
	return p
}

// stop draws the line a last time, ends it with a newline and returns once
// the goroutine has exited.
func (p *progress) stop() {
	close(p.quit)
	<-p.done
}

func (p *progress) loop(w io.Writer, st *stats, interval time.Duration) {
	defer close(p.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	start := time.Now()
	last, lastAt := int64(0), start
	for {
		select {
		case now := <-t.C:
			n := st.done()
			draw(w, st, n, rate(n-last, now.Sub(lastAt)))
			last, lastAt = n, now
		case <-p.quit:
			n := st.done()
			draw(w, st, n, rate(n, time.Since(start)))
			fmt.Fprintln(w)
			return
		}
	}
}

// draw rewrites the current terminal line: \r goes back to its start and
// ESC[K clears what a longer previous line left.
func draw(w io.Writer, st *stats, done int64, perSec float64) {
	errs := st.expected.Load() + st.unexpected.Load()
	fmt.Fprintf(w, "\r%d calls done, %d errors (%d unexpected), %d mismatches, %d in flight, %.0f calls/s\x1b[K",
		done, errs, st.unexpected.Load(), st.mismatches.Load(), st.inFlight.Load(), perSec)
}

// rate returns n per second over d.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
