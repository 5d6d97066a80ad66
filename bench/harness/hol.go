package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

// HOLOptions are the knobs of the head-of-line cell: over one connection,
// BulkCallers goroutines echo BulkSize bytes without pause while one caller
// makes SmallSize-byte calls in sequence.
type HOLOptions struct {
	BulkCallers int
	BulkSize    int
	SmallSize   int
	Unloaded    time.Duration // the small caller alone, measured after a warm-up of a fifth of it
	Warmup      time.Duration // with the bulk callers running, before the window
	Duration    time.Duration // the measured window with the bulk callers
	Timeout     time.Duration // how long to wait for callers or Close after the window
	// Counts, if not nil, counts the transport calls of the pair that
	// connect returns; the result then has those made in the window.
	Counts *transport.Counts
}

// Latency summarizes a set of call latencies.
type Latency struct {
	P50, P99, Max time.Duration
	N             uint64
}

// HOLResult is what one run of the head-of-line cell measured.
type HOLResult struct {
	System    string
	Unloaded  Latency // the small calls alone
	Loaded    Latency // the small calls beside the bulk callers
	Bulk      Latency // the bulk calls
	BulkMBps  float64 // bulk payload echoed per second, in MB (10^6 bytes), one direction
	BulkCalls int64
	Elapsed   time.Duration // the loaded window
	// Reads and Writes are the transport calls of both ends in the
	// window, if HOLOptions.Counts was set.
	Reads, Writes int64
	Err           string
	CloseErr      string
}

// OK reports whether r holds measurements.
func (r *HOLResult) OK() bool { return r.Err == "" && r.Loaded.N > 0 }

// maxRecorder is a histogram that also keeps the largest value.
type maxRecorder struct {
	h   histogram
	max atomic.Int64
}

func (m *maxRecorder) record(d time.Duration) {
	m.h.record(d)
	for {
		old := m.max.Load()
		if int64(d) <= old || m.max.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (m *maxRecorder) latency() Latency {
	q, n := m.h.quantiles(0.50, 0.99)
	return Latency{P50: q[0], P99: q[1], Max: time.Duration(m.max.Load()), N: n}
}

// Phases of a head-of-line run.
const (
	holAloneWarm = iota
	holAlone
	holLoadedWarm
	holLoaded
	holStop
)

// RunHOL runs sys in the head-of-line cell over the pair that connect
// returns: first the small caller alone, then beside the bulk callers.
func RunHOL(sys systems.System, connect func() (client, server net.Conn, err error), opt HOLOptions) HOLResult {
	res := HOLResult{System: sys.Name()}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	caller, closer, err := startOn(sys, connect)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	var (
		phase    atomic.Int32
		alone    maxRecorder
		loaded   maxRecorder
		bulk     maxRecorder
		bulkN    atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
		ctx      = context.Background()
	)
	failed := make(chan struct{}) // closed by the first failure
	fail := func(err error) {
		errOnce.Do(func() {
			firstErr = err
			phase.Store(holStop)
			close(failed)
		})
	}
	loop := func(size int, rec func(p int32, d time.Duration)) {
		defer wg.Done()
		payload := MakePayload(size)
		buf := make([]byte, 0, size)
		for {
			t0 := time.Now()
			out, err := caller.Echo(ctx, payload, buf)
			d := time.Since(t0)
			if err == nil {
				err = checkReply(payload, out)
			}
			if err != nil {
				if phase.Load() != holStop {
					fail(err)
				}
				return
			}
			if cap(out) >= cap(buf) {
				buf = out[:0]
			}
			p := phase.Load()
			if p == holStop {
				return
			}
			rec(p, d)
		}
	}
	wg.Add(1)
	go loop(opt.SmallSize, func(p int32, d time.Duration) {
		switch p {
		case holAlone:
			alone.record(d)
		case holLoaded:
			loaded.record(d)
		}
	})
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-failed:
			return false
		}
	}
	var t0, t1 time.Time
	var r0, w0, r1, w1 int64
	countNow := func() (int64, int64) {
		if opt.Counts == nil {
			return 0, 0
		}
		return opt.Counts.Reads(), opt.Counts.Writes()
	}
	if wait(opt.Unloaded/5) && phase.CompareAndSwap(holAloneWarm, holAlone) && wait(opt.Unloaded) &&
		phase.CompareAndSwap(holAlone, holLoadedWarm) {
		for range opt.BulkCallers {
			wg.Add(1)
			go loop(opt.BulkSize, func(p int32, d time.Duration) {
				if p == holLoaded {
					bulk.record(d)
					bulkN.Add(1)
				}
			})
		}
		if wait(opt.Warmup) && phase.CompareAndSwap(holLoadedWarm, holLoaded) {
			t0 = time.Now()
			r0, w0 = countNow()
			if wait(opt.Duration) {
				t1 = time.Now()
				r1, w1 = countNow()
			}
		}
	}
	phase.Store(holStop)

	callersDone := make(chan struct{})
	go func() { wg.Wait(); close(callersDone) }()
	hung := false
	select {
	case <-callersDone:
	case <-time.After(opt.Timeout):
		hung = true
	}
	closeErr := closeWithin(closer, opt.Timeout)
	switch {
	case hung:
		res.Err = fmt.Sprintf("callers still blocked %v after the window", opt.Timeout)
		return res
	case firstErr != nil:
		res.Err = firstErr.Error()
		return res
	case t1.IsZero():
		res.Err = "the run stopped before the end of its window"
		return res
	case closeErr != nil && !errors.Is(closeErr, io.EOF):
		res.CloseErr = closeErr.Error()
	}
	res.Elapsed = t1.Sub(t0)
	res.Unloaded, res.Loaded, res.Bulk = alone.latency(), loaded.latency(), bulk.latency()
	res.BulkCalls = bulkN.Load()
	res.Reads, res.Writes = r1-r0, w1-w0
	res.BulkMBps = float64(res.BulkCalls) * float64(opt.BulkSize) / 1e6 / res.Elapsed.Seconds()
	return res
}

