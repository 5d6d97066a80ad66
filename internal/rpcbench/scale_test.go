package rpcbench

// Memory and scale measurements: what calls parked on a Mux cost, what an
// idle Mux+DeMux pair holds, and whether the cost of a call stays flat as
// the number in flight grows. The harness is here; the benchmarks and
// tests that park thousands of goroutines are in scale_norace_test.go,
// since the race detector allows at most 8128 live goroutines and inflates
// memory.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// parkedHeapProfile names a file to which measureParked writes a heap
// profile while its calls are parked, and the same name with ".base"
// added one written just before it parks them, so that
//
//	go tool pprof -sample_index=inuse_space -diff_base FILE.base FILE
//
// shows what the parked calls hold. go test's own -memprofile is written
// after every benchmark has torn down, when nothing is parked any more: its
// inuse_space shows what sync.Pools kept from the teardown, not what the
// parked calls held. Add -memprofilerate=1 for exact figures.
var parkedHeapProfile = flag.String("parked.heapprofile", "",
	"write heap profiles to `file` (while parked) and file.base (before) in BenchmarkParkedCalls and TestParkedCallMemory")

// inFlightSlack is how many requests beyond the parked ones a parkedPair's
// DeMux admits at once: room for BenchmarkInFlight's echo callers.
const inFlightSlack = 64

// parkTimeout bounds a parkedPair's waits: for the parked handlers to
// start, for the parked calls to finish once released and for Serve to
// return once closed. After it the measurement fails, with a dump of the
// goroutines for the first two.
const parkTimeout = 2 * time.Minute

// parkedPair is a Mux calling a DeMux that runs a goroutine per request,
// over a fresh pair of streams. Its "park" handler blocks until unpark
// (or until its context ends); its "echo" handler returns its []byte
// argument at once.
type parkedPair struct {
	m *mux.Mux
	d *demux.DeMux
	n int // calls to park

	calls   []*mux.Call   // the parked calls, made by park
	started atomic.Int64  // park handlers that have started
	allIn   chan struct{} // closed by the n-th park handler to start
	release chan struct{} // closed by unpark

	served   chan struct{} // closed when Serve has returned
	serveErr error         // what Serve returned
}

// newParkedPair connects a Mux to a DeMux with room for n parked calls and
// makes one echo call, so that the prefaces are exchanged and the buffers
// of both ends allocated. It parks nothing yet. n must be at least 1.
func newParkedPair(kind transport.Kind, n int) (*parkedPair, error) {
	cconn, sconn, err := transport.Pair(kind)
	if err != nil {
		return nil, err
	}
	p := &parkedPair{
		n:       n,
		calls:   make([]*mux.Call, 0, n),
		allIn:   make(chan struct{}),
		release: make(chan struct{}),
		served:  make(chan struct{}),
	}
	router := demux.NewRouter()
	router.Handle("park", demux.HandlerFunc(p.handlePark))
	router.Handle("echo", demux.Func(func(_ context.Context, b []byte) ([]byte, error) {
		return b, nil
	}))
	p.d = demux.New(sconn, router, demux.MaxInFlight(n+inFlightSlack))
	go func() {
		defer close(p.served)
		p.serveErr = p.d.Serve()
	}()
	p.m = mux.New(cconn)
	payload := makePayload(16)
	var reply []byte
	err = p.echo(payload, &reply)
	if err == nil {
		err = checkEcho(payload, reply)
	}
	if err != nil {
		return nil, errors.Join(err, p.close())
	}
	return p, nil
}

