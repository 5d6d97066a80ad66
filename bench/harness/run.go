// Package harness runs echo calls through each system over each transport
// and measures them: calls/s, latency percentiles, allocations, CPU time
// and transport calls per call.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

// Cell is one point of the matrix.
type Cell struct {
	Transport transport.Kind
	Payload   int // bytes echoed
	Callers   int // goroutines calling at once over the one connection
}

func (c Cell) String() string {
	return fmt.Sprintf("%s/%s/%d", c.Transport, SizeName(c.Payload), c.Callers)
}

// Result is what one run of one system in one cell measured. Per-call
// figures divide the deltas over the measured window by Calls.
type Result struct {
	System string
	Cell
	Calls         int64         // calls completed in the measured window
	Elapsed       time.Duration // the measured window
	CallsPerSec   float64
	P50, P99      time.Duration
	P999          time.Duration
	Samples       uint64  // latencies recorded (= Calls)
	AllocsPerCall float64 // heap allocations, client and server together
	BytesPerCall  float64 // heap bytes allocated, both ends
	CPUPerCall    time.Duration
	ReadsPerCall  float64 // Read calls on both ends' conns
	WritesPerCall float64 // Write calls on both ends' conns
	Skipped       string  // why the cell was not run, if it was not
	Err           string  // why the run failed, if it did
	CloseErr      string  // what closing returned, if it failed (measurements stand)
}

// OK reports whether r holds measurements.
func (r *Result) OK() bool { return r.Skipped == "" && r.Err == "" && r.Calls > 0 }

// Options are the knobs of one run.
type Options struct {
	Warmup      time.Duration
	Duration    time.Duration
	MaxInFlight int64         // skip cells whose payload × callers is larger
	Timeout     time.Duration // how long to wait for callers or Close after the window
}

// SizeName formats a payload size as 16B, 4KiB, 1MiB.
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// MakePayload returns n bytes of a recognizable pattern.
func MakePayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

// checkReply is the cheap check made on every reply while measuring: the
// length and the bytes at both ends and the middle (the tests compare
// every byte).
func checkReply(want, got []byte) error {
	n := len(want)
	if len(got) != n {
		return fmt.Errorf("reply has %d bytes, want %d", len(got), n)
	}
	if n > 0 && (got[0] != want[0] || got[n-1] != want[n-1] || got[n/2] != want[n/2]) {
		return errors.New("reply bytes differ from the request")
	}
	return nil
}

type snapshot struct {
	at            time.Time
	mallocs, heap uint64
	cpu           time.Duration
	reads, writes int64
}

func takeSnapshot(counts *transport.Counts) snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return snapshot{
		at:      time.Now(),
		mallocs: ms.Mallocs,
		heap:    ms.TotalAlloc,
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		reads:   counts.Reads(),
		writes:  counts.Writes(),
	}
}

// Run runs sys in one cell: it connects a fresh pair, starts the system,
// lets callers goroutines call Echo in a loop for the warm-up and then for
// the measured window, and closes everything.
func Run(sys systems.System, cell Cell, opt Options) Result {
	res := Result{System: sys.Name(), Cell: cell}
	if opt.MaxInFlight > 0 && int64(cell.Payload)*int64(cell.Callers) > opt.MaxInFlight {
		res.Skipped = fmt.Sprintf("payload × callers = %s in flight is above -maxinflight", SizeName(cell.Payload*cell.Callers))
		return res
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	counts := new(transport.Counts)
	caller, closer, err := startOn(sys, func() (net.Conn, net.Conn, error) {
		return transport.Pair(cell.Transport, counts)
	})
	if err != nil {
		res.Err = err.Error()
		return res
	}

	payload := MakePayload(cell.Payload)
	var (
		phase    atomic.Int32 // 0 warm-up, 1 measuring, 2 stop
		measured atomic.Int64
		hist     = new(histogram)
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
		ctx      = context.Background()
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		phase.Store(2)
	}
	for range cell.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, cell.Payload)
			var n int64
			for {
				t0 := time.Now()
				out, err := caller.Echo(ctx, payload, buf)
				d := time.Since(t0)
				if err == nil {
					err = checkReply(payload, out)
				}
				if err != nil {
					if phase.Load() != 2 {
						fail(err)
					}
					break
				}
				if cap(out) >= cap(buf) {
					buf = out[:0]
				}
				p := phase.Load()
				if p == 2 {
					break
				}
				if p == 1 {
					hist.record(d)
					n++
				}
			}
			measured.Add(n)
		}()
	}
	callersDone := make(chan struct{})
	go func() { wg.Wait(); close(callersDone) }()

	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-callersDone: // they only stop early on an error
			return false
		}
	}
	var s0, s1 snapshot
	if wait(opt.Warmup) {
		s0 = takeSnapshot(counts)
		phase.CompareAndSwap(0, 1)
		if wait(opt.Duration) {
			s1 = takeSnapshot(counts)
			phase.CompareAndSwap(1, 2)
		}
	}
	phase.Store(2)

	hung := false
	select {
	case <-callersDone:
	case <-time.After(opt.Timeout):
		hung = true
	}
	closed := make(chan error, 1)
	go func() { closed <- closer.Close() }()
	var closeErr error
	select {
	case closeErr = <-closed:
	case <-time.After(opt.Timeout):
		closeErr = errors.New("close did not return")
	}
	switch {
	case hung:
		res.Err = fmt.Sprintf("callers still blocked %v after the window", opt.Timeout)
		return res
	case firstErr != nil:
		res.Err = firstErr.Error()
		return res
	case closeErr != nil && !errors.Is(closeErr, io.EOF):
		res.CloseErr = closeErr.Error() // the measurements stand
	}

	res.Calls = measured.Load()
	res.Elapsed = s1.at.Sub(s0.at)
	if res.Calls == 0 || res.Elapsed <= 0 {
		if res.Err == "" {
			res.Err = "no call completed in the measured window (each call took longer than -duration?)"
		}
		return res
	}
	calls := float64(res.Calls)
	res.CallsPerSec = calls / res.Elapsed.Seconds()
	q, n := hist.quantiles(0.50, 0.99, 0.999)
	res.P50, res.P99, res.P999, res.Samples = q[0], q[1], q[2], n
	res.AllocsPerCall = float64(s1.mallocs-s0.mallocs) / calls
	res.BytesPerCall = float64(s1.heap-s0.heap) / calls
	res.CPUPerCall = time.Duration(float64(s1.cpu-s0.cpu) / calls)
	res.ReadsPerCall = float64(s1.reads-s0.reads) / calls
	res.WritesPerCall = float64(s1.writes-s0.writes) / calls
	return res
}

// startOn connects a fresh pair with connect and starts sys over it, from
// a collected heap, so that no run pays for the garbage of the one before.
// The error says which step failed.
func startOn(sys systems.System, connect func() (client, server net.Conn, err error)) (systems.Caller, io.Closer, error) {
	runtime.GC()
	cconn, sconn, err := connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	caller, closer, err := sys.Start(cconn, sconn)
	if err != nil {
		return nil, nil, fmt.Errorf("start: %w", err)
	}
	return caller, closer, nil
}