// closeWithin closes c and waits at most d for it.
func closeWithin(c io.Closer, d time.Duration) error {
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(d):
		return errors.New("close did not return")
	}
}

// LinkOptions are the knobs of the slow-link cell: one BulkSize echo in
// flight over a link of Rate bytes/s while one caller makes SmallSize-byte
// calls in sequence until it is done.
type LinkOptions struct {
	BulkSize  int
	SmallSize int
	Unloaded  int // small calls made alone first
	Timeout   time.Duration
}

// LinkResult is what one run of the slow-link cell measured.
type LinkResult struct {
	System   string
	Unloaded []time.Duration // the small calls alone, in order
	Loaded   []time.Duration // the small calls made while the bulk echo was in flight, in order
	Bulk     time.Duration   // the bulk echo's latency
	Err      string
	CloseErr string
}

// OK reports whether r holds measurements.
func (r *LinkResult) OK() bool { return r.Err == "" && len(r.Loaded) > 0 }

// RunLink runs sys in the slow-link cell over the pair that connect
// returns (the client end should go through the slow link).
func RunLink(sys systems.System, connect func() (client, server net.Conn, err error), opt LinkOptions) LinkResult {
	res := LinkResult{System: sys.Name()}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Minute
	}
	caller, closer, err := startOn(sys, connect)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), opt.Timeout)
	defer cancel()
	small := MakePayload(opt.SmallSize)
	buf := make([]byte, 0, opt.SmallSize)
	call := func() (time.Duration, error) {
		t0 := time.Now()
		out, err := caller.Echo(ctx, small, buf)
		d := time.Since(t0)
		if err == nil {
			err = checkReply(small, out)
		}
		return d, err
	}
	for range opt.Unloaded {
		d, err := call()
		if err != nil {
			res.Err = "small call alone: " + err.Error()
			closeWithin(closer, opt.Timeout)
			return res
		}
		res.Unloaded = append(res.Unloaded, d)
	}
	bulkDone := make(chan error, 1)
	payload := MakePayload(opt.BulkSize) // made first, so that the echo starts at once
	go func() {
		t0 := time.Now()
		out, err := caller.Echo(ctx, payload, nil)
		res.Bulk = time.Since(t0)
		if err == nil {
			err = checkReply(payload, out)
		}
		bulkDone <- err
	}()
	var bulkErr error
	finished := false
	for !finished {
		d, err := call()
		if err != nil {
			res.Err = "small call beside the bulk echo: " + err.Error()
			break
		}
		select {
		case bulkErr = <-bulkDone:
			finished = true
			// A call that ended after the bulk echo did still waited
			// behind it; it counts.
		default:
		}
		res.Loaded = append(res.Loaded, d)
	}
	if !finished {
		bulkErr = <-bulkDone
	}
	if bulkErr != nil && res.Err == "" {
		res.Err = "bulk echo: " + bulkErr.Error()
	}
	if err := closeWithin(closer, opt.Timeout); err != nil && !errors.Is(err, io.EOF) {
		res.CloseErr = err.Error()
	}
	return res
}

// Quantile returns the q quantile (0 < q ≤ 1, nearest rank) of ds.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(q*float64(len(s)) + 0.5)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}
