package rpcbench

import (
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/internal/rpctest"
)

// TestSystemsCloseCleanly runs every system of BenchmarkCall over every
// transport with concurrent callers, closes it the way the benchmark does,
// and checks that no goroutine is left behind, so that sub-benchmarks do
// not pile up goroutines that skew the ones after them.
func TestSystemsCloseCleanly(t *testing.T) {
	for _, sys := range systems {
		for _, kind := range kinds {
			t.Run(sys.name+"/"+string(kind), func(t *testing.T) {
				before := runtime.NumGoroutine()
				c, err := sys.start(kind)
				if err != nil {
					t.Fatal(err)
				}
				payload := makePayload(4 << 10)
				var wg sync.WaitGroup
				errs := make(chan error, 16)
				for range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var reply []byte
						for range 20 {
							err := c.echo(payload, &reply)
							if err == nil {
								err = checkEcho(payload, reply)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				called := make(chan struct{})
				go func() { wg.Wait(); close(called) }()
				rpctest.Await(t, called, "the callers did not finish their calls")
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				if err := c.close(); err != nil {
					t.Errorf("closing: %v", err)
				}
				waitGoroutines(t, before)
			})
		}
	}
}

// waitGoroutines waits until at most n goroutines are left. A goroutine that
// has signaled its exit may still be counted for a moment, and net/rpc's
// client reader is not waited for by Close at all, so this polls; it fails
// with a dump of every goroutine if they are not gone within a few seconds.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
			t.Fatalf("%d goroutines left, want at most %d", runtime.NumGoroutine(), n)
		}
		runtime.Gosched()
	}
}

// waitLimit bounds every wait of these tests.
const waitLimit = rpctest.WaitLimit