// handlePark is the "park" handler: it counts itself in and blocks until
// unpark. It waits on its context too, as a well-behaved slow handler
// does, so that closing the DeMux ends it.
func (p *parkedPair) handlePark(ctx context.Context, _ *demux.Request) (any, error) {
	if p.started.Add(1) == int64(p.n) {
		close(p.allIn)
	}
	select {
	case <-p.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// echo makes one synchronous echo call.
func (p *parkedPair) echo(in []byte, out *[]byte) error {
	return p.m.Call(context.Background(), "echo", in, out)
}

// park starts n "park" calls with Mux.Go, which starts no goroutine on the
// client, and returns once all n handlers have started. The calls carry no
// arguments (a msgpack nil) and a context that never ends, so each costs
// only what the library itself keeps for it.
func (p *parkedPair) park() error {
	ctx := context.Background()
	for range p.n {
		p.calls = append(p.calls, p.m.Go(ctx, "park", nil, nil))
	}
	for _, c := range p.calls {
		select {
		case <-c.Done():
			return fmt.Errorf("a parked call finished before it was released: %v", c.Err())
		default:
		}
	}
	watchdog := time.NewTimer(parkTimeout)
	defer watchdog.Stop()
	select {
	case <-p.allIn:
		return nil
	case <-p.served:
		return fmt.Errorf("DeMux stopped serving with %d of %d handlers started: %v", p.started.Load(), p.n, p.serveErr)
	case <-watchdog.C:
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		return fmt.Errorf("%d of %d handlers started after %v", p.started.Load(), p.n, parkTimeout)
	}
}

// unpark releases the parked handlers and waits for every parked call to
// finish, returning the first call's error.
func (p *parkedPair) unpark() error {
	close(p.release)
	watchdog := time.NewTimer(parkTimeout)
	defer watchdog.Stop()
	var err error
	for i, c := range p.calls {
		select {
		case <-c.Done():
		case <-watchdog.C:
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			return fmt.Errorf("%d of %d parked calls finished %v after their release", i, len(p.calls), parkTimeout)
		}
		if err == nil && c.Err() != nil {
			err = fmt.Errorf("parked call: %w", c.Err())
		}
	}
	return err
}

// close closes the client and then the server, as a client hanging up
// would, and waits for Serve to return. It is safe whether or not calls are
// parked: closing the DeMux cancels their handlers.
func (p *parkedPair) close() error {
	errM := p.m.Close()
	errD := p.d.Close()
	select {
	case <-p.served:
	case <-time.After(parkTimeout):
		return errors.Join(errM, errD, fmt.Errorf("Serve did not return within %v of Close", parkTimeout))
	}
	errS := p.serveErr
	if errors.Is(errS, io.EOF) {
		errS = nil
	}
	return errors.Join(errM, errD, errS)
}

// readMem collects garbage and reads the memory statistics. It collects
// twice because sync.Pool keeps what it caches through one collection: the
// figures then count what is live, not what the pools happen to hold.
func readMem(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
}

// warmGoroutines has n goroutines alive at once and waits for them to
// exit. The runtime keeps the descriptor (g struct, a few hundred bytes on
// the heap) of every goroutine that exits, never frees it and hands it to
// the next goroutine started; after warmGoroutines, the next n goroutines
// take descriptors that already exist. Measurements warm first so that
// they do not depend on whether an earlier run left descriptors behind:
// their figures leave the descriptors out, the same way they leave out
// goroutine stacks, and report the number of goroutines separately.
func warmGoroutines(n int) {
	var wg sync.WaitGroup
	gate := make(chan struct{})
	wg.Add(n)
	for range n {
		go func() {
			defer wg.Done()
			<-gate
		}()
	}
	close(gate)
	wg.Wait()
}

// parkedStats is what measureParked measured, per parked call where the
// name says so.
type parkedStats struct {
	heapPerCall  float64       // HeapAlloc growth per parked call, in bytes
	stackPerCall float64       // StackInuse growth per parked call, in bytes
	goroutines   int           // goroutines added while the calls were parked
	park         time.Duration // from the first Go to the last handler's start
}

// measureParked parks n calls on a fresh parkedPair over net.Pipe and
// measures what they add to the heap and the stacks once they are all
// parked, with the Mux and DeMux themselves set up before the first
// reading. It releases the calls and closes the pair before returning.
// With -parked.heapprofile it writes a heap profile while the calls are
// parked.
func measureParked(n int) (parkedStats, error) {
	var s parkedStats
	warmGoroutines(n + inFlightSlack)
	p, err := newParkedPair(transport.Mem, n)
	if err != nil {
		return s, err
	}
	var before, after runtime.MemStats
	g0 := runtime.NumGoroutine()
	readMem(&before)
	if *parkedHeapProfile != "" {
		if err := writeHeapProfile(*parkedHeapProfile + ".base"); err != nil {
			return s, errors.Join(err, p.close())
		}
	}
	start := time.Now()
	if err := p.park(); err != nil {
		return s, errors.Join(err, p.close())
	}
	s.park = time.Since(start)
	readMem(&after)
	s.goroutines = runtime.NumGoroutine() - g0
	s.heapPerCall = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	s.stackPerCall = float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)
	if *parkedHeapProfile != "" {
		err = writeHeapProfile(*parkedHeapProfile)
	}
	return s, errors.Join(err, p.unpark(), p.close())
}

// writeHeapProfile writes the heap profile as of the last collection,
// which readMem has just made, to the file name.
func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	return errors.Join(err, f.Close())
}

