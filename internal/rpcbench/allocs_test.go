//go:build !race

// The race detector changes allocation counts, so this file is left out
// under -race.

package rpcbench

import (
	"context"
	"fmt"
	"testing"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// allocsPerCallBudget is the most heap allocations one sequential echo
// call may cost, the client's and the server's together, over an in-memory
// transport (net.Pipe): the project's target is 4, for []byte and small
// struct arguments (steady under GOGC=5 and GOMAXPROCS=1 too).
const allocsPerCallBudget = 4

// point is a small struct argument.
type point struct {
	X, Y  int
	Label string
}

// TestAllocsPerCall pins the allocations of one call. testing.AllocsPerRun
// reads process-wide counters, so the server's goroutines are counted too;
// the call is synchronous, so the server is idle before and after each run.
//
// What the calls allocate: boxing the argument into Call's any (client);
// the handler's request context (DeMux.accept); boxing the result into the
// handler's any (a HandlerFunc; demux.Func encodes its typed result from a
// pooled value instead). The reply is decoded into the caller's value,
// whose slice has room. demux.Func decodes a []byte argument into a new
// slice, and a string field into a new string at each end: the struct
// case's 4 are the argument's box, the context and the two strings.
func TestAllocsPerCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		echo demux.Handler
		// call makes one call with args, decoding the reply into its own
		// variable, and checks the reply.
		call func(c *mux.Mux) error
	}{
		{"bytes/16B", echoBytes, callBytes(16)},
		{"func/16B", echoFunc, callBytes(16)},
		{"func/struct", demux.Func(func(_ context.Context, p point) (point, error) { return p, nil }), func() func(*mux.Mux) error {
			in, out := point{X: 1, Y: -2, Label: "a point"}, point{}
			return func(m *mux.Mux) error {
				if err := m.Call(context.Background(), "echo", in, &out); err != nil {
					return err
				}
				if out != in {
					return fmt.Errorf("echoed %+v, sent %+v", out, in)
				}
				return nil
			}
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rpctest.Start(t, transport.Mem, muxrpcEcho(tc.echo), nil)
			call := func() {
				if err := tc.call(p.Mux); err != nil {
					t.Fatal(err)
				}
			}
			call() // the prefaces are exchanged and the pools filled before measuring
			allocs := testing.AllocsPerRun(1000, call)
			t.Logf("%v allocations per call, both ends counted (budget %d)", allocs, allocsPerCallBudget)
			if allocs > allocsPerCallBudget {
				t.Errorf("%v allocations per call, budget is %d", allocs, allocsPerCallBudget)
			}
		})
	}
}

// callBytes returns a call of n bytes that checks the echo.
func callBytes(n int) func(*mux.Mux) error {
	in := makePayload(n)
	var out []byte
	return func(m *mux.Mux) error {
		if err := m.Call(context.Background(), "echo", in, &out); err != nil {
			return err
		}
		return checkEcho(in, out)
	}
}
