//go:build !race

// Parking thousands of calls needs a goroutine for each on the server,
// more than the race detector's limit of 8128 live goroutines, and the
// race detector inflates memory; so these are left out under -race.

package rpcbench

import (
	"errors"
	"runtime"
	"strconv"
	"testing"

	"github.com/muxrpc/muxrpc/internal/transport"
)

const (
	// parkedCallHeapBudget is the most heap one call parked on a Mux may
	// hold, the client's and the server's together, goroutine stacks and
	// descriptors left out (see measureParked and warmGoroutines).
	parkedCallHeapBudget = 1024
	// idlePairHeapBudget is the most heap an idle Mux+DeMux pair may hold,
	// both ends together.
	idlePairHeapBudget = 64 << 10
)

// parkedCalls is how many calls BenchmarkParkedCalls parks at once.
const parkedCalls = 100_000

// testParkedCalls is how many TestParkedCallMemory parks: fewer than the
// benchmark, to keep the test quick.
const testParkedCalls = 20_000

// BenchmarkParkedCalls parks 100,000 calls on one Mux (Mux.Go, against a
// handler that blocks; the DeMux runs a goroutine per request) and reports
// what each costs while all are parked: heap-B/parked-call (HeapAlloc
// growth, both ends), stack-B/parked-call (StackInuse growth: the
// handlers' goroutines), goroutines (added while parked: one per handler,
// none on the client) and ns/parked-call (from the first Go to the last
// handler's start). Each iteration parks, measures, releases and closes;
// the metrics are the mean over the iterations, and ns/op is the time of
// one whole iteration, forced garbage collections included, so a run of
// the default length makes one iteration.
//
// With -parked.heapprofile=FILE it writes a heap profile while the calls
// are parked, for go tool pprof -sample_index=inuse_space.
func BenchmarkParkedCalls(b *testing.B) {
	var sum parkedStats
	for range b.N {
		s, err := measureParked(parkedCalls)
		if err != nil {
			b.Fatal(err)
		}
		sum.heapPerCall += s.heapPerCall
		sum.stackPerCall += s.stackPerCall
		sum.goroutines += s.goroutines
		sum.park += s.park
	}
	n := float64(b.N)
	b.ReportMetric(sum.heapPerCall/n, "heap-B/parked-call")
	b.ReportMetric(sum.stackPerCall/n, "stack-B/parked-call")
	b.ReportMetric(float64(sum.goroutines)/n, "goroutines")
	b.ReportMetric(float64(sum.park.Nanoseconds())/n/parkedCalls, "ns/parked-call")
}

// TestParkedCallMemory parks testParkedCalls calls as BenchmarkParkedCalls
// does and holds each to parkedCallHeapBudget bytes of heap. It checks too
// that the client starts no goroutine per call and that nothing is left
// running afterwards.
func TestParkedCallMemory(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := measureParked(testParkedCalls)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d parked calls: %.0f B of heap and %.0f B of stack each, %d goroutines added, %v to park them",
		testParkedCalls, s.heapPerCall, s.stackPerCall, s.goroutines, s.park)
	if s.heapPerCall > parkedCallHeapBudget {
		t.Errorf("a parked call holds %.0f B of heap, budget is %d B", s.heapPerCall, parkedCallHeapBudget)
	}
	// One goroutine per handler; a few of the runtime's may come and go.
	if s.goroutines > testParkedCalls+8 {
		t.Errorf("%d goroutines added by %d parked calls, want one per handler and none on the client",
			s.goroutines, testParkedCalls)
	}
	waitGoroutines(t, before)
}

// TestIdlePairHeap holds an idle Mux+DeMux pair to idlePairHeapBudget
// bytes of heap, measured as BenchmarkIdlePair does, and checks that
// nothing is left running afterwards.
func TestIdlePairHeap(t *testing.T) {
	for _, kind := range idleKinds {
		t.Run(string(kind), func(t *testing.T) {
			before := runtime.NumGoroutine()
			s, err := measureIdle(kind, idlePairs)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("an idle pair holds %.0f B of heap and %.0f B of stack, %.0f goroutines",
				s.heapPerPair, s.stackPerPair, s.goroutines)
			if s.heapPerPair > idlePairHeapBudget {
				t.Errorf("an idle pair holds %.0f B of heap, budget is %d B", s.heapPerPair, idlePairHeapBudget)
			}
			waitGoroutines(t, before)
		})
	}
}

// inFlightCounts are the numbers of parked calls of BenchmarkInFlight.
var inFlightCounts = []int{10, 100, 1_000, 10_000, 100_000}

// inFlightCallers is the number of goroutines making BenchmarkInFlight's
// echo calls.
const inFlightCallers = 16

// BenchmarkInFlight measures 16-byte echo calls made by 16 concurrent
// callers while n other calls stay parked on the same Mux (blocked
// handlers, started with Mux.Go):
//
//	BenchmarkInFlight/<n>
//
// ns/op, allocs/op and B/op are per echo call, as in BenchmarkCall. Looking
// up the xid of a reply and dispatching a request must not depend on how
// many calls are in flight, so ns/op should be flat from 10 to 100,000.
// The parked calls are set up before the timer starts and released after
// it stops; at 100,000 that takes about a second each time the benchmark
// function runs.
func BenchmarkInFlight(b *testing.B) {
	payload := makePayload(16)
	for _, n := range inFlightCounts {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			sys := system{name: "parked", start: func(kind transport.Kind) (*echoClient, error) {
				p, err := newParkedPair(kind, n)
				if err != nil {
					return nil, err
				}
				if err := p.park(); err != nil {
					return nil, errors.Join(err, p.close())
				}
				runtime.GC() // so that the garbage of parking is not collected on the clock
				return &echoClient{
					echo:  p.echo,
					close: func() error { return errors.Join(p.unpark(), p.close()) },
				}, nil
			}}
			benchCalls(b, sys, transport.Mem, payload, inFlightCallers)
		})
	}
}