// idleStats is what measureIdle measured, per pair.
type idleStats struct {
	heapPerPair  float64 // HeapAlloc growth per idle pair, in bytes
	stackPerPair float64 // StackInuse growth per idle pair, in bytes
	goroutines   float64 // goroutines per idle pair
}

// measureIdle connects pairs Mux+DeMux pairs (startMuxrpc: default options)
// over streams of the given kind, makes one call on each so that the
// prefaces are exchanged, and measures what the idle pairs hold, streams
// included. It closes them before returning. Several pairs at once make
// the runtime's own allocations negligible.
func measureIdle(kind transport.Kind, pairs int) (idleStats, error) {
	var s idleStats
	warmGoroutines(8 * pairs) // a pair has 4 goroutines
	clients := make([]*echoClient, 0, pairs)
	closeAll := func() error {
		var errs []error
		for _, c := range clients {
			errs = append(errs, c.close())
		}
		return errors.Join(errs...)
	}
	payload := makePayload(16)
	var reply []byte
	var before, after runtime.MemStats
	g0 := runtime.NumGoroutine()
	readMem(&before)
	for range pairs {
		c, err := startMuxrpc(kind, echoBytes)
		if err != nil {
			return s, errors.Join(err, closeAll())
		}
		clients = append(clients, c)
		if err := c.echo(payload, &reply); err != nil {
			return s, errors.Join(err, closeAll())
		}
	}
	readMem(&after)
	s.goroutines = float64(runtime.NumGoroutine()-g0) / float64(pairs)
	s.heapPerPair = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(pairs)
	s.stackPerPair = float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(pairs)
	return s, errors.Join(checkEcho(payload, reply), closeAll())
}

// idlePairs is how many pairs measureIdle holds at once.
const idlePairs = 64

// idleKinds are the transports BenchmarkIdlePair and TestIdlePairHeap use:
// in-memory and OS pipes, whose buffers, if any, are outside the Go heap.
var idleKinds = []transport.Kind{transport.Mem, transport.Pipe}

// BenchmarkIdlePair measures what an idle Mux+DeMux pair holds once one
// call has been made on it: heap-B/pair (HeapAlloc growth), stack-B/pair
// (StackInuse growth) and goroutines/pair. Each iteration sets up, measures
// and closes idlePairs pairs; the metrics are the mean over the
// iterations, and ns/op is the time of one iteration, two forced garbage
// collections included. The target is at most 64 KiB of heap per pair
// (TestIdlePairHeap).
func BenchmarkIdlePair(b *testing.B) {
	for _, kind := range idleKinds {
		b.Run(string(kind), func(b *testing.B) {
			var sum idleStats
			for range b.N {
				s, err := measureIdle(kind, idlePairs)
				if err != nil {
					b.Fatal(err)
				}
				sum.heapPerPair += s.heapPerPair
				sum.stackPerPair += s.stackPerPair
				sum.goroutines += s.goroutines
			}
			b.ReportMetric(sum.heapPerPair/float64(b.N), "heap-B/pair")
			b.ReportMetric(sum.stackPerPair/float64(b.N), "stack-B/pair")
			b.ReportMetric(sum.goroutines/float64(b.N), "goroutines/pair")
		})
	}
}
