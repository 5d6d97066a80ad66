//go:build !race

// The race detector changes allocation counts, so this file is left out
// under -race.

package rpcbench

import (
	"testing"

	"github.com/muxrpc/muxrpc/internal/transport"
)

// allocsPerCallBudget is the most heap allocations one sequential 16-byte
// echo call may cost, the client's and the server's together, over an
// in-memory transport (net.Pipe): the project's target of 4, which is what
// it measures (steady under GOGC=5 and GOMAXPROCS=1 too).
//
// The 4 are: boxing the []byte argument into Call's any (client); the
// handler's request context (DeMux.accept); the bytes msgpack decodes the
// argument into and boxing the []byte result into an any (handler). The
// reply is decoded into the caller's slice, which has room.
const allocsPerCallBudget = 4

// TestAllocsPerCall pins the allocations of one call. testing.AllocsPerRun
// reads process-wide counters, so the server's goroutines are counted too;
// the call is synchronous, so the server is idle before and after each run.
func TestAllocsPerCall(t *testing.T) {
	c, err := startMuxrpc(transport.Mem)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	}()
	payload := makePayload(16)
	var reply []byte
	call := func() {
		if err := c.echo(payload, &reply); err != nil {
			t.Fatal(err)
		}
	}
	call() // the prefaces are exchanged and the pools filled before measuring
	allocs := testing.AllocsPerRun(1000, call)
	t.Logf("%v allocations per call, both ends counted (budget %d)", allocs, allocsPerCallBudget)
	if err := checkEcho(payload, reply); err != nil {
		t.Fatal(err)
	}
	if allocs > allocsPerCallBudget {
		t.Errorf("%v allocations per call, budget is %d", allocs, allocsPerCallBudget)
	}
}
