package systems_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/muxrpc/muxrpc/bench/harness"
	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

// TestEcho checks every system over every transport: concurrent callers
// each get back exactly the bytes they sent, at several sizes, and Close
// leaves no goroutine behind.
func TestEcho(t *testing.T) {
	for _, sys := range systems.All() {
		for _, kind := range transport.All {
			t.Run(sys.Name()+"/"+string(kind), func(t *testing.T) {
				defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
				echoTest(t, sys, kind, []int{0, 16, 4 << 10, 200 << 10}, 8, 5)
			})
		}
	}
}

// TestLargePayload sends 1 MiB through each system over TCP.
func TestLargePayload(t *testing.T) {
	for _, sys := range systems.All() {
		t.Run(sys.Name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			echoTest(t, sys, transport.TCP, []int{1 << 20}, 2, 2)
		})
	}
}

func echoTest(t *testing.T, sys systems.System, kind transport.Kind, sizes []int, callers, calls int) {
	t.Helper()
	if raceEnabled && sys.Name() == "arpc" {
		t.Skip("arpc v1.2.17 races on its own state; see race_on_test.go")
	}
	counts := new(transport.Counts)
	c, s, err := transport.Pair(kind, counts)
	if err != nil {
		t.Fatal(err)
	}
	caller, closer, err := sys.Start(c, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range calls {
				size := sizes[(g+i)%len(sizes)]
				in := make([]byte, size)
				for j := range in {
					in[j] = byte(g*31 + i*7 + j)
				}
				out, err := caller.Echo(ctx, in, buf)
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d (%d bytes): %w", g, i, size, err)
					return
				}
				if !bytes.Equal(out, in) {
					errs <- fmt.Errorf("caller %d call %d: got %d bytes back, not the %d sent", g, i, len(out), size)
					return
				}
				buf = out
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	done := make(chan error, 1)
	go func() { done <- closer.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("Close: %v", err) // some systems report the hang-up; not a failure
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if counts.Reads() == 0 || counts.Writes() == 0 {
		t.Errorf("no transport calls counted (%d reads, %d writes)", counts.Reads(), counts.Writes())
	}
}

// TestHarnessRun runs one short cell through the harness and checks that
// it measured something.
func TestHarnessRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, name := range []string{"raw", "muxrpc"} {
		sys, _ := systems.ByName(name)
		r := harness.Run(sys, harness.Cell{Transport: transport.Mem, Payload: 16, Callers: 4},
			harness.Options{Warmup: 20 * time.Millisecond, Duration: 50 * time.Millisecond})
		if !r.OK() {
			t.Fatalf("%s: %+v", name, r)
		}
		if r.CallsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.ReadsPerCall <= 0 {
			t.Errorf("%s: implausible result %+v", name, r)
		}
	}
	sys, _ := systems.ByName("raw")
	r := harness.Run(sys, harness.Cell{Transport: transport.Mem, Payload: 1 << 20, Callers: 4096},
		harness.Options{MaxInFlight: 512 << 20})
	if r.Skipped == "" {
		t.Errorf("a 4 GiB cell was not skipped: %+v", r)
	}
}
